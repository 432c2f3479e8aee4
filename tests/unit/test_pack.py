"""`desfs pack`: upstream layouts and routing, round trips through desfs's parser,
splits, BigFiles, and all-or-nothing output when a source file misbehaves."""

from __future__ import annotations

import hashlib
import json
import os
import unicodedata
import zlib
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from desfs.errors import (
    AccessDenied,
    NotADirectory,
    NotFound,
    ObjectChanged,
    UsageError,
)
from desfs.format.container import parse_whole
from desfs.format.model import Codec, Format
from desfs.namespace.routing import (
    datavision_shard_token,
    des_shard_hex,
    des_shard_index,
    shard_from_name,
)
from desfs.pack.options import PackOptions
from desfs.pack.plan import (
    PackReport,
    load_metadata,
    pack_directory,
    pack_tree,
)
from desfs.pack.staging import scan_source
from tests.support.builders import read_back
from tests.support.fixtures import UPSTREAM, load_manifest

DAY = date(2024, 1, 2)
NFC = unicodedata.normalize("NFC", "zażółć.txt")
NFD = unicodedata.normalize("NFD", "zażółć.txt")


def make_tree(root: Path, files: dict[str, bytes]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def tree_files(root: Path) -> dict[str, bytes]:
    """Every file under `root` (hidden temporaries included) by relative key."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def mounted(out: Path) -> dict[str, tuple[str, bytes, dict[str, object]]]:
    """Entry name -> (container key, bytes, meta), read back with desfs's own parser."""
    objects = tree_files(out)
    view: dict[str, tuple[str, bytes, dict[str, object]]] = {}
    for key, blob in objects.items():
        if key.endswith(".des"):
            for name, data, meta in read_back(blob, objects):
                assert name.decode() not in view
                view[name.decode()] = (key, data, meta)
    return view


def options(fmt: Format, **changes: Any) -> PackOptions:
    return PackOptions(fmt, DAY, **changes)


# --- routing --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("uid", "n_bits", "expected"),
    [
        ("123", 8, 123),
        ("007", 4, 7),
        ("4097", 12, 1),
        ("٣", 4, 3),  # Arabic-Indic digit: isdigit() and int() agree
        ("", 8, 0),
        ("doc-0c194ead", 8, 0x01),  # these three from the upstream-made des_packer_flat
        ("INV-2024-00003", 8, 0x7D),
        ("large-one", 8, 0xE6),
        ("notes", 4, 0xC),  # and these from des_codecs
        ("readme.txt", 4, 0x8),
        ("picture.jpg", 4, 0x3),
    ],
)
def test_des_routing_known_values(uid: str, n_bits: int, expected: int) -> None:
    assert des_shard_index(uid, n_bits) == expected


def test_des_routing_uses_low_crc32_bits() -> None:
    for uid in ("a", "sub/dir/file.bin", NFC, NFD):
        crc = zlib.crc32(uid.encode())
        assert des_shard_index(uid, 16) == crc & 0xFFFF
        assert des_shard_index(uid, 5) == crc % 32
    assert des_shard_index(NFC, 16) != des_shard_index(NFD, 16)


def test_des_routing_refuses_digits_int_cannot_parse() -> None:
    with pytest.raises(UsageError, match="cannot place"):
        des_shard_index("²", 8)


@pytest.mark.parametrize(
    ("index", "n_bits", "token"),
    [(3, 6, "3"), (63, 6, "3F"), (5, 10, "05"), (1023, 10, "3FF"), (10, 4, "A"), (255, 16, "00FF")],
)
def test_des_hex_widths(index: int, n_bits: int, token: str) -> None:
    assert des_shard_hex(index, n_bits) == token


def _independent_shard(name: str, bits: int) -> int:
    digest = hashlib.sha256(name.encode("utf-8")).digest()
    return int.from_bytes(digest[:4], "big") >> (32 - bits)


