"""Tombstoned UIDs from DES `.meta` sidecars (desfs.namespace.tombstones)."""

from __future__ import annotations

import json

import pytest

from desfs.errors import FormatError
from desfs.namespace.tombstones import tombstoned_uids


def _sidecar(tombstones: object) -> bytes:
    """A sidecar shaped like the upstream MetadataManager's (des-formats §2.11)."""
    document = {
        "version": 1,
        "shard_file": "20241215_1_0000.des",
        "shard_size": 321,
        "created_at": "2024-12-15T10:00:00Z",
        "last_updated": "2024-12-15T11:00:00Z",
        "index": {
            "one:2024-12-15T09:00:00Z": {"uid": "one", "offset": 8, "length": 3, "codec": "none"},
        },
        "tombstones": tombstones,
        "stats": {"entries": 2, "deleted_files": 2, "deletion_ratio": 1.0},
    }
    return json.dumps(document, indent=2).encode()


def _tombstone(uid: object, created_at: str = "2024-12-15T09:00:00Z") -> dict[str, object]:
    return {
        "uid": uid,
        "created_at": created_at,
        "deleted_at": "2024-12-15T11:00:00Z",
        "deleted_by": "ops",
        "reason": "GDPR",
        "ticket_id": "T-1",
    }


def test_every_tombstoned_uid_is_found() -> None:
    data = _sidecar(
        {
            "one:2024-12-15T09:00:00Z": _tombstone("one"),
            "one:2024-12-16T09:00:00Z": _tombstone("one", "2024-12-16T09:00:00Z"),
            "../x:2024-12-15T09:00:00Z": _tombstone("../x"),
            "zażółć:2024-12-15T09:00:00Z": _tombstone("zażółć"),
            "7:2024-12-15T09:00:00Z": _tombstone(7),
        }
    )
    assert tombstoned_uids(data) == {"one", "../x", "zażółć", "7"}


def test_index_entries_are_not_tombstones() -> None:
    assert tombstoned_uids(_sidecar({})) == frozenset()
    assert tombstoned_uids(b'{"version": 1}') == frozenset()


def test_records_without_a_usable_uid_are_skipped() -> None:
    data = _sidecar(
        {
            "a": _tombstone("kept"),
            "b": {"created_at": "2024-12-15T09:00:00Z"},
            "c": _tombstone(None),
            "d": _tombstone(True),
            "e": _tombstone(["x"]),
            "f": "not a record",
        }
    )
    assert tombstoned_uids(data) == {"kept"}


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"not json",
        b"\xff\xfe{}",
        b"[]",
        b'"tombstones"',
        b'{"tombstones": []}',
        b'{"tombstones": "uid"}',
        b"[" * 100_000 + b"]" * 100_000,
        b'{"tombstones": {"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}}",
        b'{"tombstones": {"a": {"uid": ' + b"9" * 5000 + b"}}}",
        b'{"tombstones": {}',
    ],
)
def test_malformed_sidecars_raise_format_error(data: bytes) -> None:
    with pytest.raises(FormatError):
        tombstoned_uids(data)
