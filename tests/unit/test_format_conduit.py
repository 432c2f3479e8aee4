"""ConduitFlatFileDB names, the mutable file and DataLocations, against the real fixtures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from desfs.errors import FormatError
from desfs.format.conduit import (
    DataLocation,
    data_file_name,
    mutable_file,
    parse_data_file_name,
    parse_data_location,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "stores" / "conduit"
CASES = sorted(p.name for p in FIXTURES.iterdir() if (p / "manifest.json").exists())


@pytest.mark.parametrize(
    ("name", "parsed"),
    [
        ("data_00000000.dat", (0, False)),
        ("data_00000007.dat.zst", (7, True)),
        ("data_12345678.dat", (12345678, False)),
        ("data_123456789.dat.zst", (123456789, True)),  # zfill(8) lets it grow past 8
        ("data_000000001.dat", None),  # not how the writer spells 1
        ("data_1.dat", None),
        ("data_0000000a.dat", None),
        ("data_00000001.dat.zst.bak", None),  # upstream's recovery keeps a .bak
        ("data_00000001.zst", None),
        ("ffdb.lock", None),
        ("xdata_00000001.dat", None),
        ("", None),
    ],
)
def test_parse_data_file_name(name: str, parsed: tuple[int, bool] | None) -> None:
    assert parse_data_file_name(name) == parsed
    if parsed is not None:
        assert data_file_name(*parsed) == name


def test_cases_are_present() -> None:
    assert set(CASES) >= {"compressed", "compressed-small-frames", "uncompressed", "mid-append"}


@pytest.mark.parametrize("case", CASES)
def test_the_mutable_file_is_the_highest_number(case: str) -> None:
    manifest = json.loads((FIXTURES / case / "manifest.json").read_text())
    names = [p.name for p in (FIXTURES / case / "datadir").iterdir()]
    expected = [f["name"] for f in manifest["files"] if f["mutable"]]
    assert [mutable_file([*names, "ffdb.lock", "zzz"])] == expected
    for record in manifest["files"]:
        parsed = parse_data_file_name(record["name"])
        assert parsed is not None
        assert parsed[1] is manifest["use_compression"]


def test_mutable_file_ordering() -> None:
    assert mutable_file([]) is None
    assert mutable_file(["ffdb.lock"]) is None
    names = ["data_00000009.dat", "data_00000010.dat", "data_00000002.dat"]
    assert mutable_file(names) == "data_00000010.dat"  # by number, not only by text
    assert mutable_file(["data_99999999.dat", "data_100000000.dat"]) == "data_100000000.dat"


@pytest.mark.parametrize("case", CASES)
def test_the_writers_data_locations_parse(case: str) -> None:
    manifest = json.loads((FIXTURES / case / "manifest.json").read_text())
    for blob in manifest["blobs"]:
        location = parse_data_location(
            blob["upstream_file_path"], blob["start_offset"], blob["end_offset"]
        )
        assert location == DataLocation(blob["file"], blob["start_offset"], blob["end_offset"])
        assert location.length == blob["length"]


def test_data_location_paths_and_ranges() -> None:
    windows = parse_data_location(r"C:\blobs\data_00000003.dat.zst", 5, 9)
    assert windows == DataLocation("data_00000003.dat.zst", 5, 9)
    assert parse_data_location("/d/data_00000003.dat", 4, 4).length == 0
    with pytest.raises(FormatError, match="not a data file"):
        parse_data_location("/d/ffdb.lock", 0, 1)
    with pytest.raises(FormatError, match="bad BLOB range"):
        parse_data_location("/d/data_00000003.dat", 5, 4)
    with pytest.raises(FormatError, match="bad BLOB range"):
        parse_data_location("/d/data_00000003.dat", -1, 4)