@pytest.mark.parametrize("name", ["a", "DEMO_20241202_(866228170300_2A).bin", NFC, NFD, ""])
@pytest.mark.parametrize("bits", [1, 4, 10, 32])
def test_datavision_shard_matches_sha256_prefix(name: str, bits: int) -> None:
    assert shard_from_name(name, bits) == _independent_shard(name, bits)


@pytest.mark.parametrize(
    ("shard", "bits", "token"),
    [(1, 1, "1"), (0xF, 4, "f"), (5, 10, "005"), (0xABCDEF12, 32, "abcdef12")],
)
def test_datavision_tokens(shard: int, bits: int, token: str) -> None:
    assert datavision_shard_token(shard, bits) == token


# --- upstream trees reproduced byte for byte -------------------------------------------------


def _fixture_sources(case: str, tmp: Path) -> tuple[Path, dict[str, Any], dict[str, Path]]:
    """Write every entry of a fixture case back out as a source tree, one per day."""
    case_dir = UPSTREAM / case
    if not case_dir.exists():
        pytest.skip("upstream fixtures are not available")
    manifest = load_manifest(case_dir)
    bucket = case_dir / "bucket"
    objects = tree_files(bucket)
    days: dict[str, Path] = {}
    for key, blob in objects.items():
        if not key.endswith(".des"):
            continue
        day = key.split("/")[0] if "/" in key else key[:8]
        for name, data, _ in read_back(blob, objects):
            make_tree(tmp / "src" / day, {name.decode(): data})
            days[day] = tmp / "src" / day
    return bucket, manifest, days


def test_pack_reproduces_upstream_daily_store(tmp_path: Path) -> None:
    bucket, manifest, days = _fixture_sources("datavision/dv_daily_store", tmp_path)
    metadata = {
        f["name"]: {k: v for k, v in f["meta"].items() if k != "size"} for f in manifest["files"]
    }
    out = tmp_path / "out"
    for day, source in days.items():
        names = {p.name for p in source.iterdir()}
        opts = PackOptions(
            Format.DESHEAD1,
            date.fromisoformat(day),
            shard_bits=4,
            metadata={n: m for n, m in metadata.items() if n in names},
        )
        pack_directory(source, out, opts)
    assert tree_files(out) == tree_files(bucket)


def test_pack_reproduces_upstream_flat_packer(tmp_path: Path) -> None:
    bucket, manifest, days = _fixture_sources("des/des_packer_flat", tmp_path)
    out = tmp_path / "out"
    for day, source in days.items():
        opts = PackOptions(
            Format.DES2,
            date(int(day[:4]), int(day[4:6]), int(day[6:])),
            shard_bits=manifest["n_bits"],
            big_file_threshold=manifest["big_file_threshold_bytes"],
        )
        pack_directory(source, out, opts)
    assert tree_files(out) == tree_files(bucket)


# --- round trips --------------------------------------------------------------------------

SOURCE = {
    "a.txt": b"hello\n",
    "empty": b"",
    "nested/deeper/x.bin": bytes(range(256)) * 3,
    "nested/empty.dat": b"",
    NFC: b"composed",
    NFD: b"decomposed",
    "photo.jpg": b"\xff\xd8" + b"j" * 500,
    "notes with space.txt": b"text " * 100,
    "big/one.bin": b"B" * 3000,
    "big/same.bin": b"B" * 3000,
    "big/other.bin": b"C" * 5000,
}
METADATA: dict[str, dict[str, object]] = {
    "a.txt": {"mime": "text/plain"},
    NFD: {"lang": "pl", "note": "Łódź"},
    "big/one.bin": {"kind": "big"},
}


