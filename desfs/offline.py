"""The offline commands `ls`, `cat`, `stat` and `verify`: the archive without FUSE.

They run the same read path as the mount (`desfs.fs.archive`), so they double as the
cheapest end-to-end debugging tool. Output goes to the given text/binary streams.
"""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import BinaryIO, TextIO

from desfs.errors import DesfsError, IsADirectory, NotFound
from desfs.format.model import Entry
from desfs.fs.archive import DayDir, FileRef, Resolved, RootDir, ShardDir, resolve_in
from desfs.fs.attributes import shard_xattrs
from desfs.fs.containers import Container
from desfs.fs.readahead import Stream
from desfs.namespace.tree import FileNode
from desfs.sources import Source


async def resolve(source: Source, path: str) -> Resolved:
    if source.single is not None:
        container = await source.archive.loader.load(source.single)
        return resolve_in("", container, path)
    return await source.archive.resolve(path)


async def ls(source: Source, path: str, show_all: bool, long: bool, out: TextIO) -> None:
    target = await resolve(source, path)
    if isinstance(target, FileRef):
        out.write(_line(target.path.rpartition("/")[2], target.entry, long) + "\n")
        return
    if isinstance(target, RootDir):
        for day in await source.archive.catalog.days():
            out.write(f"{day}/\n")
        return
    if isinstance(target, DayDir):
        listing = await source.archive.catalog.day(target.day)
        for shard, ref in listing.shards.items():
            out.write(f"{shard}/\t{ref.size}\t{ref.key}\n" if long else f"{shard}/\n")
        return
    _list_shard_dir(target, show_all, long, out)


def _list_shard_dir(target: ShardDir, show_all: bool, long: bool, out: TextIO) -> None:
    tree = target.container.tree
    for name, node in tree.listdir(target.path):
        if isinstance(node, FileNode):
            out.write(_line(name, target.container.index.entries[node.position], long) + "\n")
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


async def cat(source: Source, path: str, raw_name: bytes | None, out: BinaryIO) -> None:
    target = await resolve(source, path)
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
    async for chunk in _chunks(source, container, entry):
        out.write(chunk)
    out.flush()


async def _chunks(source: Source, container: Container, entry: Entry) -> AsyncIterator[bytes]:
    stream = Stream()
    step = 1024 * 1024
    for offset in range(0, entry.size, step):
        yield await source.archive.reader.read(container, entry, offset, step, stream)


async def stat(source: Source, paths: list[str], out: TextIO) -> None:
    found = [_describe(await resolve(source, path)) for path in paths]
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


async def verify(source: Source, out: TextIO, err: TextIO = sys.stderr) -> VerifyReport:
    report = VerifyReport()
    for container_path, opened in await _all_containers(source, err, report):
        report.containers += 1
        report.hidden += len(opened.tree.hidden)
        for entry in opened.index.entries:
            await _verify_entry(source, container_path, opened, entry, report, err)
    out.write(
        f"{report.containers} containers, {report.entries} entries, {report.bytes} bytes, "
        f"{report.hidden} hidden names, {report.problems} problems\n"
    )
    return report


async def _all_containers(
    source: Source, err: TextIO, report: VerifyReport
) -> list[tuple[str, Container]]:
    archive = source.archive
    refs = []
    if source.single is not None:
        refs.append(("", source.single))
    else:
        for day in await archive.catalog.days():
            listing = await archive.catalog.day(day)
            refs.extend((f"/{day}/{shard}", ref) for shard, ref in listing.shards.items())
    opened = []
    for path, ref in refs:
        try:
            opened.append((path, await archive.loader.load(ref)))
        except DesfsError as exc:
            report.problems += 1
            err.write(f"BAD {ref.key}: {exc}\n")
    return opened


async def _verify_entry(
    source: Source, path: str, container: Container, entry: Entry, report: VerifyReport, err: TextIO
) -> None:
    report.entries += 1
    try:
        data = b"".join([chunk async for chunk in _chunks(source, container, entry)])
    except DesfsError as exc:
        report.problems += 1
        err.write(f"BAD {container.ref.key} entry {_show_raw(entry.name)}: {exc}\n")
        return
    if len(data) != entry.size:
        report.problems += 1
        err.write(f"BAD {container.ref.key} entry {_show_raw(entry.name)}: size mismatch\n")
        return
    report.bytes += len(data)
