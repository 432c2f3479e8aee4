"""Values produced by the DES codecs: containers, entries and what a parse still needs.

These are plain frozen dataclasses. The codecs (`desfs.format.container` and the two
format modules) turn bytes into them and never do I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum, IntEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from desfs.format.seekable import SeekTable


class Format(Enum):
    DESHEAD1 = "DESHEAD1"  # Datavision-Easy-Store (des-formats.md §1)
    DES2 = "DES2"  # DES (des-formats.md §2)
    # Other packed small-file stores (docs/formats/): their units hold entries too.
    DATAS3T2 = "datas3t2"  # a datarange: a TAR and its index
    S4DB = "s4db"  # a store's index.idx; values live in its data files
    CONDUIT = "conduit"  # a data directory; each data file is one entry


class Codec(IntEnum):
    NONE = 0
    ZSTD = 1
    LZ4 = 2
    S4_RECORD = 3  # an s4db record: framing, key, Snappy value, CRC32 (format.s4db)
    SEEKABLE = 4  # seekable zstd frames, decoded only where a read lands (format.seekable)


# The codecs a DES container may name; the others belong to other stores' entries only.
DES_CODECS = (Codec.NONE, Codec.ZSTD, Codec.LZ4)


@dataclass(frozen=True, slots=True)
class External:
    """Where an entry's payload lives when it is not inside the container.

    DESHEAD1 external files are keyed by entry name (`key_hint` is the meta's
    `external_key` when the writer recorded one). DES2 BigFiles are keyed by `sha256`.
    Turning either into a storage key is the namespace layer's job, not the codec's.
    """

    sha256: str | None = None
    key_hint: str | None = None


@dataclass(frozen=True, slots=True)
class Elsewhere:
    """An entry whose stored bytes lie in another object of the source: an s4db data
    file, a ConduitFlatFileDB data file. `key` is source-relative; `etag` pins the object
    when it must not change under a reader (None: append-only, the listed prefix is
    stable). `frames` is the seek table of a SEEKABLE entry."""

    key: str
    etag: str | None
    object_size: int
    frames: SeekTable | None = None


@dataclass(frozen=True, slots=True)
class Entry:
    """One index entry, exactly as the container describes it.

    `name` is the raw UTF-8 bytes: a name that is not valid UTF-8 is still an entry
    (hidden by the namespace, readable by raw name). `size` is the logical size
    (st_size). The stored bytes are `[offset, offset + stored_length)` of the container;
    both are 0 for external entries and for empty DESHEAD1 files. `meta` is the
    metadata JSON exactly as stored (b"" when there is none). `error` is set when this
    entry alone is unreadable; the rest of the container is still good.
    """

    name: bytes
    position: int
    size: int
    offset: int
    stored_length: int
    codec: Codec = Codec.NONE
    meta: bytes = b""
    external: External | None = None
    deleted: bool = False
    error: str | None = None
    elsewhere: Elsewhere | None = None  # stored bytes `[offset, +stored_length)` of that object


@dataclass(frozen=True, slots=True)
class ContainerIndex:
    """A fully parsed container: its format, its geometry and its entries in index order.

    `data_start`/`data_end` bound the inline payload region. `index_start` is the first
    byte of everything the parse needed from the tail (DESHEAD1: the META region, so
    metadata is answered from memory; DES2: the index). `variant` names the DES2 v1
    layout ("codec" or "nocodec") and is None otherwise.
    """

    format: Format
    version: int
    size: int
    data_start: int
    data_end: int
    index_start: int
    entries: Sequence[Entry]  # built on access from the index bytes (format.table)
    variant: str | None = None


@dataclass(frozen=True, slots=True)
class NeedBytes:
    """The parse cannot finish without these extra absolute byte ranges `[start, end)`.

    Every range is non-empty. A range that ends where the supplied tail begins extends
    the tail (prepend it); a range starting at 0 is the head. The caller fetches them
    all at once (one more round trip) and calls the parser again.
    """

    ranges: tuple[tuple[int, int], ...]
