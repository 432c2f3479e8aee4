"""The container writers: worked examples, upstream fixtures rebuilt byte for byte,
refusals, codecs, and hypothesis round trips through desfs's own parser."""

from __future__ import annotations

import hashlib
import io
import json
import struct
import unicodedata
from pathlib import Path
from typing import Any

import lz4.frame
import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from desfs.errors import ObjectChanged, UsageError
from desfs.format.container import parse_whole
from desfs.format.des2_writer import Des2Writer
from desfs.format.deshead1_writer import DesHead1Writer
from desfs.format.model import DES_CODECS, Codec
from desfs.format.writer import compress, smart_skips
from tests.support.builders import (
    BigPayload,
    ExternalPayload,
    build_des2,
    build_des2_v1,
    build_deshead1,
    read_back,
)
from tests.support.fixtures import cases, load_manifest

SHA_12345 = hashlib.sha256(b"12345").hexdigest()


def u64(*values: int) -> bytes:
    return b"".join(struct.pack("<Q", v) for v in values)


# --- worked examples (des-formats.md §1.13 and §2.13) -------------------------------------


def test_deshead1_zero_entry_example() -> None:
    expected = b"DESHEAD1\x01" + bytes(7) + b"DESFOOT1\x01" + bytes(7) + u64(16, 0, 16, 0, 16, 0, 0)
    assert build_deshead1([]) == expected
    assert len(expected) == 88


def test_deshead1_one_entry_example() -> None:
    expected = (
        b"DESHEAD1\x01" + bytes(7)
        + b"hi"
        + b'{"k":"v","size":2}'
        + b"\x05\x00a.txt" + u64(16, 2, 18, 18) + bytes(4)
        + b"DESFOOT1\x01" + bytes(7) + u64(0x10, 0x02, 0x12, 0x12, 0x24, 0x2B, 0x01)
    )  # fmt: skip
    assert len(expected) == 151
    assert build_deshead1([("a.txt", b"hi", {"k": "v"})]) == expected


def test_des2_zero_entry_example() -> None:
    expected = bytes.fromhex("444553320200000000000000444553490400000000000000")
    assert build_des2([]) == expected


def test_des2_two_entry_example() -> None:
    inline = (
        b"\x05\x00a.txt\x00" + u64(8, 2) + b"\x00" + u64(2, 2)
        + b"\x09\x00\x00\x00" + b'{"k":"v"}'
    )  # fmt: skip
    big = b"\x03\x00big\x01\x40\x00" + SHA_12345.encode() + u64(5) + bytes(4)
    index = b"\x02\x00\x00\x00" + inline + big
    assert len(index) == 0x8E
    expected = b"DES2\x02\x00\x00\x00" + b"hi" + index + b"DESI" + u64(0x8E)
    built = build_des2([("a.txt", b"hi", {"k": "v"}), ("big", BigPayload(b"12345"), None)])
    assert built == expected


# --- upstream fixtures rebuilt byte for byte ----------------------------------------------


def _fixture_containers() -> list[tuple[Path, dict[str, Any], list[dict[str, Any]]]]:
    found = []
    for case in cases():
        manifest = load_manifest(case)
        for container in manifest["containers"]:
            files = [f for f in manifest["files"] if f["container"] == container["key"]]
            files.sort(key=lambda f: f["index_position"])
            found.append((case, container, files))
    return found


FIXTURES = _fixture_containers()


def _decode(stored: bytes, codec: str) -> bytes:
    if codec == "zstd":
        return zstandard.ZstdDecompressor().decompress(stored)
    if codec == "lz4":
        return bytes(lz4.frame.decompress(stored))
    return stored


def _payloads(case: Path, original: bytes, start: int, files: list[dict[str, Any]]) -> list[bytes]:
    """The logical bytes of each entry, cut from the fixture without desfs's parser."""
    result = []
    pos = start
    for f in files:
        if f["storage"] == "external":
            data = (case / "bucket" / f["external_key"]).read_bytes()
        else:
            stored_length = f.get("stored_length", f["size"])
            data = _decode(original[pos : pos + stored_length], f.get("codec", "none"))
            pos += stored_length
        assert hashlib.sha256(data).hexdigest() == f["sha256"]
        result.append(data)
    return result


_AUTO_KEYS = ("size", "is_external", "external_key")


