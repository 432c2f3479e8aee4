"""Opening a unit of another store: its index, made into entries and a tree like a DES
container's, so every layer above reads it the same way.

What an open costs (docs/formats/README.md):
* a datas3t2 datarange: 1 GET of its index, then the TAR headers that hold the names,
  read in coalesced range GETs (`probe_ranges`): about one GET per `PROBE_SPAN` of a TAR
  of small datapoints, one per datapoint when they are far apart;
* an s4db store: 1 GET of `index.idx`, then the first bytes of every record for the value
  sizes (the index has none), coalesced the same way per data file;
* a Conduit data directory: 1 suffix GET of each compressed file's seek table (64 KiB,
  plus one GET for a bigger table); nothing for an uncompressed file or an empty one.

An entry the store's bytes disagree with (a TAR header that is not its index's, a record
head that does not parse, a seek table that is damaged) is listed and fails alone: its
reads give EIO. A failure of the unit's own index fails the unit.
"""

from __future__ import annotations

import logging
from array import array
from bisect import bisect_left
from collections.abc import Awaitable, Callable, Iterable, Sequence
from functools import partial

import trio

from desfs.archive.catalog import ContainerRef
from desfs.archive.opened import Container
from desfs.errors import DesfsError, EntryError, FormatError, ObjectMissing, PartialContainer
from desfs.format import conduit, datas3t2, s4db, seekable
from desfs.format.model import Codec, ContainerIndex, Elsewhere, Entry, Format
from desfs.format.packed import PackedEntries
from desfs.namespace.layout import Layout
from desfs.namespace.tree import build_tree
from desfs.storage.aio import AsyncStore
from desfs.storage.base import ObjectInfo

log = logging.getLogger(__name__)

PROBE_GAP = 256 * 1024  # bytes between two wanted ranges still read in the same GET
PROBE_SPAN = 8 * 1024 * 1024  # bytes one probe GET spans at most
PROBES_AT_ONCE = 4  # probe GETs in flight per open: bounds the bytes held, too
SEEK_TABLE_WINDOW = 64 * 1024
MAX_SEEK_TABLE = 64 * 1024 * 1024  # 5M frames; a footer claiming more is refused unread
MAX_S4DB_INDEX = 256 * 1024 * 1024  # about 6M keys; s4db's own reader holds it all too
KEEP_WHOLE = 2 * 1024 * 1024  # a TAR fetched whole and this small is kept with its index
INDEX_SLACK = 1024 * 1024  # a zstd stream of a datas3t2 index may be a little larger
S4 = Codec.S4_RECORD

Take = Callable[[int, bytes], None]  # (position in the wanted ranges, their bytes)


