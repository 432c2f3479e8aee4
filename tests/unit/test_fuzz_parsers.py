"""Hypothesis fuzzing of the parsers test_format_fuzz.py does not reach.

test_format_fuzz.py sweeps whole containers (truncations, byte corruptions, random
builder input through `parse_whole`). This file drives the other entry points with
inputs a store, a sidecar or a writer could hand over: `open_container` with any
(size, tail, head), including combinations that contradict each other; DES2 and DESHEAD1
indices whose every field is random; `.meta` sidecars; raw entry names; external keys;
compressed frames read incrementally; persistent index cache records; and the metadata
times and sizes that become stat values. Each example is cheap and every test has a fixed
example count, so the file runs in a few seconds; DESFS_FUZZ_EXAMPLES raises the count, and
fuzz/ holds the atheris harnesses for longer runs (docs/RELIABILITY.md, "Fuzzing").
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import struct
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from desfs.archive.catalog import ContainerRef
from desfs.cache.persistent import IndexStore
from desfs.errors import EntryError, FormatError
from desfs.format.codecs import PayloadStream, decode_payload
from desfs.format.container import open_container, parse_whole
from desfs.format.model import Codec, ContainerIndex, Entry, External, Format, NeedBytes
from desfs.format.writer import compress
from desfs.fs.attributes import STAT_MAX, Attr, Ownership, entry_mtime_ns
from desfs.namespace.layout import ContainerName, Layout, external_key
from desfs.namespace.tombstones import tombstoned_uids
from desfs.namespace.tree import FileNode, build_tree
from tests.support import fixtures
from tests.support.builders import build_des2, build_des2_v1, build_deshead1
from tests.support.opening import check_need, windowed_open

# CI runs a fixed 200 examples per test, the same ones every run (a red CI must be this
# change's); DESFS_FUZZ_EXAMPLES=20000 makes a long local run that explores afresh, and
# what it finds is kept below as an @example.
FUZZ = settings(
    max_examples=int(os.environ.get("DESFS_FUZZ_EXAMPLES", "200")),
    derandomize="DESFS_FUZZ_EXAMPLES" not in os.environ,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

U64 = st.one_of(
    st.integers(0, 400),
    st.integers(0, 2**64 - 1),
    st.sampled_from([2**32 - 1, 2**63 - 1, 2**63, 2**64 - 1]),
)
FOOTER_FIELDS = st.lists(U64, min_size=7, max_size=7)


# -- open_container: any (size, tail, head) --------------------------------------------------


@st.composite
def tails(draw: st.DrawFn) -> bytes:
    """Random bytes, usually ending in a DES2 or DESHEAD1 footer with random fields."""
    body = draw(st.binary(max_size=300))
    kind = draw(st.sampled_from(["des2", "deshead1", "raw"]))
    if kind == "des2":
        return body + b"DESI" + struct.pack("<Q", draw(U64))
    if kind == "deshead1":
        version = draw(st.sampled_from([1, 1, 2]))
        fields = struct.pack("<7Q", *draw(FOOTER_FIELDS))
        return body + b"DESFOOT1" + bytes([version]) + bytes(7) + fields
    return body


HEADS = st.one_of(
    st.none(),
    st.sampled_from(
        [
            b"",
            b"DES2",
            b"DES2\x01\0\0\0",
            b"DES2\x02\0\0\0",
            b"DES2\x02\0\0\0" + bytes(8),
            b"DES2\x03\0\0\0",
            b"DES2\x02\0\x01\0",
            b"DESHEAD1",
            b"DESHEAD1\x01" + bytes(7),
            b"DESHEAD1\x02" + bytes(7),
        ]
    ),
    st.binary(max_size=40),
)
SIZES = st.one_of(st.integers(-3, 1000), st.integers(0, 2**64), st.just(2**63))


@FUZZ
@given(tail=tails(), head=HEADS, size=SIZES, slack=st.none() | st.integers(0, 80))
def test_open_container_with_any_size_tail_and_head(
    tail: bytes, head: bytes | None, size: int, slack: int | None
) -> None:
    if slack is not None:
        size = len(tail) + slack  # consistent sizes are the interesting ones
    try:
        result = open_container(size, tail, head)
    except FormatError:
        return
    if isinstance(result, NeedBytes):
        check_need(result, size, len(tail))
        return
    assert isinstance(result, ContainerIndex)
    assert result.size == size
    assert 0 <= result.data_start <= result.data_end <= result.index_start <= size


def _samples() -> list[bytes]:
    found = [p.read_bytes() for p in fixtures.containers() if p.stat().st_size < 4096]
    found += [
        build_deshead1([("a.txt", b"hello", None), ("d/b", b"x" * 100, {"k": 1})]),
        build_des2([("a", b"hello", None), ("b/c", b"y" * 50, {"m": 2})]),
        build_des2([("z", b"zstd " * 40, None)], Codec.ZSTD),
        build_des2_v1([("a", b"hello")], "nocodec"),
        build_des2_v1([("a", b"hello"), ("bb", b"")], "codec"),
    ]
    return found


SAMPLES = _samples()


@st.composite
def damaged(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SAMPLES)))
    for _ in range(draw(st.integers(0, 2))):
        kind = draw(st.sampled_from(["set", "cut", "append"]))
        if kind == "set" and data:
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
        elif kind == "cut":
            del data[draw(st.integers(0, len(data))) :]
        else:
            data += draw(st.binary(max_size=20))
    return bytes(data)


def _with_version(data: bytes, version: int) -> bytes:
    return data[:8] + bytes([version]) + data[9:]


HEAD1 = build_deshead1([("a.txt", b"hello", None), ("d/b", b"x" * 100, {"k": 1})])


@FUZZ
@given(data=damaged(), window=st.integers(1, 5000), head_len=st.sampled_from([None, 8, 16]))
# Found by a CI run: a DESHEAD1 head with version 0, opened with DES2's 8-byte head.
@example(data=_with_version(HEAD1, 0), window=1, head_len=8)
@example(data=_with_version(HEAD1, 0), window=1, head_len=16)
def test_windowed_open_agrees_with_the_whole_parse(
    data: bytes, window: int, head_len: int | None
) -> None:
    """A container reads the same through any window as from a whole local file.

    One asymmetry is by design: without a head, or with a head too short to hold its
    version byte (the 8 bytes read for DES2), a DESHEAD1 container opens from its footer
    alone, so a damaged head is noticed only when its first 9 bytes are read.
    """
    window = min(window, len(data))
    whole: ContainerIndex | None
    try:
        whole = parse_whole(data)
    except FormatError:
        whole = None
    try:
        head = None if head_len is None else data[:head_len]
        opened: ContainerIndex | None = windowed_open(data, window, head)
    except FormatError:
        opened = None
    if whole is None and opened is not None and (head_len is None or head_len <= 8):
        assert opened.format is Format.DESHEAD1 and data[:9] != b"DESHEAD1\x01"
        return
    assert opened == whole


# -- indices with random fields -----------------------------------------------------------

B_ENTRIES = st.builds(
    fixtures.BEntry,
    name=st.binary(max_size=10),
    stored=st.binary(max_size=40),
    codec=st.integers(0, 255),
    size=st.none() | U64,
    meta=st.binary(max_size=20) | st.sampled_from([b'{"a":[1]}', b"[[[[", b"{}", b"[" * 5000]),
    flags=st.integers(0, 255),
    bigfile_hash=st.none() | st.binary(max_size=70) | st.just(b"ab" * 32),
    bigfile_size=U64,
    offset=st.none() | U64,
    length=st.none() | U64,
    compressed_size=st.none() | U64,
)
A_ENTRIES = st.builds(
    fixtures.AEntry,
    name=st.binary(max_size=10),
    data=st.binary(max_size=40),
    meta=st.binary(max_size=20) | st.sampled_from([b'{"external_key":"../x"}', b'{"a":1}']),
    flags=st.integers(0, 2**32 - 1),
    data_offset=st.none() | U64,
    data_length=st.none() | U64,
    meta_offset=st.none() | U64,
    meta_length=st.none() | U64,
)


def check_parsed(data: bytes) -> ContainerIndex | None:
    """parse_whole gives an index whose readable entries lie inside the data and decode
    to exactly their size or fail with EntryError; or it raises FormatError."""
    try:
        index = parse_whole(data)
    except FormatError:
        return None
    for position, entry in enumerate(index.entries):
        assert entry.position == position
        if entry.error is not None or entry.external is not None:
            continue
        assert 0 <= entry.size <= STAT_MAX
        assert index.data_start <= entry.offset <= entry.offset + entry.stored_length
        assert entry.offset + entry.stored_length <= index.data_end
        stored = data[entry.offset : entry.offset + entry.stored_length]
        with contextlib.suppress(EntryError):
            assert len(decode_payload(entry, stored)) == entry.size
    return index


@FUZZ
@given(
    entries=st.lists(B_ENTRIES, max_size=5),
    version=st.sampled_from([1, 2, 2, 0, 3]),
    variant=st.sampled_from(["codec", "nocodec"]),
    count=st.none() | st.integers(0, 8) | st.integers(0, 2**32 - 1),
    trailing=st.binary(max_size=8),
)
def test_des2_index_with_random_fields(
    entries: list[fixtures.BEntry], version: int, variant: str, count: int | None, trailing: bytes
) -> None:
    data = fixtures.build_des2(entries, version, variant, count, trailing)
    index = check_parsed(data)
    if index is not None:
        assert index.format is Format.DES2 and index.version == version
        assert len(index.entries) == (len(entries) if count is None else count)


@FUZZ
@given(
    entries=st.lists(A_ENTRIES, max_size=5),
    count=st.none() | st.integers(0, 8) | st.integers(0, 2**64 - 1),
)
def test_deshead1_index_with_random_fields(
    entries: list[fixtures.AEntry], count: int | None
) -> None:
    index = check_parsed(fixtures.build_deshead1(entries, count))
    if index is not None:
        assert len(index.entries) == (len(entries) if count is None else count)


# -- tombstone sidecars ------------------------------------------------------------------

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=12,
)
RECORDS = st.one_of(JSON_VALUES, st.fixed_dictionaries({"uid": JSON_VALUES}))
SIDECARS = st.one_of(
    JSON_VALUES,
    st.fixed_dictionaries(
        {"tombstones": st.dictionaries(st.text(max_size=4), RECORDS, max_size=5) | JSON_VALUES},
        optional={"index": JSON_VALUES},
    ),
)


def expected_uids(document: object) -> frozenset[str] | None:
    """The uids a sidecar tombstones, by des-formats.md §2.11; None when malformed."""
    if not isinstance(document, dict):
        return None
    tombstones = document.get("tombstones", {})
    if not isinstance(tombstones, dict):
        return None
    found = set()
    for record in tombstones.values():
        uid = record.get("uid") if isinstance(record, dict) else None
        if isinstance(uid, int) and not isinstance(uid, bool):
            found.add(str(uid))
        elif isinstance(uid, str):
            found.add(uid)
    return frozenset(found)


@FUZZ
@given(document=SIDECARS)
def test_tombstoned_uids_of_any_json(document: object) -> None:
    expected = expected_uids(document)
    try:
        found = tombstoned_uids(json.dumps(document).encode())
    except FormatError:
        assert expected is None
        return
    assert found == expected


@FUZZ
@given(
    data=st.binary(max_size=300)
    | st.integers(1, 50_000).map(lambda n: b'{"tombstones": {"a": ' + b"[" * n)
)
def test_tombstoned_uids_of_any_bytes(data: bytes) -> None:
    try:
        found = tombstoned_uids(data)
    except FormatError:
        return
    assert all(isinstance(uid, str) for uid in found)


# -- raw names -------------------------------------------------------------------------------

COMPONENTS = st.sampled_from(
    ["a", "b", "", ".", "..", "\x00", "é", "x" * 256, "\udcff", "c/d", "\\", "..\\x"]
)
RAW_NAMES = st.one_of(
    st.binary(max_size=16),
    st.lists(COMPONENTS, max_size=5).map(lambda p: "/".join(p).encode("utf-8", "surrogatepass")),
    st.binary(max_size=8).map(lambda b: b.replace(b"\x01", b"/").replace(b"\x02", b"..")),
)


@FUZZ
@given(names=st.lists(RAW_NAMES, max_size=14), deleted=st.sets(st.integers(0, 13)))
def test_build_tree_on_any_raw_names(names: list[bytes], deleted: set[int]) -> None:
    entries = [Entry(n, i, 1, 8, 1, deleted=i in deleted) for i, n in enumerate(names)]
    tree = build_tree(entries)
    exposed = set()
    for path, node in tree.walk():
        assert all(p not in ("", ".", "..") and "\x00" not in p for p in path.split("/"))
        assert tree.resolve(path) == node
        if isinstance(node, FileNode):
            exposed.add(node.position)
    hidden = {h.position for h in tree.hidden}
    assert exposed.isdisjoint(hidden)
    assert exposed | hidden == set(range(len(entries)))
    # Every raw name still reaches its winning (last) entry, exposed or not.
    last = {entry.name: entry for entry in entries}
    for raw, entry in last.items():
        assert tree.by_raw_name(raw) is entry


KEY_PARTS = st.sampled_from(["2024-12-03", "_bigFiles", "..", ".", "", "a", "\\", "x\x00", "/"])
KEYS = st.lists(KEY_PARTS, max_size=5).map("/".join)


@FUZZ
@example(  # regression: a name with a backslash became a key no other path may produce
    container="2024-12-03/c.des",
    name=b"..\\..\\x",
    hint=None,
    sha=None,
    fmt=Format.DESHEAD1,
    prefix="",
)
@given(
    container=KEYS.map(lambda k: k + "/c.des") | st.just("c.des"),
    name=RAW_NAMES,
    hint=st.none() | KEYS | st.text(max_size=12),
    sha=st.none() | st.just("ab" * 32) | st.text(max_size=70),
    fmt=st.sampled_from([Format.DESHEAD1, Format.DES2]),
    prefix=st.sampled_from(["", "root/", "2024-12-03/"]),
)
def test_external_keys_stay_under_bigfiles(
    container: str, name: bytes, hint: str | None, sha: str | None, fmt: Format, prefix: str
) -> None:
    entry = Entry(name, 0, 1, 0, 0, external=External(sha256=sha, key_hint=hint))
    key = external_key(container, entry, fmt, "_bigFiles", prefix)
    if key is None:
        return
    parts = key.split("/")
    assert all(p not in ("", ".", "..") and "\x00" not in p and "\\" not in p for p in parts)
    assert "_bigFiles" in parts[:-1]
    if fmt is Format.DES2:
        assert parts[-1] == sha and parts[-2] == "_bigFiles"


# -- compressed frames read incrementally ------------------------------------------------


class Dribble:
    """A source that hands out at most `step` bytes per read, as a slow store would."""

    def __init__(self, data: bytes, step: int) -> None:
        self._stream = io.BytesIO(data)
        self._step = step

    def read(self, size: int) -> bytes:
        return self._stream.read(min(size, self._step))


def drain(stream: PayloadStream, want: int, size: int) -> Iterator[bytes]:
    for _ in range(size + 100):  # each read gives at least one byte or ends
        chunk = stream.read(want)
        assert len(chunk) <= want
        if not chunk:
            return
        yield chunk
    raise AssertionError("the stream never ended")


@FUZZ
@given(
    payload=st.binary(max_size=3000),
    codec=st.sampled_from([Codec.ZSTD, Codec.LZ4]),
    size_delta=st.sampled_from([0, 0, 0, -1, 1, -100, 10**9]),
    damage=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=3),
    cut=st.none() | st.integers(0, 10**6),
    random_frame=st.booleans(),
    step=st.sampled_from([1, 7, 4096, 1 << 20]),
    want=st.sampled_from([1, 100, 1 << 20]),
)
def test_payload_stream_on_any_frame(
    payload: bytes,
    codec: Codec,
    size_delta: int,
    damage: list[tuple[int, int]],
    cut: int | None,
    random_frame: bool,
    step: int,
    want: int,
) -> None:
    """Output is bounded by the entry size, ends, and failure is only EntryError; a frame
    the whole-payload decoder accepts streams to the very same bytes."""
    stored = bytearray(payload if random_frame else compress(payload, codec, None))
    for at, value in damage:
        if stored:
            stored[at % len(stored)] = value
    if cut is not None:
        del stored[cut % (len(stored) + 1) :]
    size = max(0, len(payload) + size_delta)
    entry = Entry(b"f", 0, size, 8, len(stored), codec)
    whole: bytes | None = None
    with contextlib.suppress(EntryError):
        whole = decode_payload(entry, bytes(stored))
    out = io.BytesIO()
    try:
        for chunk in drain(PayloadStream(entry, Dribble(bytes(stored), step)), want, size):
            out.write(chunk)
            assert out.tell() <= size
    except EntryError:
        assert whole is None
        return
    assert out.tell() == size
    assert whole is None or whole == out.getvalue()
    if not (random_frame or damage or cut is not None or size_delta):
        assert out.getvalue() == payload


# -- stat values from hostile entries (regressions) -------------------------------------------

REF = ContainerRef(
    ContainerName("c.des", "2024-12-03", "c", Layout.DATAVISION), 100, "e", 1_500_000_000
)
TIME_VALUES = st.one_of(
    st.integers(-(10**20), 10**20),
    st.floats(),
    st.sampled_from(["9999-12-31", "0001-01-01", "0001-01-01T00:00:00+14:00", "2262-04-12"]),
    st.dates().map(str),
    st.datetimes().map(lambda d: d.isoformat()),
    st.text(max_size=20),
)
TIME_KEYS = st.sampled_from(["mtime", "modified", "created_at", "timestamp"])


@FUZZ
@given(
    meta=st.dictionaries(TIME_KEYS, TIME_VALUES, max_size=4).map(lambda d: json.dumps(d).encode())
    | st.integers(1, 50_000).map(lambda n: b'{"mtime": ' + b"[" * n),
    size=U64,
)
def test_stat_values_of_any_entry_fit_the_kernel(meta: bytes, size: int) -> None:
    """Regression: an mtime after 2262 or before 1678, metadata nested too deep for the JSON
    parser, or an (unreadable) entry claiming more than 2**63-1 bytes failed the whole
    listing of its shard with EIO, since st_size and st_mtime_ns are signed 64-bit."""
    entry = Entry(b"f", 0, size, 8, 0, meta=meta, error="too large" if size > STAT_MAX else None)
    mtime = entry_mtime_ns(REF, entry)
    attr = Attr.file(1, entry.size, mtime, Ownership(0, 0), 1.0)
    assert -STAT_MAX <= attr.mtime_ns <= STAT_MAX
    assert 0 <= attr.size <= STAT_MAX


# -- persistent index cache records ------------------------------------------------------


@FUZZ
@given(
    damage=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), min_size=1, max_size=4),
    reseal=st.booleans(),
    cut=st.none() | st.integers(0, 10**6),
)
def test_index_cache_records_with_any_damage(
    tmp_path_factory: pytest.TempPathFactory,
    damage: list[tuple[int, int]],
    reseal: bool,
    cut: int | None,
) -> None:
    """A damaged record is a miss or bytes that still end at the object's size; the
    checksum is resealed in half the examples so the field checks behind it are reached."""
    directory = tmp_path_factory.mktemp("store")
    data = SAMPLES[0]
    store = IndexStore(directory, 1 << 20, "src")
    store.put("k.des", "etag", len(data), data, 0, data[:16])
    (path,) = directory.glob("*.idx")
    record = bytearray(path.read_bytes())
    for at, value in damage:
        record[at % len(record)] = value
    if cut is not None:
        del record[cut % (len(record) + 1) :]
    if reseal and len(record) >= 42:
        record[10:42] = hashlib.sha256(record[42:]).digest()
    path.write_bytes(bytes(record))
    cached = store.get("k.des", "etag", len(data))
    if cached is not None:
        assert cached.size == len(data)
        assert cached.tail_start + len(cached.tail) == len(data)
