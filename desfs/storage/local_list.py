"""S3 ListObjectsV2 semantics over a directory tree: one page of a delimited listing.

Keys come back in the byte order of their UTF-8 encoding, objects and common prefixes
interleaved and counted together against the page size, exactly as S3 pages them. The
continuation token is the last key or prefix handed out, so a page is recomputed from the
tree and never held in memory between calls. A directory is a common prefix only when it
holds at least one file somewhere below it (S3 has no empty "directories"). Symlinked
directories are never followed; a symlinked file is listed only when its target is a
regular file inside the root.
"""

from __future__ import annotations

import base64
import binascii
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from desfs.errors import UsageError
from desfs.storage.base import ListPage, ObjectInfo


@dataclass(frozen=True, slots=True)
class _After:
    """Where the previous page stopped."""

    key: str
    was_prefix: bool


def list_dir_page(
    root: Path, prefix: str, delimiter: str, token: str | None, page_size: int
) -> ListPage:
    after = decode_token(token) if token is not None else None
    objects: list[ObjectInfo] = []
    prefixes: list[str] = []
    last: _After | None = None
    for item in _grouped(root, prefix, delimiter, after):
        if len(objects) + len(prefixes) == page_size:
            assert last is not None
            return ListPage(tuple(objects), tuple(prefixes), encode_token(last))
        if isinstance(item, ObjectInfo):
            objects.append(item)
            last = _After(item.key, False)
        else:
            prefixes.append(item)
            last = _After(item, True)
    return ListPage(tuple(objects), tuple(prefixes), None)


def encode_token(after: _After) -> str:
    raw = (b"p" if after.was_prefix else b"k") + _enc(after.key)
    return base64.urlsafe_b64encode(raw).decode("ascii")


def decode_token(token: str) -> _After:
    try:
        raw = base64.urlsafe_b64decode(token.encode("ascii"))
    except (binascii.Error, UnicodeEncodeError, ValueError) as exc:
        raise UsageError("invalid listing continuation token") from exc
    if raw[:1] not in (b"p", b"k") or len(raw) < 2:
        raise UsageError("invalid listing continuation token")
    return _After(raw[1:].decode("utf-8", "surrogateescape"), raw[:1] == b"p")


def _grouped(
    root: Path, prefix: str, delimiter: str, after: _After | None
) -> Iterator[ObjectInfo | str]:
    """Objects and common prefixes under `prefix` past `after`, in S3 order."""
    dir_key, _, name_start = prefix.rpartition("/")
    start = _start_dir(root, dir_key)
    if start is None:
        return
    base = dir_key + "/" if dir_key else ""
    seen_prefix: str | None = None
    for key, path, is_dir in _walk(start, base, name_start, prefix, delimiter, after):
        common = _common_prefix(key + "/" if is_dir else key, prefix, delimiter)
        if common is None:
            info = _object_info(root, key, path)
            if info is not None:
                yield info
            continue
        if common == seen_prefix or not _after_ok(common, after):
            continue
        if is_dir and not _has_files(root, path):
            continue
        seen_prefix = common
        yield common


def _walk(
    directory: str,
    base: str,
    name_start: str,
    prefix: str,
    delimiter: str,
    after: _After | None,
) -> Iterator[tuple[str, str, bool]]:
    """(key, path, is_dir) in key order; a directory is yielded instead of descended into
    when every key below it folds into one common prefix."""
    for name, path, is_dir in _sorted_entries(directory):
        if not name.startswith(name_start):
            continue
        key = base + name
        if not is_dir:
            if _after_ok(key, after):
                yield key, path, False
            continue
        dir_prefix = key + "/"
        if after is not None and _skips_all_below(dir_prefix, after):
            continue
        if _common_prefix(dir_prefix, prefix, delimiter) is not None:
            yield key, path, True
        else:
            yield from _walk(path, dir_prefix, "", prefix, delimiter, after)


def _sorted_entries(directory: str) -> list[tuple[str, str, bool]]:
    entries: list[tuple[str, str, bool]] = []
    try:
        with os.scandir(directory) as it:
            for entry in it:
                if entry.is_dir(follow_symlinks=False):
                    entries.append((entry.name, entry.path, True))
                elif entry.is_file(follow_symlinks=False) or entry.is_symlink():
                    entries.append((entry.name, entry.path, False))
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return []
    # A directory sorts as its prefix "name/": that is where its keys fall among siblings.
    entries.sort(key=lambda e: _enc(e[0] + "/" if e[2] else e[0]))
    return entries


def _common_prefix(key: str, prefix: str, delimiter: str) -> str | None:
    """The common prefix `key` folds into, or None when it stays a key of its own."""
    if not delimiter:
        return None
    rest = key[len(prefix) :]
    cut = rest.find(delimiter)
    if cut < 0:
        return None
    return prefix + rest[: cut + len(delimiter)]


def _after_ok(key: str, after: _After | None) -> bool:
    if after is None:
        return True
    if after.was_prefix and key.startswith(after.key):
        return False
    return _enc(key) > _enc(after.key)


def _skips_all_below(dir_prefix: str, after: _After) -> bool:
    """True when every key starting with `dir_prefix` sorts at or before `after`."""
    if after.key.startswith(dir_prefix):
        return False
    return _enc(dir_prefix) < _enc(after.key)


def _start_dir(root: Path, dir_key: str) -> str | None:
    if not dir_key:
        return str(root)
    if "\0" in dir_key or dir_key.startswith("/"):
        return None
    if any(part in ("", ".", "..") for part in dir_key.split("/")):
        return None
    path = os.path.join(root, dir_key)
    # Symlinked directories are not part of the tree (see the module docstring).
    if os.path.realpath(path) != path or not os.path.isdir(path):
        return None
    return path


def _has_files(root: Path, directory: str) -> bool:
    for _name, path, is_dir in _sorted_entries(directory):
        if is_dir:
            if _has_files(root, path):
                return True
        elif _file_stat(root, path) is not None:
            return True
    return False


def _object_info(root: Path, key: str, path: str) -> ObjectInfo | None:
    st = _file_stat(root, path)
    if st is None:
        return None
    return ObjectInfo(key, st.st_size, local_etag(st), st.st_mtime_ns)


def local_etag(st: os.stat_result) -> str:
    """A local file's identity. Size and mtime alone miss a file rewritten in place with
    its size and mtime kept (`rsync --inplace -t`, `cp -p`, coarse clocks); the change
    time and inode number cannot be set back by a writer."""
    return f"{st.st_size}-{st.st_mtime_ns}-{st.st_ctime_ns}-{st.st_ino}"


def _file_stat(root: Path, path: str) -> os.stat_result | None:
    """The stat of a listable file: a regular file, or a symlink to one inside `root`."""
    try:
        st = os.lstat(path)
        if stat.S_ISLNK(st.st_mode):
            real = os.path.realpath(path)
            if os.path.commonpath([real, root]) != str(root):
                return None
            st = os.stat(real)
    except (OSError, ValueError):
        return None
    return st if stat.S_ISREG(st.st_mode) else None


def _enc(key: str) -> bytes:
    return key.encode("utf-8", "surrogateescape")