@pytest.mark.parametrize(
    ("fmt", "codec"),
    [
        (Format.DESHEAD1, Codec.NONE),
        (Format.DES2, Codec.NONE),
        (Format.DES2, Codec.ZSTD),
        (Format.DES2, Codec.LZ4),
    ],
)
def test_round_trip(tmp_path: Path, fmt: Format, codec: Codec) -> None:
    source = make_tree(tmp_path / "src", SOURCE)
    out = tmp_path / "out"
    opts = options(fmt, codec=codec, shard_bits=4, big_file_threshold=2048, metadata=METADATA)
    report = pack_directory(source, out, opts)
    view = mounted(out)
    assert {n: d for n, (_, d, _) in view.items()} == SOURCE
    for name, (key, data, meta) in view.items():
        if fmt is Format.DESHEAD1:
            assert key == f"2024-01-02/{shard_from_name(name, 4):x}.des"
            expected = {**METADATA.get(name, {}), "size": len(data)}
            if len(data) >= 2048:
                expected |= {"is_external": True, "external_key": f"2024-01-02/_bigFiles/{name}"}
            assert meta == expected
        else:
            assert key == f"20240102_{des_shard_index(name, 4):X}_0000.des"
            assert meta == METADATA.get(name, {})
    _check_report(out, report)


def _check_report(out: Path, report: PackReport) -> None:
    for written in report.containers:
        blob = (out / written.key).read_bytes()
        assert len(blob) == written.size
        assert len(parse_whole(blob).entries) == written.entries
    for obj in report.big_files:
        assert (out / obj.key).stat().st_size == obj.size
    assert sorted(tree_files(out)) == sorted(
        [c.key for c in report.containers] + [b.key for b in report.big_files]
    )


def test_des_compression_respects_smart_skip(tmp_path: Path) -> None:
    source = make_tree(tmp_path / "src", SOURCE)
    out = tmp_path / "out"
    pack_directory(source, out, options(Format.DES2, codec=Codec.ZSTD, smart_skip=True))
    codecs: dict[str, Codec] = {}
    for key, blob in tree_files(out).items():
        if key.endswith(".des"):
            codecs |= {e.name.decode(): e.codec for e in parse_whole(blob).entries}
    assert codecs["photo.jpg"] is Codec.NONE
    assert codecs["a.txt"] is Codec.ZSTD


def test_output_is_deterministic(tmp_path: Path) -> None:
    source = make_tree(tmp_path / "src", SOURCE)
    opts = options(Format.DES2, codec=Codec.LZ4, metadata=METADATA)
    pack_directory(source, tmp_path / "one", opts)
    pack_directory(source, tmp_path / "two", opts)
    assert tree_files(tmp_path / "one") == tree_files(tmp_path / "two")


# --- big files ----------------------------------------------------------------------------


def test_des_bigfiles_are_content_addressed(tmp_path: Path) -> None:
    source = make_tree(tmp_path / "src", SOURCE)
    out = tmp_path / "out"
    report = pack_directory(source, out, options(Format.DES2, big_file_threshold=2999))
    b_hash = hashlib.sha256(b"B" * 3000).hexdigest()
    c_hash = hashlib.sha256(b"C" * 5000).hexdigest()
    assert sorted(o.key for o in report.big_files) == sorted(
        [f"_bigFiles/{b_hash}", f"_bigFiles/{c_hash}"]
    )
    assert sorted((out / "_bigFiles").iterdir()) == sorted(
        [out / "_bigFiles" / b_hash, out / "_bigFiles" / c_hash]
    )


def test_des_bigfile_threshold_is_strict(tmp_path: Path) -> None:
    source = make_tree(tmp_path / "src", {"at": b"x" * 100, "over": b"y" * 101})
    out = tmp_path / "out"
    pack_directory(source, out, options(Format.DES2, big_file_threshold=100))
    externals = {
        e.name: e.external is not None
        for key, blob in tree_files(out).items()
        if key.endswith(".des")
        for e in parse_whole(blob).entries
    }
    assert externals == {b"at": False, b"over": True}


