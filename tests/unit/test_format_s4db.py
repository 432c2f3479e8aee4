"""s4db codec: every real fixture (written by s4db 0.10.0 and 0.8.0) and hostile variants.

The fixtures are read straight from tests/fixtures/stores/s4db; the manifests hold the
sha256 of what was fed to the writer. Hand-built indexes and records use the layout of
docs/formats/s4db.md, written out here independently of the codec.
"""

from __future__ import annotations

import hashlib
import json
import struct
import zlib
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import cramjam
import pytest

from desfs.errors import EntryError, FormatError
from desfs.format import s4db
from desfs.format.s4db import S4Entry

FIXTURES = Path(__file__).parents[1] / "fixtures" / "stores" / "s4db"
CASES = sorted(p.name for p in FIXTURES.iterdir() if (p / "manifest.json").is_file())
EXPECTED_CASES = {
    "basic",
    "overwrites",
    "multifile",
    "compacted",
    "two_writers",
    "odd_keys",
    "all_deleted",
    "legacy_v1",
    "legacy_upgraded",
}


@dataclass(frozen=True)
class Store:
    manifest: dict[str, Any]
    index: bytes
    files: dict[str, bytes]  # data file name (after the prefix) -> bytes

    def stored(self, entry: S4Entry) -> bytes:
        return self.files[entry.file_name][entry.offset : entry.end]

    def live(self) -> dict[bytes, dict[str, Any]]:
        return {bytes.fromhex(item["key_utf8_hex"]): item for item in self.manifest["live"]}


@cache
def load(case: str) -> Store:
    manifest = json.loads((FIXTURES / case / "manifest.json").read_text(encoding="utf-8"))
    root = FIXTURES / case / manifest["bucket_dir"] / manifest["prefix"]
    files = {p.name: p.read_bytes() for p in root.iterdir() if p.name != s4db.INDEX_NAME}
    return Store(manifest, (root / s4db.INDEX_NAME).read_bytes(), files)


def index_v2(entries: list[tuple[bytes, int, int, int]], count: int | None = None) -> bytes:
    """A version 2 index with a correct CRC: (key, file_id, offset, length) per entry."""
    body = struct.pack(">BII", 2, 1, len(entries) if count is None else count)
    for key, file_id, offset, length in entries:
        body += struct.pack(">H", len(key)) + key + struct.pack(">QQI", file_id, offset, length)
    return with_crc(body)


def with_crc(body: bytes) -> bytes:
    return body + struct.pack(">I", zlib.crc32(body))


def record(key: bytes, value: bytes, flags: int = 0) -> bytes:
    body = struct.pack(">BII", flags, len(key), len(value)) + key + value
    return with_crc(body)


def entry_for(rec: bytes, key: bytes, offset: int = 9) -> S4Entry:
    return S4Entry(key, 1, offset, len(rec))


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- the real fixtures ---------------------------------------------------------------


def test_all_cases_present() -> None:
    assert set(CASES) == EXPECTED_CASES
    for case in CASES:
        assert (FIXTURES / case / "README.md").is_file()
        assert (FIXTURES / case / "bucket").is_dir()


def test_fixtures_are_small() -> None:
    total = sum(p.stat().st_size for p in FIXTURES.rglob("*") if p.is_file())
    assert total < 200_000


@pytest.mark.parametrize("case", CASES)
def test_fixture_live_set(case: str) -> None:
    store = load(case)
    index = s4db.parse_index(store.index)
    assert index.version == store.manifest["index_version"]
    want = store.manifest["live"]
    assert [e.key for e in index.entries] == [bytes.fromhex(w["key_utf8_hex"]) for w in want]
    for entry, expected in zip(index.entries, want, strict=True):
        assert entry.key.decode("utf-8") == expected["key"]
        assert entry.file_name == expected["file"]
        s4db.check_extent(entry, len(store.files[entry.file_name]))
        value = s4db.decode_value(store.stored(entry), entry)
        assert (len(value), sha(value)) == (expected["size"], expected["sha256"])
        head = store.stored(entry)[: entry.head_length]
        assert s4db.value_size(head, entry) == expected["size"]
        assert s4db.value_size(store.stored(entry), entry) == expected["size"]
    keys = {e.key for e in index.entries}
    assert not keys & {k.encode() for k in store.manifest["gone"]}
    assert set(index.data_files()) <= set(store.files)


