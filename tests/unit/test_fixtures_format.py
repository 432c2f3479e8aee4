"""Every upstream-written fixture container parses to exactly what its manifest records."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from desfs.errors import FormatError
from desfs.format import des2, deshead1
from desfs.format.codecs import decode_payload
from desfs.format.container import parse_whole
from desfs.format.model import Codec, ContainerIndex, Entry, Format
from tests.support.fixtures import cases, containers, load_manifest

CASES = cases()


def test_all_cases_present() -> None:
    assert len(CASES) == 6
    assert len(containers()) == sum(len(load_manifest(c)["containers"]) for c in CASES)


def _containers(case: Path) -> dict[str, ContainerIndex]:
    manifest = load_manifest(case)
    bucket = case / manifest["bucket_dir"]
    return {c["key"]: parse_whole((bucket / c["key"]).read_bytes()) for c in manifest["containers"]}


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_container_records(case: Path) -> None:
    manifest = load_manifest(case)
    bucket = case / manifest["bucket_dir"]
    for record in manifest["containers"]:
        data = (bucket / record["key"]).read_bytes()
        index = parse_whole(data)
        assert len(data) == record["size"] == index.size
        assert hashlib.sha256(data).hexdigest() == record["sha256"]
        assert index.format is Format(record["format"])
        assert index.version == record["version"]
        assert len(index.entries) == record["entry_count"]
        if index.format is Format.DES2:
            _check_des2_record(record, index, data)
        else:
            _check_deshead1_record(record, index, data)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_invalid_containers_are_rejected(case: Path) -> None:
    manifest = load_manifest(case)
    for record in manifest.get("invalid_containers", []):
        data = (case / manifest["bucket_dir"] / record["key"]).read_bytes()
        with pytest.raises(FormatError):
            parse_whole(data)


def _check_des2_record(record: dict[str, Any], index: ContainerIndex, data: bytes) -> None:
    assert index.variant == record["v1_variant"]
    assert index.index_start == index.data_end == record["index_offset"]
    assert des2.read_footer(len(data), data) == record["index_offset"]
    assert len(data) - 12 - index.index_start == record["index_size"]


def _check_deshead1_record(record: dict[str, Any], index: ContainerIndex, data: bytes) -> None:
    footer = deshead1.parse_footer(data[-72:], len(data))
    expected = record["footer"]
    assert footer == deshead1.Footer(**expected)
    assert index.variant is None
    assert index.data_start == expected["data_start"]
    assert index.data_end == expected["data_start"] + expected["data_length"]
    assert index.index_start == expected["meta_start"]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_file_records(case: Path) -> None:
    manifest = load_manifest(case)
    bucket = case / manifest["bucket_dir"]
    parsed = _containers(case)
    for record in manifest["files"]:
        data = (bucket / record["container"]).read_bytes()
        entry = parsed[record["container"]].entries[record["index_position"]]
        assert entry.position == record["index_position"]
        assert entry.name == bytes.fromhex(record["name_utf8_hex"])
        assert entry.name.decode("utf-8") == record["name"]
        assert entry.size == record["size"]
        assert entry.error is None
        assert not entry.deleted
        assert json.loads(entry.meta or b"{}") == record["meta"]
        _check_storage(record, entry)
        stored = _stored(bucket, record, entry, data)
        payload = decode_payload(entry, stored)
        assert hashlib.sha256(payload).hexdigest() == record["sha256"]


def _check_storage(record: dict[str, Any], entry: Entry) -> None:
    if record["storage"] == "external":
        assert entry.external is not None
        assert (entry.offset, entry.stored_length) == (0, 0)
        return
    assert entry.external is None
    if "codec" in record:
        assert entry.codec is Codec[record["codec"].upper()]
        assert entry.stored_length == record["stored_length"]
    if "flags" in record:
        assert record["flags"] & 1 == 0


def _stored(bucket: Path, record: dict[str, Any], entry: Entry, data: bytes) -> bytes:
    if entry.external is None:
        return data[entry.offset : entry.offset + entry.stored_length]
    key: str = record["external_key"]
    if entry.external.sha256 is not None:
        assert key.endswith("_bigFiles/" + entry.external.sha256)
    else:
        assert entry.external.key_hint == record["meta"].get("external_key")
    return (bucket / key).read_bytes()
