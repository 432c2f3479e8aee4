"""The offline commands `ls`, `cat`, `stat` and `verify`: the archive without FUSE.

They run the same engine as the mount (`desfs.archive.engine`), so they double as the
cheapest end-to-end debugging tool. Output goes to the given text/binary streams.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from dataclasses import dataclass
from typing import BinaryIO, TextIO

from desfs.archive.catalog import ContainerRef
from desfs.archive.containers import Container
from desfs.archive.engine import Archive
from desfs.archive.paths import DayDir, FileRef, Resolved, RootDir, ShardDir
from desfs.errors import DesfsError, IsADirectory, NotFound
from desfs.format.model import Entry
from desfs.fs.attributes import shard_xattrs
from desfs.namespace.tree import FileNode

log = logging.getLogger(__name__)

_DAY = re.compile(r"[0-9]{4}-?[0-9]{2}-?[0-9]{2}", re.ASCII)


async def ls(archive: Archive, path: str, show_all: bool, long: bool, out: TextIO) -> None:
    target = await archive.resolve(path)
    if isinstance(target, FileRef):
        out.write(_line(target.path.rpartition("/")[2], target.entry, long) + "\n")
        return
    if isinstance(target, RootDir):
        days = await archive.days()
        if not days:
            log.warning("%s", empty_source(archive))
        for day in days:
            out.write(f"{day}/\n")
        return
    if isinstance(target, DayDir):
        for shard, ref in await archive.shards(target.day):
            out.write(f"{shard}/\t{ref.size}\t{ref.key}\n" if long else f"{shard}/\n")
        return
    _list_shard_dir(target, show_all, long, out)


def _list_shard_dir(target: ShardDir, show_all: bool, long: bool, out: TextIO) -> None:
    tree = target.container.tree
    for name, node in tree.listdir(target.path):
        if isinstance(node, FileNode):
            out.write(_line(name, node.entry, long) + "\n")
        else:
            out.write(f"{name}/\n")
    if show_all and target.path == "":
        for hidden in tree.hidden:
            out.write(f"{_show_raw(hidden.name)}\t(hidden: {hidden.reason})\n")


def _line(name: str, entry: Entry, long: bool) -> str:
    if not long:
        return name
    note = f"\t(unreadable: {entry.error})" if entry.error else ""
    return f"{entry.size}\t{name}{note}"


def _show_raw(raw: bytes) -> str:
    return json.dumps(raw.decode("utf-8", "backslashreplace"), ensure_ascii=False)


async def cat(archive: Archive, path: str, raw_name: bytes | None, out: BinaryIO) -> None:
    target = await archive.resolve(path)
    if raw_name is not None:
        if not isinstance(target, ShardDir) or target.path != "":
            raise NotFound("--name needs PATH to be a shard directory")
        entry = target.container.tree.by_raw_name(raw_name)
        if entry is None:
            raise NotFound(f"no entry named {_show_raw(raw_name)} in {target.container.ref.key}")
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
        found.update(
            {
                k.removeprefix("user.des."): v.decode()
                for k, v in shard_xattrs(target.container).items()
            }
        )
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


@dataclass(slots=True)
class VerifyReport:
    containers: int = 0
    entries: int = 0
    bytes: int = 0
    hidden: int = 0
    problems: int = 0


async def verify(archive: Archive, out: TextIO, err: TextIO = sys.stderr) -> VerifyReport:
    report = VerifyReport()
    if archive.single is not None:
        single = archive.single
        await _verify_opened(archive, single.key, await _try_open(archive, single), report, err)
    else:
        for day in await archive.days():
            async for _, ref, opened in archive.walk(day):
                await _verify_opened(archive, ref.key, opened, report, err)
    out.write(
        f"{report.containers} containers, {report.entries} entries, {report.bytes} bytes, "
        f"{report.hidden} hidden names, {report.problems} problems\n"
    )
    if report.containers == 0 and report.problems == 0:
        raise NotFound(empty_source(archive))
    return report


def empty_source(archive: Archive) -> str:
    """What was looked for in a source that shows no days, and a likely reason."""
    where = archive.describe()
    text = (
        f"no DES containers in {where}: looked for YYYY-MM-DD/*.des (Datavision), "
        "YYYYMMDD/*.des (DES nested) and YYYYMMDD_<HEX>_<NNNN>.des (DES flat)"
    )
    last = where.split(" at ")[0].rstrip("/").rpartition("/")[2]
    if _DAY.fullmatch(last):
        text += f"; {last!r} looks like a day: SOURCE is the folder that holds the days"
    return text


async def _try_open(archive: Archive, ref: ContainerRef) -> Container | DesfsError:
    try:
        return await archive.open(ref)
    except DesfsError as exc:
        return exc


async def _verify_opened(
    archive: Archive,
    key: str,
    opened: Container | DesfsError,
    report: VerifyReport,
    err: TextIO,
) -> None:
    if isinstance(opened, DesfsError):
        report.problems += 1
        err.write(f"BAD {key}: {opened}\n")
        return
    report.containers += 1
    report.hidden += len(opened.tree.hidden)
    for entry in opened.index.entries:
        await _verify_entry(archive, opened, entry, report, err)


async def _verify_entry(
    archive: Archive, container: Container, entry: Entry, report: VerifyReport, err: TextIO
) -> None:
    report.entries += 1
    size = 0
    try:
        # Counted, never joined: an entry may be many GiB.
        async for chunk in archive.chunks(container, entry):
            size += len(chunk)
    except DesfsError as exc:
        report.problems += 1
        err.write(f"BAD {container.ref.key} entry {_show_raw(entry.name)}: {exc}\n")
        return
    if size != entry.size:
        report.problems += 1
        err.write(f"BAD {container.ref.key} entry {_show_raw(entry.name)}: size mismatch\n")
        return
    report.bytes += size