@pytest.mark.parametrize("case", CASES)
def test_fixture_objects_and_headers(case: str) -> None:
    """Every object is the index or a data file with a canonical name and a good header."""
    store = load(case)
    listed = {o["key"].removeprefix(store.manifest["prefix"]) for o in store.manifest["objects"]}
    assert listed == {*store.files, s4db.INDEX_NAME}
    for name, data in store.files.items():
        file_id = s4db.parse_data_file_name(name)
        assert file_id is not None
        assert s4db.data_file_name(file_id) == name
        header = s4db.parse_data_header(data)
        assert header.seq == file_id & 0xFFFFFFFF
        # 0.8.0 wrote legacy (writer 0) files with header version 1; 0.10.0 namespaced, 2.
        assert header.version == (1 if file_id >> 32 == 0 else 2)


def test_basic_values_and_flags() -> None:
    store = load("basic")
    by_key = {e.key: e for e in s4db.parse_index(store.index).entries}
    flags = {key: store.stored(e)[0] for key, e in by_key.items()}
    assert flags[b"docs/readme.txt"] == 0  # str, Snappy-compressed
    assert flags[b"a/b/c/deep.bin"] == s4db.FLAG_RAW | s4db.FLAG_BINARY  # noise stays raw
    assert flags[b"empty"] == s4db.FLAG_RAW  # b"" does not shrink
    assert s4db.decode_value(store.stored(by_key[b"empty"]), by_key[b"empty"]) == b""
    assert s4db.decode_value(store.stored(by_key[b"hello"]), by_key[b"hello"]) == b"world"
    assert "ключ/naïve-☃.txt".encode() in by_key


def test_overwrites_resolved_by_the_index() -> None:
    store = load("overwrites")
    index = s4db.parse_index(store.index)
    assert {e.key for e in index.entries} == {b"k3", b"dir/file", b"phoenix"}
    assert len(index.data_files()) == 2  # two writers' namespaces
    # The deleted and superseded records are still in the data files; only the index hides them.
    data = b"".join(store.files.values())
    assert b"ephemeral" in data and b"version 1 of k0" in data and b"first life" in data
    phoenix = next(e for e in index.entries if e.key == b"phoenix")
    assert s4db.decode_value(store.stored(phoenix), phoenix) == b"second life"


def test_legacy_and_mixed_stores() -> None:
    legacy = s4db.parse_index(load("legacy_v1").index)
    assert legacy.version == 1
    assert all(e.file_id >> 32 == 0 for e in legacy.entries)
    beta = next(e for e in legacy.entries if e.key == b"beta")
    # 0.8.0 compressed every value: the empty one is the one-byte Snappy stream 00.
    assert load("legacy_v1").stored(beta)[-5:-4] == b"\x00"
    mixed = s4db.parse_index(load("legacy_upgraded").index)
    assert mixed.version == 2
    assert {e.file_id >> 32 == 0 for e in mixed.entries} == {True, False}


def test_other_shapes() -> None:
    assert len(s4db.parse_index(load("multifile").index).data_files()) >= 5
    compacted = s4db.parse_index(load("compacted").index)
    assert set(compacted.data_files()) == set(load("compacted").files)
    assert len(compacted.data_files()) == 1
    assert s4db.parse_index(load("all_deleted").index).entries == ()
    odd = {e.key for e in s4db.parse_index(load("odd_keys").index).entries}
    assert {b"", b"/", b"..", b"nul\x00byte", b"dir", b"dir/child"} <= odd
    assert max(len(k) for k in odd) > 4096


# --- damaged indexes -----------------------------------------------------------------


