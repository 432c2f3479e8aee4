"""Attributes of every node: stat values, timestamps and the `user.des.*` xattrs.

Timestamps (docs/SEMANTICS.md): a file takes the first of its metadata's `mtime`,
`modified`, `created_at` or `timestamp` that parses (ISO 8601 or epoch seconds), else its
container's Last-Modified. Shard directories and the directories inside them take the
container's Last-Modified; a day directory takes midnight UTC of its date; the root the
newest day's. All of these are stable for the life of the mount.
"""

from __future__ import annotations

import json
import stat
from dataclasses import dataclass
from datetime import UTC, date, datetime

from desfs.archive.catalog import ContainerRef
from desfs.archive.opened import Container
from desfs.errors import DesfsError, NoAttribute
from desfs.format.model import Codec, Entry

XATTR_MAX = 64 * 1024  # Linux XATTR_SIZE_MAX
# st_size and st_mtime_ns are signed 64-bit in the kernel's stat. An index or metadata that
# claims more must not fail the whole directory listing the entry sits in.
STAT_MAX = 2**63 - 1
TIME_KEYS = ("mtime", "modified", "created_at", "timestamp")
NS = 1_000_000_000


class XattrTooLarge(DesfsError):
    errno = 7  # E2BIG


@dataclass(frozen=True, slots=True)
class Ownership:
    uid: int
    gid: int
    umask: int = 0o022


@dataclass(frozen=True, slots=True)
class Attr:
    ino: int
    is_dir: bool
    size: int
    mtime_ns: int
    nlink: int
    mode: int
    ttl: float  # seconds the kernel may cache this entry and its attributes

    @classmethod
    def directory(cls, ino: int, mtime_ns: int, owner: Ownership, ttl: float) -> Attr:
        return cls(ino, True, 0, mtime_ns, 2, stat.S_IFDIR | (0o555 & ~owner.umask), ttl)

    @classmethod
    def file(cls, ino: int, size: int, mtime_ns: int, owner: Ownership, ttl: float) -> Attr:
        # Only an entry already marked unreadable can claim a size over STAT_MAX.
        size = min(size, STAT_MAX)
        return cls(ino, False, size, mtime_ns, 1, stat.S_IFREG | (0o444 & ~owner.umask), ttl)


def day_mtime_ns(day: str) -> int:
    """Midnight UTC of a DES day; 0 for a top-level name that is not a day (a datas3t2
    dataset), whose time the store does not record."""
    try:
        when = date.fromisoformat(day)
    except ValueError:
        return 0
    midnight = datetime.combine(when, datetime.min.time(), UTC)
    return int(midnight.timestamp()) * NS


def container_mtime_ns(ref: ContainerRef) -> int:
    return ref.mtime_ns


def entry_mtime_ns(ref: ContainerRef, entry: Entry) -> int:
    found = _meta_time(entry.meta)
    return found if found is not None else container_mtime_ns(ref)


def _meta_time(meta: bytes) -> int | None:
    if not meta or not any(k.encode() in meta for k in TIME_KEYS):
        return None
    try:
        parsed = json.loads(meta)
    except (ValueError, RecursionError):  # RecursionError: hostile nesting depth
        return None
    if not isinstance(parsed, dict):
        return None
    for key in TIME_KEYS:
        value = parsed.get(key)
        stamp = _parse_time(value)
        if stamp is not None:
            return stamp
    return None


def _parse_time(value: object) -> int | None:
    stamp = _time_ns(value)
    # Years before 1678 or after 2261 do not fit in st_mtime_ns: not a usable time.
    return stamp if stamp is not None and -STAT_MAX <= stamp <= STAT_MAX else None


def _time_ns(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float) and 0 <= value < 1e11:
        return int(value * NS)
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return int(moment.timestamp() * NS)
    return None


def file_xattrs(container: Container, entry: Entry, external_key: str | None) -> dict[str, bytes]:
    """The `user.des.*` attributes of a file; absent ones are simply not in the dict."""
    found = {
        "user.des.container": container.ref.key.encode(),
        "user.des.format": container.index.format.value.encode(),
        "user.des.codec": Codec(entry.codec).name.lower().encode(),
        "user.des.size": str(entry.size).encode(),
        "user.des.index_position": str(entry.position).encode(),
    }
    if entry.meta:
        found["user.des.meta"] = entry.meta
    if entry.external is None:
        found["user.des.offset"] = str(entry.offset).encode()
        found["user.des.stored_size"] = str(entry.stored_length).encode()
    if external_key is not None:
        found["user.des.external_key"] = external_key.encode()
    if entry.external is not None and entry.external.sha256:
        found["user.des.sha256"] = entry.external.sha256.encode()
    if entry.error is not None:
        found["user.des.error"] = entry.error.encode()
    return found


def shard_facts(container: Container) -> dict[str, str | int]:
    """A shard's container, typed: the `user.des.*` xattrs and `desfs stat` show these."""
    index = container.index
    return {
        "container": container.ref.key,
        "etag": container.etag,
        "format": index.format.value,
        "version": index.version,
        "size": index.size,
        "entries": len(index.entries),
        "hidden": container.tree.hidden_count,
    }


def shard_xattrs(container: Container) -> dict[str, bytes]:
    return {f"user.des.{k}": str(v).encode() for k, v in shard_facts(container).items()}


def pick_xattr(values: dict[str, bytes], name: str) -> bytes:
    value = values.get(name)
    if value is None:
        raise NoAttribute(name)
    if len(value) > XATTR_MAX:
        raise XattrTooLarge(f"{name} is {len(value)} bytes, over the {XATTR_MAX}-byte limit")
    return value