@pytest.mark.parametrize(
    ("case", "container", "files"), FIXTURES, ids=[f"{c.name}:{k['key']}" for c, k, _ in FIXTURES]
)
def test_rebuilds_upstream_fixture(
    case: Path, container: dict[str, Any], files: list[dict[str, Any]]
) -> None:
    original = (case / "bucket" / container["key"]).read_bytes()
    out = io.BytesIO()
    if container["format"] == "DESHEAD1":
        data = _payloads(case, original, 16, files)
        dh1 = DesHead1Writer(out)
        for f, payload in zip(files, data, strict=True):
            name = bytes.fromhex(f["name_utf8_hex"])
            # The writer must add size/is_external/external_key itself, in upstream order.
            meta = {k: v for k, v in f["meta"].items() if k not in _AUTO_KEYS}
            if f["storage"] == "external":
                dh1.add_external(name, len(payload), f["external_key"], meta)
            else:
                dh1.add(name, payload, meta)
        dh1.close()
    else:
        data = _payloads(case, original, 8, files)
        config = {f["meta"].get("codec_config") for f in files} - {None}
        codec, level = {"zstd-5": (Codec.ZSTD, 5), "lz4": (Codec.LZ4, None)}.get(
            next(iter(config), "none"), (Codec.NONE, None)
        )
        des2 = Des2Writer(out, codec, level, smart_skip=True)
        for f, payload in zip(files, data, strict=True):
            name = bytes.fromhex(f["name_utf8_hex"])
            if f["storage"] == "external":
                sha256 = f["external_key"].rsplit("/", 1)[1]
                des2.add_bigfile(name, sha256, len(payload), f["meta"] or None)
            else:
                used = des2.add(name, payload, f["meta"] or None)
                assert used.name.lower() == f["codec"]
        des2.close()
    assert out.getvalue() == original


def test_fixture_set_is_present() -> None:
    formats = {container["format"] for _, container, _ in FIXTURES}
    assert formats == {"DESHEAD1", "DES2"}


# --- DESHEAD1 details ---------------------------------------------------------------------


def test_deshead1_meta_size_overwrites_in_place_and_caller_dict_is_untouched() -> None:
    meta = {"size": 999, "a": 1}
    container = build_deshead1([("x", b"abc", meta)])
    assert b'{"size":3,"a":1}' in container
    assert meta == {"size": 999, "a": 1}


def test_deshead1_meta_is_ascii_escaped_json() -> None:
    container = build_deshead1([("x", b"", {"city": "Łódź"})])
    assert b'{"city":"\\u0141\\u00f3d\\u017a","size":0}' in container


def test_deshead1_external_entry_fields() -> None:
    key = "2024-01-02/_bigFiles/big.bin"
    container = build_deshead1(
        [
            ("a", b"12", None),
            ("big.bin", ExternalPayload(b"x" * 7, key), {"k": 1}),
            ("c", b"3", None),
        ]
    )
    index = parse_whole(container)
    a, big, c = index.entries
    assert (big.offset, big.size, big.stored_length) == (0, 7, 0)
    assert big.external is not None
    assert big.external.key_hint == key
    assert (a.offset, c.offset) == (16, 18)  # the external entry takes no data bytes
    meta = json.loads(big.meta)
    assert list(meta) == ["k", "size", "is_external", "external_key"]
    assert read_back(container, {key: b"x" * 7})[1] == (b"big.bin", b"x" * 7, meta)


def test_deshead1_keeps_duplicate_names_and_raw_meta() -> None:
    container = build_deshead1([("d", b"1", b"{}"), ("d", b"22", b"")])
    entries = parse_whole(container).entries
    assert [(e.name, e.size, e.meta) for e in entries] == [(b"d", 1, b"{}"), (b"d", 2, b"")]


def test_deshead1_meta_limit() -> None:
    with pytest.raises(UsageError, match="metadata is"):
        build_deshead1([("x", b"", {"v": "a" * (10 * 1024 * 1024)})])


# --- DES2 details -------------------------------------------------------------------------


def test_des2_refuses_duplicate_uid() -> None:
    writer = Des2Writer(io.BytesIO())
    writer.add("same", b"1")
    with pytest.raises(UsageError, match="duplicate"):
        writer.add("same", b"2")