def must_not_lie(index_bytes: bytes, store: Store) -> None:
    """Parse and read everything; any value that comes back must be the manifest's."""
    try:
        index = s4db.parse_index(index_bytes)
    except FormatError:
        return
    live = store.live()
    for entry in index.entries:
        data = store.files.get(entry.file_name)
        if data is None:
            continue  # the engine would get NotFound for the object
        try:
            s4db.check_extent(entry, len(data))
            value = s4db.decode_value(store.stored(entry), entry)
        except EntryError:
            continue
        assert entry.key in live, f"invented key {entry.key!r}"
        assert sha(value) == live[entry.key]["sha256"], f"wrong bytes for {entry.key!r}"


@pytest.mark.parametrize("case", ["basic", "overwrites", "legacy_v1", "legacy_upgraded"])
def test_every_truncation_fails(case: str) -> None:
    data = load(case).index
    for size in range(len(data)):
        with pytest.raises(FormatError):
            s4db.parse_index(data[:size])


@pytest.mark.parametrize("case", ["basic", "overwrites", "two_writers", "legacy_upgraded"])
def test_v2_every_flipped_byte_fails(case: str) -> None:
    data = load(case).index
    for at in range(len(data)):
        for mask in (0x01, 0x80, 0xFF):
            damaged = bytearray(data)
            damaged[at] ^= mask
            with pytest.raises(FormatError):
                s4db.parse_index(bytes(damaged))


def test_v1_flipped_bits_never_return_wrong_bytes() -> None:
    """Version 1 has no CRC: a flip may parse, but no read may return another value."""
    store = load("legacy_v1")
    for at in range(len(store.index)):
        for bit in range(8):
            damaged = bytearray(store.index)
            damaged[at] ^= 1 << bit
            must_not_lie(bytes(damaged), store)


def test_v2_recrc_damage_never_returns_wrong_bytes() -> None:
    """Even a damaged index with a recomputed CRC cannot make a read return wrong bytes."""
    store = load("overwrites")
    body = store.index[:-4]
    for at in range(9, len(body)):
        for bit in range(8):
            damaged = bytearray(body)
            damaged[at] ^= 1 << bit
            must_not_lie(with_crc(bytes(damaged)), store)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "shorter than the 9-byte header"),
        (b"\x02\0\0\0\x01\0\0\0\0", "too short for a version 2 CRC"),
        (with_crc(b"\x03\0\0\0\x01\0\0\0\0"), "unsupported version 3"),
        (with_crc(b"\x00\0\0\0\x01\0\0\0\0"), "unsupported version 0"),
        (index_v2([], count=0xFFFFFFFF), "entry_count 4294967295"),
        (index_v2([(b"k", 1, 9, 14)], count=2), "entry_count 2"),
        (index_v2([(b"k", 1, 9, 14)]), None),
        (with_crc(index_v2([(b"k", 1, 9, 14)])[:-4] + b"\0"), "1 trailing bytes"),
        (index_v2([(b"\xff\xfe", 1, 9, 15)]), "not valid UTF-8"),
        (index_v2([(b"k", 1, 0, 14)]), "inside the 9-byte data file header"),
        (index_v2([(b"k", 1, 9, 13)]), "cannot hold a record"),
        (index_v2([(b"k", 1, 2**64 - 1, 14)]), "past the largest file offset"),
        (index_v2([(b"k", 1, 2**63 - 14, 14)]), "past the largest file offset"),
    ],
)
def test_hostile_index(data: bytes, message: str | None) -> None:
    if message is None:
        assert len(s4db.parse_index(data).entries) == 1
        return
    with pytest.raises(FormatError, match=message):
        s4db.parse_index(data)


def test_key_length_past_the_end() -> None:
    body = struct.pack(">BII", 2, 1, 1) + struct.pack(">H", 0xFFFF) + b"k" * 40
    with pytest.raises(FormatError, match="runs past the end"):
        s4db.parse_index(with_crc(body))


def test_v1_huge_count_is_refused_before_reading() -> None:
    with pytest.raises(FormatError, match="entry_count 4294967295"):
        s4db.parse_index(struct.pack(">BII", 1, 1, 0xFFFFFFFF) + b"\0" * 64)


