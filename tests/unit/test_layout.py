"""Days, shards and external keys from source listings (desfs.namespace.layout)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from desfs.errors import NotFound, UsageError
from desfs.format.model import Entry, External, Format
from desfs.namespace.layout import (
    ContainerName,
    Layout,
    day_from_dir,
    day_prefix,
    detect_layouts,
    external_key,
    flat_day_from_prefix,
    flat_day_prefix,
    merge_shards,
    parse_day_key,
    parse_flat_key,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "upstream"
CASES = sorted(FIXTURES.glob("*/*/manifest.json"))
FAMILIES = {"dv": Layout.DATAVISION, "des2-flat": Layout.DES_FLAT, "des2-nested": Layout.DES_NESTED}
SHA = "db43d77634213639caf152ca2c48b87ea3d3eea2bf908f406fa03162511bec90"


def _family(layout: str) -> Layout:
    return FAMILIES["dv" if layout.startswith("dv-") else layout]


def _bucket_keys(case: Path, mount_prefix: str) -> list[str]:
    bucket = case.parent / "bucket"
    keys = []
    for root, _dirs, files in os.walk(bucket):
        for file in files:
            key = (Path(root) / file).relative_to(bucket).as_posix()
            if key.startswith(mount_prefix):
                keys.append(key[len(mount_prefix) :])
    return sorted(keys)


def _root_listing(keys: list[str]) -> tuple[list[str], list[str]]:
    objects = [k for k in keys if "/" not in k]
    prefixes = sorted({k.split("/", 1)[0] + "/" for k in keys if "/" in k})
    return objects, prefixes


def _names_of_source(keys: list[str]) -> list[ContainerName]:
    """What a mount lists: each detected layout's days, then each day's containers."""
    objects, prefixes = _root_listing(keys)
    names = []
    for layout in detect_layouts(objects, prefixes):
        if layout is Layout.DES_FLAT:
            days = {day for k in objects if (day := flat_day_from_prefix(k[:9])) is not None}
        else:
            days = {found[0] for p in prefixes if (found := day_from_dir(p)) is not None}
        for day in sorted(days):
            prefix = day_prefix(layout, day)
            for key in keys:
                name = parse_day_key(layout, prefix, key)
                if name is not None:
                    names.append(name)
    return names


@pytest.mark.parametrize("case", CASES, ids=lambda p: f"{p.parent.parent.name}/{p.parent.name}")
def test_fixture_layouts_and_shard_directories(case: Path) -> None:
    manifest: dict[str, Any] = json.loads(case.read_text())
    prefix = manifest["mount_prefix"]
    keys = _bucket_keys(case, prefix)
    family = _family(manifest["layout"])
    assert detect_layouts(*_root_listing(keys)) == {family}

    merged, hidden = merge_shards(_names_of_source(keys))
    assert hidden == []
    expected = {c["key"] for c in manifest["containers"]}
    expected |= {c["key"] for c in manifest.get("invalid_containers", [])}
    assert {n.key for n in merged.values()} == expected
    by_key = {n.key: n for n in merged.values()}
    for container in manifest["containers"]:
        name = by_key[container["key"]]
        assert name.layout is family
        assert name.format.value == container["format"]
    for file in manifest["files"]:
        if file["path"] is not None:
            name = by_key[file["container"]]
            assert file["path"] == f"/{name.path}/{file['name']}"


def test_fixture_external_keys() -> None:
    seen = 0
    for case in CASES:
        manifest = json.loads(case.read_text())
        fmt = Format(manifest["format"].split("/")[0])
        for file in manifest["files"]:
            if file["storage"] != "external":
                continue
            meta = file["meta"]
            external = External(
                sha256=file["external_key"].rpartition("/")[2] if fmt is Format.DES2 else None,
                key_hint=meta.get("external_key"),
            )
            entry = _entry(file["name"].encode(), external)
            assert external_key(file["container"], entry, fmt) == file["external_key"]
            assert (case.parent / "bucket" / file["external_key"]).is_file()
            seen += 1
    assert seen > 0


@pytest.mark.parametrize(
    ("prefix", "day"),
    [
        ("2024-12-03/", ("2024-12-03", Layout.DATAVISION)),
        ("2024-12-03", ("2024-12-03", Layout.DATAVISION)),
        ("20241203/", ("2024-12-03", Layout.DES_NESTED)),
        ("2024-02-29/", ("2024-02-29", Layout.DATAVISION)),
        ("2023-02-29/", None),
        ("2024-13-01/", None),
        ("20241332/", None),
        ("0000-01-01/", None),
        ("2024-1-03/", None),
        ("2024-12-03x/", None),
        ("٢٠٢٤١٢٠٣/", None),  # Arabic-Indic digits are not a day
        ("_bigFiles/", None),
        ("_ext_retention/", None),
        ("", None),
    ],
)
def test_day_from_dir(prefix: str, day: tuple[str, Layout] | None) -> None:
    assert day_from_dir(prefix) == day


@pytest.mark.parametrize(
    ("key", "day", "shard"),
    [
        ("20241203_A7_0000.des", "2024-12-03", "A7_0000"),
        ("20241203_3_0001.des", "2024-12-03", "3_0001"),
        ("20241203_3FF_12345.des", "2024-12-03", "3FF_12345"),
        ("20241203_a7_0000.des", None, None),
        ("20241203_A7_0000.meta", None, None),
        ("20241203_A7_000.des", None, None),
        ("20241303_A7_0000.des", None, None),
        ("20241203_A7_0000.des.tmp", None, None),
        (".20241203_A7_0000.des", None, None),
        ("x/20241203_A7_0000.des", None, None),
        ("_bigFiles", None, None),
    ],
)
def test_parse_flat_key(key: str, day: str | None, shard: str | None) -> None:
    name = parse_flat_key(key)
    if day is None:
        assert name is None
        return
    assert name == ContainerName(key, day, shard or "", Layout.DES_FLAT)
    assert name.format is Format.DES2
    assert name.sidecar_key == key[:-4] + ".meta"
    assert name.path == f"{day}/{shard}"


@pytest.mark.parametrize(
    ("layout", "prefix", "key", "shard"),
    [
        (Layout.DATAVISION, "2024-12-03/", "2024-12-03/0.des", "0"),
        (Layout.DATAVISION, "2024-12-03/", "2024-12-03/3ff.des", "3ff"),
        (Layout.DATAVISION, "2024-12-03/", "2024-12-03/shard_124.des", "shard_124"),
        (Layout.DATAVISION, "2024-12-03/", "2024-12-03/Custom Name.des", "Custom Name"),
        (Layout.DATAVISION, "2024-12-03/", "2024-12-03/.0.des", None),
        (Layout.DATAVISION, "2024-12-03/", "2024-12-03/.des", None),
        (Layout.DATAVISION, "2024-12-03/", "2024-12-03/..des", None),
        (Layout.DATAVISION, "2024-12-03/", "2024-12-03/0.meta", None),
        (Layout.DATAVISION, "2024-12-03/", "2024-12-03/_bigFiles/x.des", None),
        (Layout.DATAVISION, "2024-12-03/", "2024-12-03/a\x00.des", None),
        (Layout.DATAVISION, "2024-12-03/", "2024-12-03/" + "x" * 256 + ".des", None),
        (Layout.DATAVISION, "2024-12-03/", "2024-12-04/0.des", None),
        (Layout.DATAVISION, "20241203/", "20241203/0.des", None),
        (Layout.DES_NESTED, "20241203/", "20241203/A7.des", "A7"),
        (Layout.DES_NESTED, "20241203/", "20241203/08_00A5.des", "08_00A5"),
        (Layout.DES_NESTED, "20241203/", "20241203/A7.meta", None),
        (Layout.DES_NESTED, "20241203/", "20241203/_bigFiles/" + SHA, None),
        (Layout.DES_NESTED, "2024-12-03/", "2024-12-03/A7.des", None),
        (Layout.DES_FLAT, "20241203_", "20241203_A7_0000.des", "A7_0000"),
        (Layout.DES_FLAT, "20241203_", "20241204_A7_0000.des", None),
        (Layout.DES_FLAT, "20241203_", "20241203_A7_0000.meta", None),
    ],
)
def test_parse_day_key(layout: Layout, prefix: str, key: str, shard: str | None) -> None:
    name = parse_day_key(layout, prefix, key)
    if shard is None:
        assert name is None
        return
    assert name is not None
    assert (name.key, name.day, name.shard, name.layout) == (key, "2024-12-03", shard, layout)


def test_container_name_formats_and_sidecars() -> None:
    dv = parse_day_key(Layout.DATAVISION, "2024-12-03/", "2024-12-03/shard_00.des")
    nested = parse_day_key(Layout.DES_NESTED, "20241203/", "20241203/A7.des")
    assert dv is not None
    assert nested is not None
    assert (dv.format, dv.sidecar_key) == (Format.DESHEAD1, None)
    assert (nested.format, nested.sidecar_key) == (Format.DES2, "20241203/A7.meta")


def test_detect_layouts_ignores_non_days() -> None:
    objects = ["20241203_A_0000.meta", ".20241203_A_0000.des", "README.md", "2024-12-03.des"]
    prefixes = ["_bigFiles/", "_ext_retention/", "tombstones/", ".tmp/", "2024-12-3/", "shards/"]
    assert detect_layouts(objects, prefixes) == frozenset()
    assert detect_layouts([], ["2024-12-03"]) == frozenset()  # not a common prefix


def test_detect_layouts_finds_mixed() -> None:
    objects = ["20241203_A_0000.des", "20241203_A_0000.meta"]
    prefixes = ["2024-12-03/", "20241204/", "_bigFiles/"]
    assert detect_layouts(objects, prefixes) == {
        Layout.DATAVISION,
        Layout.DES_FLAT,
        Layout.DES_NESTED,
    }


def test_flat_day_prefixes() -> None:
    assert flat_day_from_prefix("20241203_") == "2024-12-03"
    assert flat_day_from_prefix("20241232_") is None
    assert flat_day_from_prefix("_bigFiles") is None
    assert flat_day_from_prefix("_ext_") is None
    assert flat_day_from_prefix("20241203") is None
    assert flat_day_prefix("2024-12-03") == "20241203_"
    assert day_prefix(Layout.DATAVISION, "2024-12-03") == "2024-12-03/"
    assert day_prefix(Layout.DES_NESTED, "2024-12-03") == "20241203/"
    for bad in ("2024-12-32", "20241203", "../2024-12-03", ""):
        with pytest.raises(NotFound):
            flat_day_prefix(bad)


def test_merge_shards_tie_break_is_deterministic() -> None:
    dv = ContainerName("2024-12-03/A_0000.des", "2024-12-03", "A_0000", Layout.DATAVISION)
    nested = ContainerName("20241203/A_0000.des", "2024-12-03", "A_0000", Layout.DES_NESTED)
    flat = ContainerName("20241203_A_0000.des", "2024-12-03", "A_0000", Layout.DES_FLAT)
    other = ContainerName("20241202_A_0000.des", "2024-12-02", "A_0000", Layout.DES_FLAT)
    for names in ([flat, nested, dv, other], [other, dv, flat, nested, flat]):
        merged, hidden = merge_shards(names)
        assert list(merged) == ["2024-12-02/A_0000", "2024-12-03/A_0000"]
        assert merged["2024-12-03/A_0000"] is dv
        assert [h.key for h in hidden] == [nested.key, flat.key]
        assert all(dv.key in h.reason for h in hidden)


def test_merge_shards_same_layout_prefers_smallest_key() -> None:
    a = ContainerName("a/x.des", "2024-12-03", "x", Layout.DATAVISION)
    b = ContainerName("b/x.des", "2024-12-03", "x", Layout.DATAVISION)
    merged, hidden = merge_shards([b, a])
    assert merged["2024-12-03/x"] is a
    assert [h.key for h in hidden] == ["b/x.des"]


def _entry(name: bytes, external: External | None) -> Entry:
    return Entry(name=name, position=0, size=1, offset=0, stored_length=0, external=external)


@pytest.mark.parametrize(
    ("hint", "name", "expected"),
    [
        ("2024-12-06/_bigFiles/large.bin", b"large.bin", "2024-12-06/_bigFiles/large.bin"),
        ("2024-12-06/shard_00/_bigFiles/x", b"x", "2024-12-06/shard_00/_bigFiles/x"),
        ("2024-12-06/_bigFiles/sub/x", b"x", "2024-12-06/_bigFiles/sub/x"),
        (None, b"large.bin", "2024-12-06/_bigFiles/large.bin"),
        ("/etc/passwd", b"large.bin", "2024-12-06/_bigFiles/large.bin"),
        ("2024-12-06/_bigFiles/../../secret", b"a", "2024-12-06/_bigFiles/a"),
        ("_bigFiles/./x", b"a", "2024-12-06/_bigFiles/a"),
        ("2024-12-06//_bigFiles/x", b"a", "2024-12-06/_bigFiles/a"),
        ("2024-12-06/_bigFiles/x\x00", b"a", "2024-12-06/_bigFiles/a"),
        ("2024-12-06\\_bigFiles\\x", b"a", "2024-12-06/_bigFiles/a"),
        ("2024-12-06/other/x", b"a", "2024-12-06/_bigFiles/a"),
        ("2024-12-06/_bigFiles", b"a", "2024-12-06/_bigFiles/a"),
        ("2024-12-06/_bigFiles/", b"a", "2024-12-06/_bigFiles/a"),
        ("2024-12-06/x_bigFiles/a", b"a", "2024-12-06/_bigFiles/a"),
        (None, b"..", None),
        (None, b".", None),
        (None, b"", None),
        (None, b"a/b", None),
        (None, b"../x", None),
        (None, b"a\x00", None),
        (None, b"\xff", None),
        ("../_bigFiles/x", b"..", None),
    ],
)
def test_deshead1_external_key(hint: str | None, name: bytes, expected: str | None) -> None:
    entry = _entry(name, External(key_hint=hint))
    assert external_key("2024-12-06/shard_00.des", entry, Format.DESHEAD1) == expected


def test_deshead1_external_key_prefix_and_root() -> None:
    entry = _entry(b"big.bin", External(key_hint="data/2024-12-06/_bigFiles/big.bin"))
    key = external_key("2024-12-06/s.des", entry, Format.DESHEAD1, source_prefix="data/")
    assert key == "2024-12-06/_bigFiles/big.bin"
    key = external_key("2024-12-06/s.des", entry, Format.DESHEAD1, source_prefix="other/")
    assert key == "2024-12-06/_bigFiles/big.bin"  # falls back to the container directory
    assert external_key("s.des", _entry(b"a", External()), Format.DESHEAD1) == "_bigFiles/a"
    assert external_key("../s.des", _entry(b"a", External()), Format.DESHEAD1) is None
    assert external_key("s.des", _entry(b"a", None), Format.DESHEAD1) is None


def test_external_key_accepts_a_layout_for_its_format() -> None:
    dv = _entry(b"a", External(key_hint="d/_bigFiles/a"))
    assert external_key("d/s.des", dv, Layout.DATAVISION) == "d/_bigFiles/a"
    des = _entry(b"a", External(sha256=SHA))
    assert external_key("20241209/E6.des", des, Layout.DES_NESTED) == f"20241209/_bigFiles/{SHA}"
    assert external_key("20241209_E6_0000.des", des, Layout.DES_FLAT) == f"_bigFiles/{SHA}"
    assert external_key("20241209/E6.des", des, Layout.DATAVISION) == "20241209/_bigFiles/a"


@pytest.mark.parametrize(
    ("container", "sha", "bigfiles", "expected"),
    [
        ("20241209_E6_0000.des", SHA, "_bigFiles", f"_bigFiles/{SHA}"),
        ("20241209/E6.des", SHA, "_bigFiles", f"20241209/_bigFiles/{SHA}"),
        ("20241209/E6.des", SHA, "blobs", f"20241209/blobs/{SHA}"),
        ("20241209/E6.des", SHA, "a/blobs", f"20241209/a/blobs/{SHA}"),
        ("20241209/E6.des", SHA.upper(), "_bigFiles", None),
        ("20241209/E6.des", SHA[:-1], "_bigFiles", None),
        ("20241209/E6.des", "../" + SHA[3:], "_bigFiles", None),
        ("20241209/E6.des", SHA + "\n", "_bigFiles", None),
        ("20241209/E6.des", None, "_bigFiles", None),
        ("../20241209/E6.des", SHA, "_bigFiles", None),
    ],
)
def test_des2_external_key(container: str, sha: str | None, bigfiles: str, expected: str) -> None:
    entry = _entry(b"uid", External(sha256=sha))
    assert external_key(container, entry, Format.DES2, bigfiles=bigfiles) == expected


@pytest.mark.parametrize("bigfiles", ["", "..", "a/../b", "/abs", "a//b", "x\x00"])
def test_bad_bigfiles_prefix_is_a_usage_error(bigfiles: str) -> None:
    entry = _entry(b"uid", External(sha256=SHA))
    with pytest.raises(UsageError):
        external_key("20241209_E6_0000.des", entry, Format.DES2, bigfiles=bigfiles)