def test_datavision_external_files_sit_by_name_in_the_day(tmp_path: Path) -> None:
    source = make_tree(tmp_path / "src", {"at": b"x" * 100, "d/below": b"y" * 99})
    out = tmp_path / "out"
    report = pack_directory(source, out, options(Format.DESHEAD1, big_file_threshold=100))
    assert [o.key for o in report.big_files] == ["2024-01-02/_bigFiles/at"]
    assert (out / "2024-01-02/_bigFiles/at").read_bytes() == b"x" * 100
    assert not (out / "2024-01-02/_bigFiles/d").exists()  # 99 < threshold stays inline


# --- zero-entry containers and empty sources -----------------------------------------------


def test_datavision_empty_shards(tmp_path: Path) -> None:
    source = make_tree(tmp_path / "src", {"only": b"1"})
    out = tmp_path / "out"
    report = pack_directory(source, out, options(Format.DESHEAD1, shard_bits=2, empty_shards=True))
    assert [c.key for c in report.containers] == [f"2024-01-02/{i}.des" for i in range(4)]
    home = f"2024-01-02/{shard_from_name('only', 2)}.des"
    for written in report.containers:
        blob = (out / written.key).read_bytes()
        count = len(parse_whole(blob).entries)
        assert count == (1 if written.key == home else 0)
        if written.key != home:
            assert len(blob) == 88


def test_des_empty_shards(tmp_path: Path) -> None:
    source = make_tree(tmp_path / "src", {"1": b"one"})
    out = tmp_path / "out"
    report = pack_directory(source, out, options(Format.DES2, shard_bits=4, empty_shards=True))
    assert len(report.containers) == 16
    sizes = {c.key: c.size for c in report.containers}
    assert sizes.pop("20240102_1_0000.des") > 24
    assert set(sizes.values()) == {24}


def test_empty_source(tmp_path: Path) -> None:
    source = make_tree(tmp_path / "src", {})
    dv = pack_directory(source, tmp_path / "dv", options(Format.DESHEAD1))
    des = pack_directory(source, tmp_path / "des", options(Format.DES2))
    assert dv.containers == des.containers == ()
    assert (tmp_path / "dv" / "2024-01-02").is_dir()  # an explicit, empty day
    assert tree_files(tmp_path / "des") == {}


# --- splits -------------------------------------------------------------------------------


def test_des_splits_sum_input_sizes_like_upstream(tmp_path: Path) -> None:
    # Decimal names all route to shard 0 with n_bits 4.
    files = {"16": b"a" * 10, "32": b"b" * 15, "48": b"c" * 30, "64": b"d" * 5, "80": b""}
    source = make_tree(tmp_path / "src", files)
    out = tmp_path / "out"
    opts = options(Format.DES2, shard_bits=4, max_container_size=25, big_file_threshold=20)
    report = pack_directory(source, out, opts)
    parts = {c.key: c.entries for c in report.containers}
    # 10+15 reach the limit exactly and fit; the 30-byte BigFile still counts;
    # 5 would overflow it; "" joins "64".
    assert parts == {
        "20240102_0_0000.des": 2,
        "20240102_0_0001.des": 1,
        "20240102_0_0002.des": 2,
    }
    assert {n: d for n, (_, d, _) in mounted(out).items()} == files


def test_many_split_parts(tmp_path: Path) -> None:
    files = {str(16 * i): bytes([i]) * 100 for i in range(1, 13)}
    source = make_tree(tmp_path / "src", files)
    out = tmp_path / "out"
    opts = options(Format.DES2, shard_bits=4, max_container_size=250, codec=Codec.ZSTD)
    report = pack_directory(source, out, opts)
    assert [c.key for c in report.containers] == [f"20240102_0_{i:04d}.des" for i in range(6)]
    assert {n: d for n, (_, d, _) in mounted(out).items()} == files


# --- failures leave nothing behind ---------------------------------------------------------


