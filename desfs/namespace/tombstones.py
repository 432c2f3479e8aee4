"""Which UIDs a DES `.meta` sidecar tombstones (des-formats.md §2.11).

Only the tombstone map is read: offsets and sizes are never taken from a sidecar. The
caller bounds the sidecar's size before handing its bytes here.
"""

from __future__ import annotations

import json

from desfs.errors import FormatError


def _load(data: bytes) -> object:
    try:
        return json.loads(data.decode("utf-8"))
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise FormatError(f"sidecar is not JSON: {exc}") from None


def _uid(record: object) -> str | None:
    """The uid of one tombstone record; upstream stores it as text (ints become str)."""
    if not isinstance(record, dict):
        return None
    uid = record.get("uid")
    if isinstance(uid, int) and not isinstance(uid, bool):
        return str(uid)
    return uid if isinstance(uid, str) else None


def tombstoned_uids(data: bytes) -> frozenset[str]:
    """Every `uid` in the sidecar's "tombstones" map; raises FormatError when malformed.

    A record without a usable uid is skipped rather than failing the whole sidecar, so
    one odd record cannot bring back the other tombstoned entries.
    """
    document = _load(data)
    if not isinstance(document, dict):
        raise FormatError("sidecar is not a JSON object")
    tombstones = document.get("tombstones", {})
    if not isinstance(tombstones, dict):
        raise FormatError("sidecar 'tombstones' is not a JSON object")
    uids = (_uid(record) for record in tombstones.values())
    return frozenset(uid for uid in uids if uid is not None)
