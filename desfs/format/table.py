"""A container's entries, kept as the index bytes they were parsed from.

Decoders get the buffer as an argument and must not hold it themselves, so that a table
can be moved onto other storage (`relocated`: a memory map of a spilled index).

A parsed container holds one small table per entry (where the entry starts in the index
bytes, in an `array`), not one Python object per entry: a million entries cost 4 or 8
bytes each beyond the index bytes themselves. An `Entry` value is built when it is asked
for, with the per-entry checks (ranges, codec, flags, metadata) made then; an entry
that fails them still comes back, with its `error` set. Both formats begin every entry
with a u16 name length and the name, so names are read without building entries.
"""

from __future__ import annotations

import struct
from array import array
from collections.abc import Callable, Iterator, Sequence
from typing import overload

from desfs.format.model import Entry

_U16 = struct.Struct("<H")

# Builds the entry at buffer position `start` with index position `position`.
Decoder = Callable[[bytes, int, int], Entry]
# Whether the entry at buffer position `start` carries a deletion mark (DESHEAD1 only).
DeletedFlag = Callable[[bytes, int], bool]


def offsets() -> array[int]:
    """An empty table of entry starts, the narrowest type that can grow to hold any."""
    return array("Q")


def compact(starts: array[int]) -> array[int]:
    """The same starts in 4-byte slots when they fit (indices under 4 GiB)."""
    if not starts or starts[-1] < 2**32:
        return array("I", starts)
    return starts


class LazyEntries(Sequence[Entry]):
    """Entries in index order, each built when asked for (`entry`); negative positions
    and slices as a list's."""

    __slots__ = ()

    def entry(self, position: int) -> Entry:
        raise NotImplementedError

    @overload
    def __getitem__(self, item: int) -> Entry: ...
    @overload
    def __getitem__(self, item: slice) -> Sequence[Entry]: ...
    def __getitem__(self, item: int | slice) -> Entry | Sequence[Entry]:
        if isinstance(item, slice):
            return [self[i] for i in range(*item.indices(len(self)))]
        if item < 0:
            item += len(self)
        if not 0 <= item < len(self):
            raise IndexError(item)
        return self.entry(item)


class EntryTable(LazyEntries):
    """Every entry of a container in index order, decoded when asked for."""

    __slots__ = ("_buf", "_decode", "_deleted", "_starts")

    def __init__(
        self, buf: bytes, starts: array[int], decode: Decoder, deleted: DeletedFlag | None = None
    ) -> None:
        self._buf = buf
        self._starts = starts
        self._decode = decode
        self._deleted = deleted

    def __len__(self) -> int:
        return len(self._starts)

    def entry(self, position: int) -> Entry:
        return self._decode(self._buf, self._starts[position], position)

    def __iter__(self) -> Iterator[Entry]:
        decode, buf = self._decode, self._buf
        for position, start in enumerate(self._starts):
            yield decode(buf, start, position)

    def __eq__(self, other: object) -> bool:
        """Equal to any sequence of the same entries (a tuple in tests, another table)."""
        if not isinstance(other, Sequence) or isinstance(other, str | bytes):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))

    __hash__ = None  # type: ignore[assignment]

    def name(self, position: int) -> bytes:
        """The raw name of one entry, without building the entry."""
        start = self._starts[position]
        (length,) = _U16.unpack_from(self._buf, start)
        return self._buf[start + 2 : start + 2 + length]

    @property
    def has_deletions(self) -> bool:
        """Whether this format has deletion marks at all (DESHEAD1)."""
        return self._deleted is not None

    def deleted(self, position: int) -> bool:
        """The entry's deletion mark, without building the entry."""
        return self._deleted is not None and self._deleted(self._buf, self._starts[position])

    def names(self) -> Iterator[bytes]:
        buf, unpack = self._buf, _U16.unpack_from
        for start in self._starts:
            end = start + 2 + unpack(buf, start)[0]
            yield buf[start + 2 : end]

    @property
    def buffers(self) -> tuple[bytes, array[int]]:
        """The index bytes and the entry starts, to move them elsewhere."""
        return self._buf, self._starts

    def relocated(self, buf: bytes, starts: Sequence[int]) -> EntryTable:
        """The same table over other storage holding the same bytes and starts."""
        return EntryTable(buf, starts, self._decode, self._deleted)  # type: ignore[arg-type]

    @property
    def table_bytes(self) -> int:
        """Memory of the table itself (the index bytes are counted by their owner)."""
        return self._starts.itemsize * len(self._starts)
