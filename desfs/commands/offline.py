"""The offline commands `ls`, `cat`, `stat` and `verify`: the archive without FUSE.

They run the same engine as the mount (`desfs.archive.engine`), so they double as the
cheapest end-to-end debugging tool. Output goes to the given text/binary streams.
"""

from __future__ import annotations

import json
import logging
import re
from typing import BinaryIO, TextIO

from desfs.archive.engine import Archive
from desfs.archive.paths import DayDir, FileRef, Resolved, RootDir, ShardDir
from desfs.errors import IsADirectory, NotFound
from desfs.format.model import Entry
from desfs.fs.attributes import shard_facts
from desfs.namespace.tree import FileNode

log = logging.getLogger(__name__)

_DAY = re.compile(r"[0-9]{4}-?[0-9]{2}-?[0-9]{2}", re.ASCII)


Row = dict[str, object]


async def ls(archive: Archive, path: str, show_all: bool, long: bool, out: TextIO) -> None:
    """What `path` holds, one line each (`long`: with sizes)."""
    for row in await listing(archive, path, show_all):
        out.write(_line(row, long) + "\n")


async def listing(archive: Archive, path: str, show_all: bool) -> list[Row]:
    """What `path` holds, as `desfs ls --json` prints it: one object per name with its
    "type" (day, shard, directory, file, or hidden with --all) and what is known of it."""
    target = await archive.resolve(path)
    if isinstance(target, FileRef):
        return [_file_row(target.path.rpartition("/")[2], target.entry)]
    if isinstance(target, RootDir):
        days = await archive.days()
        if not days:
            log.warning("%s", empty_source(archive))
        return [{"name": day, "type": "day"} for day in days]
    if isinstance(target, DayDir):
        return [
            {"name": shard, "type": "shard", "size": ref.size, "container": ref.key}
            for shard, ref in await archive.shards(target.day)
        ]
    return _shard_rows(target, show_all)


def _shard_rows(target: ShardDir, show_all: bool) -> list[Row]:
    tree = target.container.tree
    rows: list[Row] = []
    for name, node in tree.listdir(target.path):
        if isinstance(node, FileNode):
            rows.append(_file_row(name, node.entry))
        else:
            rows.append({"name": name, "type": "directory"})
    if show_all and target.path == "":
        for hidden in tree.hidden:
            raw = hidden.name.decode("utf-8", "backslashreplace")
            rows.append({"name": raw, "type": "hidden", "reason": str(hidden.reason)})
    return rows


def _file_row(name: str, entry: Entry) -> Row:
    row: Row = {"name": name, "type": "file", "size": entry.size}
    if entry.error:
        row["error"] = entry.error
    return row


def _line(row: Row, long: bool) -> str:
    name, kind = str(row["name"]), row["type"]
    if kind == "hidden":
        return f"{show_raw(name.encode('utf-8', 'surrogateescape'))}\t(hidden: {row['reason']})"
    if kind in ("day", "directory"):
        return f"{name}/"
    if kind == "shard":
        return f"{name}/\t{row['size']}\t{row['container']}" if long else f"{name}/"
    if not long:
        return name
    note = f"\t(unreadable: {row['error']})" if "error" in row else ""
    return f"{row['size']}\t{name}{note}"


def show_raw(raw: bytes) -> str:
    return json.dumps(raw.decode("utf-8", "backslashreplace"), ensure_ascii=False)


async def cat(archive: Archive, path: str, raw_name: bytes | None, out: BinaryIO) -> None:
    target = await archive.resolve(path)
    if raw_name is not None:
        if not isinstance(target, ShardDir) or target.path != "":
            raise NotFound("--name needs PATH to be a shard directory")
        entry = target.container.tree.by_raw_name(raw_name)
        if entry is None:
            raise NotFound(f"no entry named {show_raw(raw_name)} in {target.container.ref.key}")
        container = target.container
    elif isinstance(target, FileRef):
        entry, container = target.entry, target.container
    else:
        raise IsADirectory(f"{path} is a directory")
    async for chunk in archive.chunks(container, entry):
        out.write(chunk)
    out.flush()


async def stat(archive: Archive, paths: list[str], out: TextIO) -> None:
    found = [_describe(await archive.resolve(path)) for path in paths]
    document: object = found[0] if len(found) == 1 else found
    json.dump(document, out, indent=2, sort_keys=True, ensure_ascii=False)
    out.write("\n")


def _describe(target: Resolved) -> dict[str, object]:
    if isinstance(target, RootDir):
        return {"type": "root"}
    if isinstance(target, DayDir):
        return {"type": "day", "day": target.day}
    if isinstance(target, ShardDir):
        found: dict[str, object] = {"type": "directory", "path": target.path}
        found.update(shard_facts(target.container))
        return found
    entry = target.entry
    meta: object = json.loads(entry.meta) if entry.meta and entry.error is None else {}
    return {
        "type": "file",
        "path": target.path,
        "name_utf8_hex": entry.name.hex(),
        "container": target.container.ref.key,
        "index_position": entry.position,
        "size": entry.size,
        "offset": entry.offset,
        "stored_size": entry.stored_length,
        "codec": entry.codec.name.lower(),
        "external": entry.external is not None,
        "sha256": entry.external.sha256 if entry.external else None,
        "meta": meta,
        "error": entry.error,
    }


def empty_source(archive: Archive) -> str:
    """What was looked for in a source that shows no days, and a likely reason."""
    where = archive.describe()
    text = (
        f"no DES containers in {where}: looked for YYYY-MM-DD/*.des (Datavision), "
        "YYYYMMDD/*.des (DES nested) and YYYYMMDD_<HEX>_<NNNN>.des (DES flat), and for the "
        "other stores datas3t/ (datas3t2), index.idx (s4db), data_NNNNNNNN.dat (Conduit)"
    )
    last = where.split(" at ")[0].rstrip("/").rpartition("/")[2]
    if _DAY.fullmatch(last):
        text += f"; {last!r} looks like a day: SOURCE is the folder that holds the days"
    return text