def probe_ranges(wanted: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sorted non-empty ranges `[start, end)` merged into the range GETs that fetch them:
    ranges closer than `PROBE_GAP` share a GET, and no GET spans more than `PROBE_SPAN`
    (a single wanted range longer than that is one GET of its own)."""
    merged: list[tuple[int, int]] = []
    for start, end in sorted(wanted):
        if end <= start:
            continue
        if merged:
            lo, hi = merged[-1]
            if start - hi <= PROBE_GAP and max(end, hi) - lo <= PROBE_SPAN:
                merged[-1] = (lo, max(hi, end))
                continue
        merged.append((start, end))
    return merged


class StoreOpener:
    def __init__(self, storage: AsyncStore) -> None:
        self._storage = storage

    async def open(self, ref: ContainerRef) -> Container:
        layout = ref.name.layout
        etag = ref.etag
        entries: Sequence[Entry]  # a data directory holds a few files: a plain list
        tail = b""  # bytes [size - len(tail), size) of the unit's object, kept with it
        if layout is Layout.DATAS3T2:
            entries, tail = await self._datarange(ref)
            fmt = Format.DATAS3T2
        elif layout is Layout.S4DB:
            etag, entries = await self._s4db(ref)
            fmt = Format.S4DB
        else:
            entries = await self._conduit(ref)
            fmt = Format.CONDUIT
        index = ContainerIndex(fmt, 1, ref.size, 0, ref.size, ref.size, entries)
        tree = await trio.to_thread.run_sync(build_tree, entries)
        return Container(ref, etag, index, tree, tail)

    async def _probe(
        self, key: str, etag: str | None, wanted: Sequence[tuple[int, int]], take: Take
    ) -> None:
        """Hand `take` the bytes of every wanted range of one object as its coalesced
        range GET arrives (nothing is gathered: a million headers are never all held).
        `wanted` is sorted by start, and starts strictly increase."""
        limiter = trio.CapacityLimiter(PROBES_AT_ONCE)
        starts = [start for start, _ in wanted]

        async def fetch(lo: int, hi: int) -> None:
            async with limiter:
                data = await self._storage.read_range(key, lo, hi, etag)
            # A short reply leaves the ranges it does not cover out: their entries fail.
            covered = lo + len(data)
            for at in range(bisect_left(starts, lo), bisect_left(starts, hi)):
                start, end = wanted[at]
                if end <= covered:
                    take(at, data[start - lo : end - lo])

        await _all([partial(fetch, lo, hi) for lo, hi in probe_ranges(wanted)])

    # -- datas3t2 --------------------------------------------------------------------------

    async def _datarange(self, ref: ContainerRef) -> tuple[PackedEntries, bytes]:
        parsed = datas3t2.parse_datarange_key(ref.key)
        index = ref.sidecar
        if parsed is None or index is None:
            raise FormatError(f"{ref.key}: not a datas3t2 datarange with an index")
        most = datas3t2.RECORD_SIZE * parsed.count + INDEX_SLACK
        if index.size > most:
            raise FormatError(f"{index.key}: {index.size} bytes, more than {most} can hold")
        # A TAR of small datapoints is read whole by the header probe anyway: when the
        # listing says so (its size, and its count in its name), fetch it beside the index,
        # in the same round trip.
        whole = 0 < ref.size <= PROBE_SPAN and ref.size <= parsed.count * PROBE_GAP
        found: dict[str, bytes] = {}

        async def fetch(name: str, read: Callable[[], Awaitable[bytes]]) -> None:
            found[name] = await read()

        calls = [partial(fetch, "index", partial(self._whole, index.key))]
        if whole:
            tar = partial(self._storage.read_range, ref.key, 0, ref.size, ref.etag)
            calls.append(partial(fetch, "tar", tar))
        await _all(calls)
        records = await trio.to_thread.run_sync(
            datas3t2.parse_index, found["index"], parsed.first, parsed.last, ref.size
        )
        if records and datas3t2.tar_size_for(records) != ref.size:
            # What datas3t2 checks before it commits an upload: this TAR is not one it
            # would have accepted (a PAX header shifts every later record, for one).
            raise FormatError(
                f"{ref.key}: {ref.size} bytes, its index describes a "
                f"{datas3t2.tar_size_for(records)}-byte TAR"
            )
        names: list[bytes | str] = ["no TAR header was read"] * len(records)

        def take(at: int, block: bytes) -> None:
            names[at] = _datapoint_name(records[at], block)

        heads = [datas3t2.header_range(r) for r in records]
        if "tar" in found:
            for at, (start, length) in enumerate(heads):
                take(at, found["tar"][start : start + length])
        else:
            await self._probe(ref.key, ref.etag, [(o, o + n) for o, n in heads], take)
        entries = PackedEntries()
        for record, name in zip(records, names, strict=True):
            offset, size = datas3t2.data_range(record)
            if isinstance(name, bytes):
                entries.append(name, size, offset, size)
            else:  # listed under its number alone: `ls` shows it, reading it says why
                entries.append(f"{record.key:020d}".encode(), size, offset, size, error=name)
        # A small TAR read whole stays with its index, as a DES container's tail does:
        # its datapoints are then read from memory (the index budget counts it).
        kept = found.get("tar", b"") if ref.size <= KEEP_WHOLE else b""
        return entries, kept

    async def _whole(self, key: str) -> bytes:
        return (await self._storage.read_object(key)).data

    # -- s4db ------------------------------------------------------------------------------

    async def _s4db(self, ref: ContainerRef) -> tuple[str, PackedEntries]:
        if ref.size > MAX_S4DB_INDEX:
            raise FormatError(f"{ref.key}: {ref.size} bytes, over the {MAX_S4DB_INDEX}-byte limit")
        blob = await self._storage.read_object(ref.key)
        parsed = await trio.to_thread.run_sync(s4db.parse_index, blob.data)
        by_id: dict[int, list[int]] = {}
        for at, item in enumerate(parsed.entries):
            by_id.setdefault(item.file_id, []).append(at)
        by_file = {s4db.data_file_name(file_id): found for file_id, found in by_id.items()}
        sizes = array("q", [-1]) * len(parsed.entries)  # -1 until a head says otherwise
        errors: dict[int, str] = {}
        listed = {part.key: part.size for part in ref.parts}

        async def heads(name: str, positions: list[int]) -> None:
            items = sorted(positions, key=lambda at: parsed.entries[at].offset)
            if name in listed:
                # Records past the listed end are damage (or a newer index than the
                # listing: the next listing reopens the store); never asked for.
                items = _inside(parsed.entries, items, listed[name], errors)

            def take(at: int, head: bytes) -> None:
                item = parsed.entries[items[at]]
                try:
                    sizes[items[at]] = s4db.value_size(head, item)
                except EntryError as exc:
                    errors[items[at]] = str(exc)

            wanted = [_head(parsed.entries[at]) for at in items]
            try:
                await self._probe(name, None, wanted, take)
            except ObjectMissing:
                for at in items:
                    errors[at] = f"data file {name} is missing (compacted away?)"

        await _all([partial(heads, name, items) for name, items in by_file.items()])
        places = {file_id: i + 1 for i, file_id in enumerate(by_id)}  # one per data file
        entries = PackedEntries([None, *(Elsewhere(name, None, 0) for name in by_file)])
        for at, item in enumerate(parsed.entries):
            error = errors.get(at) or (None if sizes[at] >= 0 else "its record head was not read")
            size = max(sizes[at], 0)
            place = places[item.file_id]
            entries.append(item.key, size, item.offset, item.length, S4, place, error)
        return blob.etag, entries

    # -- ConduitFlatFileDB -------------------------------------------------------------------

    async def _conduit(self, ref: ContainerRef) -> list[Entry]:
        mutable = conduit.mutable_file(part.key for part in ref.parts)
        entries: list[Entry | None] = [None] * len(ref.parts)

        async def one(position: int) -> None:
            part = ref.parts[position]
            entries[position] = await self._data_file(position, part, part.key == mutable)

        await _all([partial(one, position) for position in range(len(ref.parts))])
        return [entry for entry in entries if entry is not None]

    async def _data_file(self, position: int, part: ObjectInfo, mutable: bool) -> Entry:
        key, size, etag, name = part.key, part.size, part.etag, part.key.encode()
        if not key.endswith(".zst"):
            # Append-only: the listed bytes never change, so the mutable file is not pinned.
            where = Elsewhere(key, None if mutable else etag, size)
            return Entry(name, position, size, 0, size, elsewhere=where)
        try:
            table, etag = await self._seek_table(key, size)
        except (FormatError, PartialContainer) as exc:
            state = "being written" if mutable else "damaged"
            log.warning("%s: seek table %s: %s", key, state, exc)
            where = Elsewhere(key, etag, size)
            return Entry(name, position, 0, 0, 0, Codec.SEEKABLE, error=str(exc), elsewhere=where)
        where = Elsewhere(key, etag, size, table)
        return Entry(
            name, position, table.size, 0, table.data_size, Codec.SEEKABLE, elsewhere=where
        )

    async def _seek_table(self, key: str, size: int) -> tuple[seekable.SeekTable, str]:
        if size == 0:
            return seekable.EMPTY_TABLE, ""
        tail = await self._storage.read_suffix(key, min(size, SEEK_TABLE_WINDOW))
        _, _, table_size = seekable.parse_seek_table_footer(tail.data, tail.size)
        if table_size > MAX_SEEK_TABLE:
            raise FormatError(f"{key}: a {table_size}-byte seek table, over {MAX_SEEK_TABLE}")
        data = tail.data
        if table_size > len(data):
            start = tail.size - table_size
            data = await self._storage.read_range(key, start, tail.size, tail.etag)
        table = seekable.parse_seek_table(data, tail.size)
        return table, tail.etag


async def _all(calls: Sequence[Callable[[], Awaitable[None]]]) -> None:
    """Run `calls` concurrently; the first DesfsError is raised as itself (not inside an
    exception group), so its errno reaches the caller."""
    failed: list[DesfsError] = []

    async def run(call: Callable[[], Awaitable[None]]) -> None:
        try:
            await call()
        except DesfsError as exc:
            failed.append(exc)

    async with trio.open_nursery() as nursery:
        for call in calls:
            nursery.start_soon(run, call)
    if failed:
        raise failed[0]


def _datapoint_name(record: datas3t2.IndexRecord, block: bytes) -> bytes | str:
    """The datapoint's name from its TAR header, or why the header does not give it."""
    try:
        member = datas3t2.parse_tar_header(block, record.header_offset)
        return datas3t2.verify_member(record, member).encode()
    except EntryError as exc:
        return str(exc)


def _inside(
    entries: Sequence[s4db.S4Entry], items: list[int], file_size: int, errors: dict[int, str]
) -> list[int]:
    kept = []
    for at in items:
        try:
            s4db.check_extent(entries[at], file_size)
        except EntryError as exc:
            errors[at] = str(exc)
            continue
        kept.append(at)
    return kept


def _head(item: s4db.S4Entry) -> tuple[int, int]:
    return item.offset, item.offset + item.head_length