def test_des2_nfc_and_nfd_are_different_uids() -> None:
    nfc, nfd = unicodedata.normalize("NFC", "é.txt"), unicodedata.normalize("NFD", "é.txt")
    assert nfc != nfd
    container = build_des2([(nfc, b"c", None), (nfd, b"d", None)])
    names = [name for name, _, _ in read_back(container)]
    assert names == [nfc.encode(), nfd.encode()]


def test_des2_empty_meta_is_meta_len_zero() -> None:
    assert build_des2([("x", b"1", {})]) == build_des2([("x", b"1", None)])
    assert parse_whole(build_des2([("x", b"1", {})])).entries[0].meta == b""


def test_des2_refuses_bad_bigfile_hash() -> None:
    writer = Des2Writer(io.BytesIO())
    with pytest.raises(UsageError, match="64 lowercase hex"):
        writer.add_bigfile("x", "../" + "0" * 61, 3)
    with pytest.raises(UsageError):  # the failed add leaves the writer unusable
        writer.add("y", b"")


@pytest.mark.parametrize(
    ("name", "skipped"),
    [
        ("photo.JPG", True),
        ("archive.tar.gz", True),
        ("dir/x.png", True),
        (".gz", False),  # a dot-file has no suffix
        ("notes", False),
        ("data.json", False),
        (b"raw.zip", True),
    ],
)
def test_smart_skip_suffixes(name: str | bytes, skipped: bool) -> None:
    assert smart_skips(name) is skipped
    writer = Des2Writer(io.BytesIO(), Codec.ZSTD, smart_skip=True)
    assert writer.add(name, b"payload") is (Codec.NONE if skipped else Codec.ZSTD)


def test_per_entry_codec_overrides_smart_skip() -> None:
    writer = Des2Writer(io.BytesIO(), Codec.NONE, smart_skip=True)
    assert writer.add("a.jpg", b"x", codec=Codec.LZ4) is Codec.LZ4


def test_codec_frames() -> None:
    zstd_empty = compress(b"", Codec.ZSTD, None)
    lz4_empty = compress(b"", Codec.LZ4, None)
    assert (zstd_empty[:4], len(zstd_empty)) == (b"\x28\xb5\x2f\xfd", 9)
    assert (lz4_empty[:4], len(lz4_empty)) == (b"\x04\x22\x4d\x18", 11)
    data = b"abc" * 1000
    assert compress(data, Codec.ZSTD, None) == compress(data, Codec.ZSTD, 3)
    assert compress(data, Codec.ZSTD, 0) == compress(data, Codec.ZSTD, 3)
    params = zstandard.get_frame_parameters(compress(data, Codec.ZSTD, 9))
    assert params.content_size == len(data)
    assert compress(data, Codec.NONE, None) == data


def test_des2_stored_size_may_exceed_logical_size() -> None:
    entry = parse_whole(build_des2([("e", b"", None)], codec=Codec.LZ4)).entries[0]
    assert (entry.size, entry.stored_length, entry.codec) == (0, 11, Codec.LZ4)


# --- DES2 version 1 (test builders only) --------------------------------------------------


@pytest.mark.parametrize("variant", ["codec", "nocodec"])
def test_des2_v1_layouts_parse(variant: str) -> None:
    entries: list[tuple[str | bytes, bytes]] = [("a", b"one"), ("b", b""), ("c", b"three")]
    index = parse_whole(build_des2_v1(entries, variant))
    assert (index.version, index.variant) == (1, variant)
    assert [(n, d) for n, d, _ in read_back(build_des2_v1(entries, variant))] == [
        (b"a", b"one"),
        (b"b", b""),
        (b"c", b"three"),
    ]


def test_des2_v1_codec_layout_with_zstd() -> None:
    container = build_des2([("z", b"zz" * 100, None)], codec=Codec.ZSTD, version=1)
    assert read_back(container) == [(b"z", b"zz" * 100, {})]


# --- refusals shared by both writers -------------------------------------------------------


@pytest.fixture(params=["deshead1", "des2"])
def writer(request: pytest.FixtureRequest) -> DesHead1Writer | Des2Writer:
    return DesHead1Writer(io.BytesIO()) if request.param == "deshead1" else Des2Writer(io.BytesIO())


