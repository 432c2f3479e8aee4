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
from collections.abc import Awaitable, Callable, Iterable, Sequence
from functools import partial

import trio

from desfs.archive.catalog import ContainerRef
from desfs.archive.opened import Container
from desfs.errors import DesfsError, EntryError, FormatError, ObjectMissing, PartialContainer
from desfs.format import conduit, datas3t2, s4db, seekable
from desfs.format.model import Codec, ContainerIndex, Elsewhere, Entry, Format
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
INDEX_SLACK = 1024 * 1024  # a zstd stream of a datas3t2 index may be a little larger


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
        if layout is Layout.DATAS3T2:
            entries = await self._datarange(ref)
            fmt = Format.DATAS3T2
        elif layout is Layout.S4DB:
            etag, entries = await self._s4db(ref)
            fmt = Format.S4DB
        else:
            entries = await self._conduit(ref)
            fmt = Format.CONDUIT
        index = ContainerIndex(fmt, 1, ref.size, 0, ref.size, ref.size, entries)
        tree = await trio.to_thread.run_sync(build_tree, entries)
        return Container(ref, etag, index, tree, b"")

    async def _probe(
        self, key: str, etag: str | None, wanted: Sequence[tuple[int, int]]
    ) -> dict[tuple[int, int], bytes]:
        """The bytes of every wanted range of one object, in coalesced range GETs."""
        found: dict[tuple[int, int], bytes] = {}
        limiter = trio.CapacityLimiter(PROBES_AT_ONCE)
        targets = sorted(set(wanted))

        async def fetch(lo: int, hi: int) -> None:
            async with limiter:
                data = await self._storage.read_range(key, lo, hi, etag)
            # A short reply leaves the ranges it does not cover out: their entries fail.
            for start, end in targets:
                if lo <= start and end <= lo + len(data):
                    found[(start, end)] = data[start - lo : end - lo]

        await _all([partial(fetch, lo, hi) for lo, hi in probe_ranges(targets)])
        return found

    # -- datas3t2 --------------------------------------------------------------------------

    async def _datarange(self, ref: ContainerRef) -> list[Entry]:
        parsed = datas3t2.parse_datarange_key(ref.key)
        index = ref.sidecar
        if parsed is None or index is None:
            raise FormatError(f"{ref.key}: not a datas3t2 datarange with an index")
        most = datas3t2.RECORD_SIZE * parsed.count + INDEX_SLACK
        if index.size > most:
            raise FormatError(f"{index.key}: {index.size} bytes, more than {most} can hold")
        blob = await self._storage.read_object(index.key)
        records = await trio.to_thread.run_sync(
            datas3t2.parse_index, blob.data, parsed.first, parsed.last, ref.size
        )
        if records and datas3t2.tar_size_for(records) != ref.size:
            # What datas3t2 checks before it commits an upload: this TAR is not one it
            # would have accepted (a PAX header shifts every later record, for one).
            raise FormatError(
                f"{ref.key}: {ref.size} bytes, its index describes a "
                f"{datas3t2.tar_size_for(records)}-byte TAR"
            )
        heads = [datas3t2.header_range(r) for r in records]
        blocks = await self._probe(ref.key, ref.etag, [(o, o + n) for o, n in heads])
        return [_datapoint(i, r, blocks) for i, r in enumerate(records)]

    # -- s4db ------------------------------------------------------------------------------

    async def _s4db(self, ref: ContainerRef) -> tuple[str, list[Entry]]:
        blob = await self._storage.read_object(ref.key)
        parsed = await trio.to_thread.run_sync(s4db.parse_index, blob.data)
        by_file: dict[str, list[s4db.S4Entry]] = {}
        for item in parsed.entries:
            by_file.setdefault(item.file_name, []).append(item)
        sizes: dict[bytes, int | str] = {}
        listed = {part.key: part.size for part in ref.parts}

        async def heads(name: str, items: list[s4db.S4Entry]) -> None:
            if name in listed:
                # Records past the listed end are damage (or a newer index than the
                # listing: the next listing reopens the store); never asked for.
                items = _inside(items, listed[name], sizes)
            try:
                found = await self._probe(name, None, [_head(item) for item in items])
            except ObjectMissing:
                for item in items:
                    sizes[item.key] = f"data file {name} is missing (compacted away?)"
                return
            for item in items:
                try:
                    sizes[item.key] = s4db.value_size(found.get(_head(item), b""), item)
                except EntryError as exc:
                    sizes[item.key] = str(exc)

        await _all([partial(heads, name, items) for name, items in by_file.items()])
        places = {name: Elsewhere(name, None, 0) for name in by_file}  # one per data file
        entries = [
            _s4_entry(i, item, sizes[item.key], places[item.file_name])
            for i, item in enumerate(parsed.entries)
        ]
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


def _datapoint(
    position: int, record: datas3t2.IndexRecord, blocks: dict[tuple[int, int], bytes]
) -> Entry:
    start, length = datas3t2.header_range(record)
    offset, size = datas3t2.data_range(record)
    try:
        member = datas3t2.parse_tar_header(blocks[(start, start + length)], start)
        name = datas3t2.verify_member(record, member)
    except EntryError as exc:
        # Listed under its number alone, so `ls` shows it and reading it says why.
        return Entry(f"{record.key:020d}".encode(), position, size, offset, size, error=str(exc))
    return Entry(name.encode(), position, size, offset, size)


def _inside(
    items: list[s4db.S4Entry], file_size: int, sizes: dict[bytes, int | str]
) -> list[s4db.S4Entry]:
    kept = []
    for item in items:
        try:
            s4db.check_extent(item, file_size)
        except EntryError as exc:
            sizes[item.key] = str(exc)
            continue
        kept.append(item)
    return kept


def _head(item: s4db.S4Entry) -> tuple[int, int]:
    return item.offset, item.offset + item.head_length


def _s4_entry(position: int, item: s4db.S4Entry, size: int | str, where: Elsewhere) -> Entry:
    error = size if isinstance(size, str) else None
    value = size if isinstance(size, int) else 0
    codec = Codec.S4_RECORD
    return Entry(
        item.key, position, value, item.offset, item.length, codec, error=error, elsewhere=where
    )
