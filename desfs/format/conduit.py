"""ConduitFlatFileDB data files (docs/formats/conduit.md): their names, which one may
still grow, and the DataLocations its writer hands out.

A data file is `data_NNNNNNNN.dat` (BLOBs back to back) or, in compressed mode,
`data_NNNNNNNN.dat.zst` (the same stream in the zstd seekable format, desfs.format.seekable).
The highest-numbered data file is the mutable one; every other file is sealed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from desfs.errors import FormatError

_NAME = re.compile(r"data_([0-9]{8,})\.dat(\.zst)?")


@dataclass(frozen=True, slots=True)
class DataLocation:
    """One BLOB: bytes `[start, end)` of the decompressed stream of data file `name`."""

    name: str
    start: int
    end: int

    @property
    def length(self) -> int:
        return self.end - self.start


def parse_data_file_name(name: str) -> tuple[int, bool] | None:
    """(number, compressed) for a data file name, None for any other name (the lock
    file, a recovery `.bak`, anything else in the directory)."""
    match = _NAME.fullmatch(name)
    if match is None:
        return None
    digits = match[1]
    number = int(digits)
    # The writer names files str(number).zfill(8); another spelling of the same number
    # would be a second file that the writer itself never reads.
    if data_file_name(number, False) != f"data_{digits}.dat":
        return None
    return number, match[2] is not None


def data_file_name(number: int, compressed: bool) -> str:
    return f"data_{str(number).zfill(8)}.dat{'.zst' if compressed else ''}"


def mutable_file(names: Iterable[str]) -> str | None:
    """The data file that may still grow: the highest-numbered one (None when there is
    no data file). Its writer appends to it until it holds MAX_DAT_FILE_SIZE bytes, then
    starts the next number; from then on it never changes."""
    best: tuple[int, bool] | None = None
    found = None
    for name in names:
        parsed = parse_data_file_name(name)
        if parsed is not None and (best is None or parsed > best):
            best, found = parsed, name
    return found


def parse_data_location(file_path: str, start_offset: int, end_offset: int) -> DataLocation:
    """A DataLocation as the writer returns it (`file_path` is the full path it wrote,
    with `/` or, on Windows, `\\` separators); FormatError when it cannot be one."""
    name = file_path.replace("\\", "/").rsplit("/", 1)[-1]
    if parse_data_file_name(name) is None:
        raise FormatError(f"conduit: {file_path!r} is not a data file")
    if not 0 <= start_offset <= end_offset:
        raise FormatError(f"conduit: bad BLOB range [{start_offset}, {end_offset}) in {name}")
    return DataLocation(name, start_offset, end_offset)