def test_repeated_key_keeps_first_place_last_value() -> None:
    """s4db's own reader is a dict: the later entry wins, in the earlier one's place."""
    data = index_v2([(b"a", 1, 9, 14), (b"b", 1, 23, 14), (b"a", 2, 9, 20)])
    entries = s4db.parse_index(data).entries
    assert [(e.key, e.file_id, e.length) for e in entries] == [(b"a", 2, 20), (b"b", 1, 14)]


# --- damaged records -----------------------------------------------------------------


def test_entry_past_its_data_file() -> None:
    store = load("basic")
    name = "data_5eed0001_000001.s4db"
    size = len(store.files[name])
    file_id = s4db.parse_data_file_name(name)
    assert file_id is not None
    s4db.check_extent(S4Entry(b"hello", file_id, size - 23, 23), size)  # ends at the end: fine
    for offset, length in ((size - 22, 23), (size, 23), (size - 10, 23), (9, 0xFFFFFFFF)):
        entry = s4db.parse_index(index_v2([(b"hello", file_id, offset, length)])).entries[0]
        with pytest.raises(EntryError, match="past the end"):
            s4db.check_extent(entry, size)
        with pytest.raises(EntryError, match="the index says"):
            s4db.decode_value(store.files[name][offset : offset + length], entry)


@pytest.mark.parametrize("case", ["basic", "legacy_v1"])
def test_every_flipped_record_byte_fails(case: str) -> None:
    store = load(case)
    for entry in s4db.parse_index(store.index).entries:
        stored = store.stored(entry)
        for at in range(len(stored)):
            damaged = bytearray(stored)
            damaged[at] ^= 0x10
            with pytest.raises(EntryError):
                s4db.decode_value(bytes(damaged), entry)


def test_index_pointing_at_a_tombstone() -> None:
    store = load("overwrites")
    name = "data_5eed0002_000001.s4db"
    tomb = struct.pack(">BII", s4db.FLAG_TOMBSTONE, 9, 0) + b"ephemeral"
    offset = store.files[name].index(tomb)
    entry = S4Entry(b"ephemeral", s4db.parse_data_file_name(name) or 0, offset, len(tomb) + 4)
    with pytest.raises(EntryError, match="tombstone"):
        s4db.decode_value(store.stored(entry), entry)


def test_index_pointing_at_another_keys_record() -> None:
    store = load("overwrites")
    entries = {e.key: e for e in s4db.parse_index(store.index).entries}
    phoenix = entries[b"phoenix"]
    liar = S4Entry(b"k3", phoenix.file_id, phoenix.offset, phoenix.length)
    with pytest.raises(EntryError, match="the record holds key b'phoenix'"):
        s4db.decode_value(store.stored(liar), liar)


def test_unknown_flags_and_bad_framing() -> None:
    rec = record(b"k", b"v", flags=s4db.FLAG_RAW | 0x08)
    with pytest.raises(EntryError, match="unknown flag bits 0x0a"):
        s4db.decode_value(rec, entry_for(rec, b"k"))
    rec = record(b"k", b"value", flags=s4db.FLAG_RAW)
    lying = with_crc(struct.pack(">BII", s4db.FLAG_RAW, 1, 4) + b"kvalue")
    with pytest.raises(EntryError, match="disagree"):
        s4db.decode_value(lying, entry_for(lying, b"k"))
    with pytest.raises(EntryError, match="the index says"):
        s4db.decode_value(rec[:-1], entry_for(rec, b"k"))
    with pytest.raises(EntryError, match="the index says"):
        s4db.decode_value(b"", S4Entry(b"", 1, 9, 0))
    assert s4db.decode_value(rec, entry_for(rec, b"k")) == b"value"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (b"", "bad Snappy length preamble"),
        (b"\x80\x80", "bad Snappy length preamble"),
        (b"\xff\xff\xff\xff\xff\x01", "bad Snappy length preamble"),  # 6-byte varint
        (b"\xff\xff\xff\xff\x1f\x00", "bad Snappy length preamble"),  # >= 2**32
        (b"\xff\xff\xff\xff\x0fabc", "more than 3 bytes of Snappy"),  # claims 4 GiB
        (b"\x0a\x10hello", "Snappy"),  # says 10, literal gives 5
        (b"\x05\x10hel", "bad Snappy data"),  # literal runs past the end
        (b"\x08\x01\x09", "bad Snappy data"),  # copy before any output
        (b"\x02\x04abc", "bad Snappy data"),  # more output than the preamble says
    ],
)
def test_bad_snappy(value: bytes, message: str) -> None:
    rec = record(b"key", value)
    with pytest.raises(EntryError, match=message):
        s4db.decode_value(rec, entry_for(rec, b"key"))


