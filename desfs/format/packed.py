"""Entries of another store's unit (an s4db index, a datarange), a few bytes each.

A datarange may hold a million datapoints and an s4db store as many keys: an `Entry`
object each would cost some 200 bytes. `PackedEntries` keeps names in one byte string and
the numbers in arrays, and builds an `Entry` only when one is asked for, like
`format.table.EntryTable` does for DES indices.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterator, Sequence

from desfs.format.model import Codec, Elsewhere, Entry
from desfs.format.table import LazyEntries


class PackedEntries(LazyEntries):
    """Entries in index order; `places` are the objects entries may name (index 0 is
    "in the unit's own object")."""

    __slots__ = (
        "_codecs", "_errors", "_name_ends", "_names", "_offsets", "_place", "_places",
        "_sizes", "_stored",
    )  # fmt: skip

    def __init__(self, places: Sequence[Elsewhere | None] = (None,)) -> None:
        self._places = list(places)
        self._names = bytearray()
        self._name_ends = array("Q")
        self._sizes = array("Q")
        self._offsets = array("Q")
        self._stored = array("Q")
        self._codecs = array("B")
        self._place = array("I")
        self._errors: dict[int, str] = {}

    def append(
        self,
        name: bytes,
        size: int,
        offset: int,
        stored: int,
        codec: Codec = Codec.NONE,
        place: int = 0,
        error: str | None = None,
    ) -> None:
        if error is not None:
            self._errors[len(self._sizes)] = error
        self._names += name
        self._name_ends.append(len(self._names))
        self._sizes.append(size)
        self._offsets.append(offset)
        self._stored.append(stored)
        self._codecs.append(codec)
        self._place.append(place)

    def __len__(self) -> int:
        return len(self._sizes)

    def entry(self, position: int) -> Entry:
        return Entry(
            self.name(position),
            position,
            self._sizes[position],
            self._offsets[position],
            self._stored[position],
            Codec(self._codecs[position]),
            error=self._errors.get(position),
            elsewhere=self._places[self._place[position]],
        )

    def __iter__(self) -> Iterator[Entry]:
        for position in range(len(self)):
            yield self.entry(position)

    def name(self, position: int) -> bytes:
        """The raw name of one entry, without building the entry."""
        start = self._name_ends[position - 1] if position else 0
        return bytes(self._names[start : self._name_ends[position]])

    def names(self) -> Iterator[bytes]:
        for position in range(len(self)):
            yield self.name(position)

    @property
    def table_bytes(self) -> int:
        """Memory of the whole table: names, numbers and the messages of bad entries."""
        arrays = (self._name_ends, self._sizes, self._offsets, self._stored)
        numbers = sum(a.itemsize * len(a) for a in arrays)
        numbers += len(self._codecs) + self._place.itemsize * len(self._place)
        errors = sum(100 + len(text) for text in self._errors.values())
        return len(self._names) + numbers + errors + 200 * len(self._places)