def _digit_tree(tmp: Path) -> Path:
    # "1".."9" land in shards 1..9 (n_bits 4), written in that order.
    return make_tree(tmp / "src", {str(i): bytes([i]) * (i * 10) for i in range(1, 10)})


DIGITS = PackOptions(Format.DES2, DAY, shard_bits=4, big_file_threshold=75)


def _assert_nothing_written(out: Path) -> None:
    assert tree_files(out) == {}


def test_vanished_source_file(tmp_path: Path) -> None:
    tree = scan_source(_digit_tree(tmp_path))
    (tmp_path / "src" / "9").unlink()  # a BigFile in the last container
    out = tmp_path / "out"
    with pytest.raises(NotFound, match="9"):
        pack_tree(tree, out, DIGITS)
    _assert_nothing_written(out)


def test_vanished_inline_file_datavision(tmp_path: Path) -> None:
    tree = scan_source(_digit_tree(tmp_path))
    (tmp_path / "src" / "5").unlink()
    out = tmp_path / "out"
    with pytest.raises(NotFound):
        pack_tree(tree, out, options(Format.DESHEAD1, shard_bits=4, big_file_threshold=75))
    _assert_nothing_written(out)


@pytest.mark.parametrize("victim", ["3", "8"])  # inline, BigFile
def test_source_file_that_grew(tmp_path: Path, victim: str) -> None:
    tree = scan_source(_digit_tree(tmp_path))
    with open(tmp_path / "src" / victim, "ab") as handle:
        handle.write(b"more")
    out = tmp_path / "out"
    with pytest.raises(ObjectChanged, match=f"'{victim}'"):
        pack_tree(tree, out, DIGITS)
    _assert_nothing_written(out)


def test_source_file_replaced_by_directory_or_link(tmp_path: Path) -> None:
    tree = scan_source(_digit_tree(tmp_path))
    (tmp_path / "src" / "4").unlink()
    (tmp_path / "src" / "4").mkdir()
    out = tmp_path / "out"
    with pytest.raises(ObjectChanged, match="no longer a regular file"):
        pack_tree(tree, out, DIGITS)
    (tmp_path / "src" / "4").rmdir()
    (tmp_path / "src" / "4").symlink_to(tmp_path / "src" / "1")
    with pytest.raises(ObjectChanged, match="symbolic link"):
        pack_tree(tree, out, DIGITS)
    _assert_nothing_written(out)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_source_file(tmp_path: Path) -> None:
    source = _digit_tree(tmp_path)
    (source / "6").chmod(0)
    out = tmp_path / "out"
    with pytest.raises(AccessDenied):
        pack_directory(source, out, DIGITS)
    _assert_nothing_written(out)


def test_refuses_to_overwrite_unless_asked(tmp_path: Path) -> None:
    source = _digit_tree(tmp_path)
    out = tmp_path / "out"
    pack_directory(source, out, DIGITS)
    before = tree_files(out)
    (source / "1").write_bytes(b"changed")
    with pytest.raises(UsageError, match="already exists"):
        pack_directory(source, out, DIGITS)
    assert tree_files(out) == before
    again = PackOptions(Format.DES2, DAY, shard_bits=4, big_file_threshold=75, overwrite=True)
    pack_directory(source, out, again)
    assert mounted(out)["1"][1] == b"changed"


# --- sources and options -------------------------------------------------------------------


def test_non_regular_files_are_skipped(tmp_path: Path) -> None:
    source = make_tree(tmp_path / "src", {"real": b"r"})
    (source / "link").symlink_to(source / "real")
    os.mkfifo(source / "fifo")
    (source / "dirlink").symlink_to(source)
    report = pack_directory(source, tmp_path / "out", options(Format.DES2))
    assert report.skipped == ("dirlink", "fifo", "link")
    assert list(mounted(tmp_path / "out")) == ["real"]


