"""`desfs verify`: parse every container and decode every entry of a source, and report
each problem once: a `BAD` line on stderr, or with `--json` one JSON object per line on
stdout (`{"problem": ...}` as found, then `{"summary": ...}`), so memory never follows the
number of problems."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass
from typing import TextIO

from desfs.archive.catalog import ContainerRef
from desfs.archive.engine import Archive
from desfs.archive.opened import Container
from desfs.commands.offline import empty_source, show_raw
from desfs.errors import DesfsError, NotFound
from desfs.format.model import Entry


@dataclass(slots=True)
class VerifyReport:
    containers: int = 0
    entries: int = 0
    bytes: int = 0
    hidden: int = 0
    problems: int = 0


@dataclass(slots=True)
class _Output:
    out: TextIO
    err: TextIO
    as_json: bool

    def problem(self, container: str, entry: bytes | None, error: str) -> None:
        if self.as_json:
            name = None if entry is None else entry.decode("utf-8", "backslashreplace")
            found = {"container": container, "entry": name, "error": error}
            self.out.write(json.dumps({"problem": found}, ensure_ascii=False) + "\n")
        elif entry is None:
            self.err.write(f"BAD {container}: {error}\n")
        else:
            self.err.write(f"BAD {container} entry {show_raw(entry)}: {error}\n")


async def verify(
    archive: Archive, out: TextIO, err: TextIO = sys.stderr, as_json: bool = False
) -> VerifyReport:
    report, output = VerifyReport(), _Output(out, err, as_json)
    single = archive.single or await archive.root_unit()
    if single is not None:
        name = single.key or archive.describe()
        await _verify_opened(archive, name, await _try_open(archive, single), report, output)
    else:
        for day in await archive.days():
            async for _, ref, opened in archive.walk(day):
                await _verify_opened(archive, ref.key, opened, report, output)
    if as_json:
        out.write(json.dumps({"summary": asdict(report)}) + "\n")
    else:
        out.write(
            f"{report.containers} containers, {report.entries} entries, {report.bytes} bytes, "
            f"{report.hidden} hidden names, {report.problems} problems\n"
        )
    if report.containers == 0 and report.problems == 0:
        raise NotFound(empty_source(archive))
    return report


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
    output: _Output,
) -> None:
    if isinstance(opened, DesfsError):
        report.problems += 1
        output.problem(key, None, str(opened))
        return
    report.containers += 1
    report.hidden += opened.tree.hidden_count
    for entry in opened.index.entries:
        await _verify_entry(archive, opened, entry, report, output)


async def _verify_entry(
    archive: Archive, container: Container, entry: Entry, report: VerifyReport, output: _Output
) -> None:
    report.entries += 1
    if entry.error is not None:  # listed, unreadable: an empty one would never be read
        report.problems += 1
        output.problem(container.ref.key, entry.name, entry.error)
        return
    size = 0
    try:
        # Counted, never joined: an entry may be many GiB.
        async for chunk in archive.chunks(container, entry):
            size += len(chunk)
    except DesfsError as exc:
        report.problems += 1
        output.problem(container.ref.key, entry.name, str(exc))
        return
    if size != entry.size:
        report.problems += 1
        output.problem(container.ref.key, entry.name, "size mismatch")
        return
    report.bytes += size