def test_name_length_limit(writer: DesHead1Writer | Des2Writer) -> None:
    writer.add("n" * 0xFFFF, b"")  # the longest name a u16 can hold
    with pytest.raises(UsageError, match="limit is 65535"):
        writer.add(b"m" * 0x10000, b"")


def test_unencodable_name(writer: DesHead1Writer | Des2Writer) -> None:
    with pytest.raises(UsageError, match="UTF-8"):
        writer.add("bad\udcff", b"")


@pytest.mark.parametrize("meta", [{"x": object()}, {"x": float("nan")}])
def test_meta_must_be_json(writer: DesHead1Writer | Des2Writer, meta: dict[str, Any]) -> None:
    with pytest.raises(UsageError, match="JSON"):
        writer.add("x", b"", meta)


@pytest.mark.parametrize(("data", "size"), [(b"abc", 4), (b"abcd", 3)])
def test_source_that_disagrees_with_its_size(
    writer: DesHead1Writer | Des2Writer, data: bytes, size: int
) -> None:
    with pytest.raises(ObjectChanged):
        writer.add_stream("x", io.BytesIO(data), size)
    with pytest.raises(UsageError, match="failed"):
        writer.close()


def test_no_add_after_close(writer: DesHead1Writer | Des2Writer) -> None:
    writer.close()
    with pytest.raises(UsageError, match="closed"):
        writer.add("late", b"")


def test_streamed_and_in_memory_adds_are_identical() -> None:
    payload = bytes(range(256)) * 5000  # several copy chunks
    for make in (DesHead1Writer, Des2Writer):
        a, b = io.BytesIO(), io.BytesIO()
        w1, w2 = make(a), make(b)
        w1.add("p", payload)
        w2.add_stream("p", io.BytesIO(payload), len(payload))
        assert w1.close() == w2.close() == len(a.getvalue())
        assert a.getvalue() == b.getvalue()


# --- hypothesis round trips ---------------------------------------------------------------

ODD_NAMES = [
    "",
    ".",
    "..",
    "a/b/c",
    "/abs",
    " lead",
    "trail ",
    "tab\tname",
    "line\nfeed",
    "nul\x00in",
    "\u202eevil.txt",
    unicodedata.normalize("NFC", "zażółć"),
    unicodedata.normalize("NFD", "zażółć"),
    "Ω" * 200,
    "x" * 300,
]
names = st.one_of(st.sampled_from(ODD_NAMES), st.text(st.characters(codec="utf-8"), max_size=24))
metas = st.one_of(
    st.none(),
    st.dictionaries(
        st.text(max_size=6),
        st.one_of(st.integers(), st.text(max_size=8), st.booleans(), st.none()),
        max_size=3,
    ),
)
entry_sets = st.lists(st.tuples(names, st.binary(max_size=1500), metas), max_size=12)


@settings(max_examples=100, deadline=None)
@given(entries=entry_sets)
def test_deshead1_round_trip(entries: list[tuple[str, bytes, dict[str, Any] | None]]) -> None:
    back = read_back(build_deshead1(entries))
    expected = [(n.encode(), d, {**(m or {}), "size": len(d)}) for n, d, m in entries]
    assert back == expected


@settings(max_examples=100, deadline=None)
@given(
    entries=st.lists(
        st.tuples(names, st.binary(max_size=1500), metas), max_size=12, unique_by=lambda e: e[0]
    ),
    codec=st.sampled_from(DES_CODECS),
    smart_skip=st.booleans(),
    big=st.sets(st.integers(0, 11)),
)
def test_des2_round_trip(
    entries: list[tuple[str, bytes, dict[str, Any] | None]],
    codec: Codec,
    smart_skip: bool,
    big: set[int],
) -> None:
    spec: list[tuple[str | bytes, bytes | BigPayload, Any]] = [
        (n, BigPayload(d) if i in big else d, m) for i, (n, d, m) in enumerate(entries)
    ]
    externals = {f"_bigFiles/{hashlib.sha256(d).hexdigest()}": d for _, d, _ in entries}
    container = build_des2(spec, codec=codec, smart_skip=smart_skip)
    assert read_back(container, externals) == [(n.encode(), d, m or {}) for n, d, m in entries]
    for i, entry in enumerate(parse_whole(container).entries):
        assert entry.size == len(entries[i][1])
        if i not in big and not (smart_skip and smart_skips(entry.name)):
            assert entry.codec is codec