def test_refuses_undecodable_file_names(tmp_path: Path) -> None:
    source = make_tree(tmp_path / "src", {})
    with open(os.path.join(os.fsencode(source), b"bad\xff"), "wb"):
        pass
    with pytest.raises(UsageError, match="not valid UTF-8"):
        pack_directory(source, tmp_path / "out", options(Format.DES2))


def test_refuses_names_des_routing_cannot_place(tmp_path: Path) -> None:
    source = make_tree(tmp_path / "src", {"²": b"x"})
    with pytest.raises(UsageError, match="cannot place"):
        pack_directory(source, tmp_path / "out", options(Format.DES2))
    pack_directory(source, tmp_path / "dv", options(Format.DESHEAD1))  # no routing issue


def test_source_and_output_checks(tmp_path: Path) -> None:
    source = make_tree(tmp_path / "src", {"f": b""})
    with pytest.raises(NotFound):
        pack_directory(tmp_path / "missing", tmp_path / "out", options(Format.DES2))
    with pytest.raises(NotADirectory):
        pack_directory(source / "f", tmp_path / "out", options(Format.DES2))
    with pytest.raises(UsageError, match="inside the source"):
        pack_directory(source, source / "out", options(Format.DES2))


def test_load_metadata(tmp_path: Path) -> None:
    path = tmp_path / "meta.json"
    path.write_text(json.dumps({"a": {"k": 1}, "d/b": {}}))
    assert load_metadata(path) == {"a": {"k": 1}, "d/b": {}}
    for bad in ("[1]", '{"a": 3}', "{nope"):
        path.write_text(bad)
        with pytest.raises(UsageError):
            load_metadata(path)
    with pytest.raises(NotFound):
        load_metadata(tmp_path / "missing.json")


def test_metadata_for_unknown_files_is_refused(tmp_path: Path) -> None:
    source = make_tree(tmp_path / "src", {"a": b""})
    opts = options(Format.DES2, metadata={"typo": {"k": 1}})
    with pytest.raises(UsageError, match="typo"):
        pack_directory(source, tmp_path / "out", opts)


def test_unserialisable_metadata_names_the_file(tmp_path: Path) -> None:
    source = make_tree(tmp_path / "src", {"a": b""})
    opts = options(Format.DESHEAD1, metadata={"a": {"bad": float("inf")}})
    with pytest.raises(UsageError, match="'a'"):
        pack_directory(source, tmp_path / "out", opts)
    assert tree_files(tmp_path / "out") == {}


@pytest.mark.parametrize(
    "changes",
    [
        {"format": Format.DES2, "shard_bits": 3},
        {"format": Format.DES2, "shard_bits": 17},
        {"format": Format.DESHEAD1, "shard_bits": 0},
        {"format": Format.DESHEAD1, "shard_bits": 33},
        {"format": Format.DESHEAD1, "codec": Codec.ZSTD},
        {"format": Format.DESHEAD1, "smart_skip": True},
        {"format": Format.DESHEAD1, "max_container_size": 10},
        {"format": Format.DES2, "level": 3},
        {"format": Format.DES2, "codec": Codec.ZSTD, "level": 23},
        {"format": Format.DES2, "codec": Codec.LZ4, "level": 17},
        {"format": Format.DES2, "max_container_size": 0},
        {"format": Format.DES2, "big_file_threshold": -1},
        {"format": Format.DES2, "shard_bits": 13, "empty_shards": True},
    ],
)
def test_option_validation(changes: dict[str, Any]) -> None:
    fmt = changes.pop("format")
    with pytest.raises(UsageError):
        PackOptions(fmt, DAY, **changes)


def test_option_defaults_follow_upstream() -> None:
    dv, des = PackOptions(Format.DESHEAD1, DAY), PackOptions(Format.DES2, DAY)
    assert (dv.bits, dv.big_threshold) == (8, 100 * 1024 * 1024)
    assert (des.bits, des.big_threshold, des.max_size) == (8, 10 * 1024 * 1024, 1_000_000_000)
