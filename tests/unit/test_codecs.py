"""Payload and metadata decoding: every codec, bounded output, lying frames."""

from __future__ import annotations

import tracemalloc

import lz4.frame
import pytest
import zstandard

from desfs.errors import EntryError
from desfs.format.codecs import decode_meta, decode_payload
from desfs.format.model import DES_CODECS, Codec, Entry, External

PAYLOAD = b"desfs payload " * 100


def _entry(codec: Codec, stored: bytes, size: int) -> Entry:
    return Entry(b"f", 0, size=size, offset=8, stored_length=len(stored), codec=codec)


def _compress(codec: Codec, data: bytes) -> bytes:
    if codec is Codec.ZSTD:
        return zstandard.ZstdCompressor(level=3).compress(data)
    if codec is Codec.LZ4:
        return bytes(lz4.frame.compress(data))
    return data


@pytest.mark.parametrize("codec", DES_CODECS)
@pytest.mark.parametrize("data", [b"", b"x", PAYLOAD, bytes(range(256)) * 9000])
def test_round_trip(codec: Codec, data: bytes) -> None:
    stored = _compress(codec, data)
    assert decode_payload(_entry(codec, stored, len(data)), stored) == data


def test_empty_frames_have_the_documented_sizes() -> None:
    assert len(_compress(Codec.ZSTD, b"")) == 9
    assert len(_compress(Codec.LZ4, b"")) == 11


@pytest.mark.parametrize("codec", DES_CODECS)
@pytest.mark.parametrize("delta", [-1, 1, 1000])
def test_size_mismatch(codec: Codec, delta: int) -> None:
    stored = _compress(codec, PAYLOAD)
    with pytest.raises(EntryError, match="decodes to"):
        decode_payload(_entry(codec, stored, len(PAYLOAD) + delta), stored)


@pytest.mark.parametrize("codec", [Codec.ZSTD, Codec.LZ4])
def test_bomb_is_bounded_by_the_entry_size(codec: Codec) -> None:
    # 64 MiB of zeros compresses to a few KiB; claiming 10 bytes must not inflate it.
    stored = _compress(codec, bytes(64 << 20))
    entry = _entry(codec, stored, 10)
    tracemalloc.start()
    try:
        with pytest.raises(EntryError, match="decodes to 11\\+ bytes"):
            decode_payload(entry, stored)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20


@pytest.mark.parametrize("codec", [Codec.ZSTD, Codec.LZ4])
def test_truncated_frame(codec: Codec) -> None:
    stored = _compress(codec, PAYLOAD)[:-4]
    with pytest.raises(EntryError):
        decode_payload(_entry(codec, stored, len(PAYLOAD)), stored)


@pytest.mark.parametrize("codec", [Codec.ZSTD, Codec.LZ4])
@pytest.mark.parametrize("garbage", [b"garbage bytes!", b"\x28\xb5\x2f\xfd" + bytes(20)])
def test_garbage_frame(codec: Codec, garbage: bytes) -> None:
    with pytest.raises(EntryError):
        decode_payload(_entry(codec, garbage, 5), garbage)


def test_stored_length_mismatch() -> None:
    entry = _entry(Codec.NONE, b"abc", 3)
    with pytest.raises(EntryError, match="got 2 stored bytes"):
        decode_payload(entry, b"ab")


def test_entry_with_error_is_unreadable() -> None:
    entry = Entry(b"f", 0, size=3, offset=8, stored_length=3, error="unknown codec 9")
    with pytest.raises(EntryError, match="unknown codec 9"):
        decode_payload(entry, b"abc")


def test_external_payload_must_match_size() -> None:
    entry = Entry(b"big", 0, size=5, offset=0, stored_length=0, external=External(sha256="0" * 64))
    assert decode_payload(entry, b"12345") == b"12345"
    with pytest.raises(EntryError, match="external object decodes to 4 bytes"):
        decode_payload(entry, b"1234")


def test_decode_meta() -> None:
    assert decode_meta(b"") == {}
    assert decode_meta(b'{"a":[1,2],"b":"\\u017c"}') == {"a": [1, 2], "b": "ż"}
    assert decode_meta('{"b":"ż"}'.encode()) == {"b": "ż"}


@pytest.mark.parametrize(
    "meta",
    [b"{", b"[]", b"null", b"\xff{}", b"[" * 50_000, b"{}{}", "{}".encode("utf-16"), b"1" * 5000],
)
def test_decode_meta_rejects(meta: bytes) -> None:
    with pytest.raises(EntryError):
        decode_meta(meta)


def _windowed_frame(window_log: int, data: bytes) -> bytes:
    params = zstandard.ZstdCompressionParameters.from_level(
        3, window_log=window_log, write_content_size=0
    )
    compressor = zstandard.ZstdCompressor(compression_params=params).compressobj()
    return compressor.compress(data) + compressor.flush()


def test_zstd_window_is_bounded_by_the_entry_size() -> None:
    # A frame may claim a huge window, which the decoder would allocate up front.
    data = b"hello" * 10
    usual = _windowed_frame(23, data)
    assert decode_payload(_entry(Codec.ZSTD, usual, len(data)), usual) == data
    greedy = _windowed_frame(26, data)
    with pytest.raises(EntryError, match="too much memory"):
        decode_payload(_entry(Codec.ZSTD, greedy, len(data)), greedy)