SNAPPY_HELLO = record(b"key", b"\x05\x10hello")  # 23 bytes, head_length 17


@pytest.mark.parametrize(
    ("head", "message"),
    [
        pytest.param(SNAPPY_HELLO[:16], "the record head needs 17", id="short"),
        pytest.param(record(b"key", b"\xff\xff\xff\xff\x0fabc"), "more than 3", id="huge"),
        pytest.param(record(b"key", b"\x80\x80"), "bad Snappy length preamble", id="varint"),
        pytest.param(record(b"key", b"", flags=s4db.FLAG_TOMBSTONE), "tombstone", id="tomb"),
        pytest.param(record(b"kex", b"\x05\x10hello"), "holds key b'kex'", id="key"),
        pytest.param(record(b"key", b"v", flags=0x40), "unknown flag bits 0x40", id="flags"),
        pytest.param(record(b"key", b"value!", flags=2), "disagree", id="framing"),
    ],
)
def test_value_size_refuses(head: bytes, message: str) -> None:
    # The entry claims 23 bytes for the short head and for the 22-byte framing case.
    length = len(SNAPPY_HELLO) if message.startswith(("the record", "disagree")) else len(head)
    with pytest.raises(EntryError, match=message):
        s4db.value_size(head, S4Entry(b"key", 1, 9, length))


def test_decompressor_disagreeing_with_the_preamble(monkeypatch: pytest.MonkeyPatch) -> None:
    """Our own size check stands even if the decompressor stops enforcing the preamble."""
    monkeypatch.setattr(cramjam.snappy, "decompress_raw", lambda data: b"four")
    rec = record(b"key", bytes(cramjam.snappy.compress_raw(b"five!")))
    with pytest.raises(EntryError, match="Snappy gave 4 bytes, its preamble says 5"):
        s4db.decode_value(rec, entry_for(rec, b"key"))


def test_snappy_at_its_densest_still_decodes() -> None:
    """The expansion limit must admit the most compressible real input."""
    for size in (0, 1, 64, 4096, 1 << 20):
        value = b"\0" * size
        rec = record(b"z", bytes(cramjam.snappy.compress_raw(value)))
        assert s4db.decode_value(rec, entry_for(rec, b"z")) == value


# --- names and headers ---------------------------------------------------------------


def test_data_file_names() -> None:
    assert s4db.data_file_name(7) == "data_000007.s4db"
    assert s4db.data_file_name(0x5EED0001 << 32 | 1234567) == "data_5eed0001_1234567.s4db"
    assert s4db.parse_data_file_name("data_000007.s4db") == 7
    assert s4db.parse_data_file_name("data_5eed0001_000002.s4db") == 0x5EED0001 << 32 | 2
    for name in (
        "index.idx",
        "data_7.s4db",
        "data_0000007.s4db",  # not the canonical spelling of 7
        "data_00000000_000007.s4db",  # writer 0 is spelled without its id
        "data_5EED0001_000002.s4db",
        f"data_{2**32}.s4db",
        "data_٠٠٠٠٠٧.s4db",  # Arabic-Indic digits
        "data_000007.s4db.tmp",
    ):
        assert s4db.parse_data_file_name(name) is None, name


@pytest.mark.parametrize(
    ("head", "message"),
    [
        (b"S4DB\x02\0\0", "shorter than the 9-byte header"),
        (b"S4DX\x02\0\0\0\x01", "bad magic"),
        (b"S4DB\x03\0\0\0\x01", "unsupported version 3"),
    ],
)
def test_bad_data_header(head: bytes, message: str) -> None:
    with pytest.raises(FormatError, match=message):
        s4db.parse_data_header(head)
