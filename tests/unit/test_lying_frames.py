"""One rule for compressed entries, on the whole and the streaming decoder alike: the
stored bytes must be complete frames that end exactly at the stored length and decode to
exactly the recorded size (checksums verified). Every lie is an EntryError, never bytes."""

from __future__ import annotations

import io
import os
from collections.abc import Callable

import lz4.frame
import pytest
import zstandard

from desfs.errors import EntryError
from desfs.format.codecs import PayloadStream, decode_payload
from desfs.format.model import Codec, Entry

DATA = os.urandom(64) * 40_000  # 2.5 MiB: larger than a decode step, compressible
MiB = 1024 * 1024


def _entry(codec: Codec, stored: bytes, size: int) -> Entry:
    return Entry(b"big", 0, size=size, offset=8, stored_length=len(stored), codec=codec)


def _zstd(data: bytes, checksum: bool = True) -> bytes:
    return zstandard.ZstdCompressor(level=3, write_checksum=checksum).compress(data)


def _lz4(data: bytes) -> bytes:
    return bytes(lz4.frame.compress(data, content_checksum=True))


def _whole(entry: Entry, stored: bytes) -> bytes:
    return decode_payload(entry, stored)


def _streamed(entry: Entry, stored: bytes) -> bytes:
    """As the mount reads a large entry: small steps through a stored-byte source."""
    stream = PayloadStream(entry, io.BytesIO(stored))
    out = bytearray()
    while chunk := stream.read(256 * 1024):
        out += chunk
    return bytes(out)


PATHS: list[Callable[[Entry, bytes], bytes]] = [_whole, _streamed]
ids = ["whole", "streamed"]

# name -> (codec, stored bytes, recorded size)
LIES: dict[str, tuple[Codec, bytes, int]] = {
    "zstd decodes to more": (Codec.ZSTD, _zstd(DATA), len(DATA) - 1),
    "zstd decodes to less": (Codec.ZSTD, _zstd(DATA), len(DATA) + 1),
    "zstd then junk": (Codec.ZSTD, _zstd(DATA) + b"junk", len(DATA)),
    "zstd then one zero byte": (Codec.ZSTD, _zstd(DATA) + b"\0", len(DATA)),
    "zstd then a second frame": (Codec.ZSTD, _zstd(DATA) + _zstd(b"more"), len(DATA)),
    "zstd cut in its checksum": (Codec.ZSTD, _zstd(DATA)[:-1], len(DATA)),
    "zstd cut after its last block": (Codec.ZSTD, _zstd(DATA)[:-4], len(DATA)),
    "zstd without checksum, cut": (Codec.ZSTD, _zstd(DATA, checksum=False)[:-3], len(DATA)),
    "zstd bad checksum": (Codec.ZSTD, _zstd(DATA)[:-1] + b"\x00", len(DATA)),
    "zstd bomb 256 MiB as 2 MiB": (Codec.ZSTD, _zstd(bytes(256 * MiB)), 2 * MiB),
    "lz4 decodes to more": (Codec.LZ4, _lz4(DATA), len(DATA) - 1),
    "lz4 decodes to less": (Codec.LZ4, _lz4(DATA), len(DATA) + 1),
    "lz4 without end mark": (Codec.LZ4, _lz4(DATA)[:-8], len(DATA)),
    "lz4 cut in its checksum": (Codec.LZ4, _lz4(DATA)[:-1], len(DATA)),
    "lz4 then junk": (Codec.LZ4, _lz4(DATA) + b"junk", len(DATA)),
    "lz4 then a second frame": (Codec.LZ4, _lz4(DATA) + _lz4(b"more"), len(DATA)),
    "not a frame at all": (Codec.ZSTD, os.urandom(5000), len(DATA)),
    "empty entry, junk frame": (Codec.ZSTD, b"\x28\xb5\x2f\xfd\x00", 0),
    "empty entry, data frame": (Codec.LZ4, _lz4(b"hidden"), 0),
}


@pytest.mark.parametrize("path", PATHS, ids=ids)
@pytest.mark.parametrize("lie", list(LIES))
def test_a_lying_entry_never_decodes(lie: str, path: Callable[[Entry, bytes], bytes]) -> None:
    codec, stored, size = LIES[lie]
    with pytest.raises(EntryError):
        path(_entry(codec, stored, size), stored)


@pytest.mark.parametrize("path", PATHS, ids=ids)
@pytest.mark.parametrize(
    "stored",
    [
        _zstd(DATA),
        _zstd(DATA, checksum=False),
        _zstd(DATA[: 1 * MiB]) + _zstd(DATA[1 * MiB :]),  # a frame sequence
        _zstd(DATA) + b"\x50\x2a\x4d\x18\x04\x00\x00\x00abcd",  # then a skippable frame
    ],
    ids=["checksum", "no-checksum", "two-frames", "skippable"],
)
def test_honest_zstd_decodes(stored: bytes, path: Callable[[Entry, bytes], bytes]) -> None:
    assert path(_entry(Codec.ZSTD, stored, len(DATA)), stored) == DATA


@pytest.mark.parametrize("path", PATHS, ids=ids)
@pytest.mark.parametrize("data", [b"", b"x", DATA])
def test_honest_lz4_decodes(data: bytes, path: Callable[[Entry, bytes], bytes]) -> None:
    stored = _lz4(data)
    assert path(_entry(Codec.LZ4, stored, len(data)), stored) == data


@pytest.mark.parametrize("lie", list(LIES))
def test_a_streamed_lie_fails_by_the_end_and_earlier_bytes_are_true(lie: str) -> None:
    """Reads before the lie shows may return bytes, and those are the frame's own; the
    read that reaches the entry's end (or an earlier one) fails."""
    codec, stored, size = LIES[lie]
    stream = PayloadStream(_entry(codec, stored, size), io.BytesIO(stored))
    out = bytearray()
    with pytest.raises(EntryError):
        _drain(stream, out)
    assert len(out) < max(size, 1)


def test_a_short_source_is_an_error_not_a_short_entry() -> None:
    stored = _zstd(DATA)
    source = io.BytesIO(stored[: len(stored) // 2])
    stream = PayloadStream(_entry(Codec.ZSTD, stored, len(DATA)), source)
    with pytest.raises(EntryError):
        _drain(stream, bytearray())


def _drain(stream: PayloadStream, out: bytearray) -> None:
    while chunk := stream.read(256 * 1024):
        out += chunk
