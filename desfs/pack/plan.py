"""`desfs pack`: one day of DES containers from a directory, in an upstream daily layout.

Datavision (DESHEAD1): `<out>/YYYY-MM-DD/<hex>.des`, external files in
`<out>/YYYY-MM-DD/_bigFiles/<name>` (des-formats.md §1.7, §1.10, §1.11).
DES flat (DES2): `<out>/YYYYMMDD_<HEX>_<NNNN>.des`, BigFiles in `<out>/_bigFiles/<sha256>`
(§2.6, §2.9, §2.10). Entry names are source paths relative to the source directory.
A run writes everything or nothing: see `desfs.pack.staging.Staging`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from desfs.errors import DesfsError, UsageError
from desfs.format.des2_writer import Des2Writer
from desfs.format.deshead1_writer import DesHead1Writer
from desfs.format.model import Format
from desfs.format.writer import copy_exact
from desfs.namespace.routing import (
    datavision_shard_token,
    des_shard_hex,
    des_shard_index,
    shard_from_name,
)
from desfs.pack.options import PackOptions
from desfs.pack.staging import (
    SourceFile,
    SourceTree,
    Staging,
    as_desfs_error,
    open_source,
    scan_source,
)


@dataclass(frozen=True, slots=True)
class WrittenFile:
    """One object written by a pack run; `key` is relative to the output directory."""

    key: str
    size: int
    entries: int = 0  # containers only


@dataclass(frozen=True, slots=True)
class PackReport:
    containers: tuple[WrittenFile, ...]
    big_files: tuple[WrittenFile, ...]
    skipped: tuple[str, ...]  # source names that are not regular files
    empty_dirs: tuple[str, ...]  # source directories with nothing to pack


@dataclass(frozen=True, slots=True)
class _Planned:
    key: str
    files: tuple[SourceFile, ...]


def load_metadata(path: Path) -> dict[str, dict[str, object]]:
    """Per-file metadata from a JSON file shaped `{"relative/name": {...}, ...}`."""
    try:
        document = json.loads(path.read_bytes())
    except OSError as exc:
        raise as_desfs_error(exc) from exc
    except ValueError as exc:
        raise UsageError(f"metadata file {str(path)!r} is not valid JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise UsageError(f"metadata file {str(path)!r} must hold a JSON object")
    for name, meta in document.items():
        if not isinstance(meta, dict):
            raise UsageError(f"metadata for {name!r} in {str(path)!r} must be a JSON object")
    return document


Progress = Callable[[int, int], None]  # (files written, files in all)


def pack_directory(
    source: Path, out: Path, options: PackOptions, progress: Progress | None = None
) -> PackReport:
    """Pack every regular file under `source` into containers under `out`."""
    if out.resolve().is_relative_to(source.resolve()):
        raise UsageError(f"output {str(out)!r} must not lie inside the source {str(source)!r}")
    try:
        tree = scan_source(source)
    except OSError as exc:
        raise as_desfs_error(exc) from exc
    return pack_tree(tree, out, options, progress)


def pack_tree(
    tree: SourceTree, out: Path, options: PackOptions, progress: Progress | None = None
) -> PackReport:
    """Pack an already scanned source tree; a file that changed since the scan fails it."""
    _check_metadata_names(options.metadata, tree.files)
    if options.format is Format.DESHEAD1:
        plan = _plan_datavision(tree.files, options)
    else:
        plan = _plan_des(tree.files, options)
    if not options.overwrite:
        _refuse_existing(out, plan, options)
    counter = _Counter(len(tree.files), progress)
    containers, big_files = _write_all(out, plan, options, counter)
    return PackReport(containers, big_files, tree.skipped, tree.empty_dirs)


@dataclass(slots=True)
class _Counter:
    total: int
    report: Progress | None
    done: int = 0

    def one(self) -> None:
        self.done += 1
        if self.report is not None:
            self.report(self.done, self.total)


def _check_metadata_names(metadata: Mapping[str, object], files: tuple[SourceFile, ...]) -> None:
    unknown = set(metadata) - {f.name for f in files}
    if unknown:
        raise UsageError(f"metadata names files not in the source: {sorted(unknown)[:5]}")


def _plan_datavision(files: tuple[SourceFile, ...], options: PackOptions) -> list[_Planned]:
    bits = options.bits
    groups: dict[int, list[SourceFile]] = {}
    if options.empty_shards:
        groups = {shard: [] for shard in range(1 << bits)}
    for source in files:
        groups.setdefault(shard_from_name(source.name, bits), []).append(source)
    day = options.day.isoformat()
    return [
        _Planned(f"{day}/{datavision_shard_token(shard, bits)}.des", tuple(groups[shard]))
        for shard in sorted(groups)
    ]


def _plan_des(files: tuple[SourceFile, ...], options: PackOptions) -> list[_Planned]:
    """Route by name, then split each shard's run of files as upstream's planner does."""
    n_bits = options.bits
    groups: dict[int, list[SourceFile]] = {}
    if options.empty_shards:
        groups = {shard: [] for shard in range(1 << n_bits)}
    for source in files:
        groups.setdefault(des_shard_index(source.name, n_bits), []).append(source)
    day = options.day.strftime("%Y%m%d")
    plan: list[_Planned] = []
    for shard in sorted(groups):
        stem = f"{day}_{des_shard_hex(shard, n_bits)}"
        for part, members in enumerate(_split(groups[shard], options.max_size)):
            plan.append(_Planned(f"{stem}_{part:04d}.des", members))
    return plan


def _split(files: list[SourceFile], limit: int) -> list[tuple[SourceFile, ...]]:
    # Sums the input sizes, BigFiles included, exactly like the upstream planner.
    parts: list[list[SourceFile]] = [[]]
    total = 0
    for source in files:
        if parts[-1] and total + source.size > limit:
            parts.append([])
            total = 0
        parts[-1].append(source)
        total += source.size
    return [tuple(part) for part in parts]


def _external_key(options: PackOptions, name: str) -> str:
    return f"{options.day.isoformat()}/_bigFiles/{name}"


def _refuse_existing(out: Path, plan: list[_Planned], options: PackOptions) -> None:
    keys = [planned.key for planned in plan]
    if options.format is Format.DESHEAD1:
        threshold = options.big_threshold
        keys += [
            _external_key(options, source.name)
            for planned in plan
            for source in planned.files
            if source.size >= threshold
        ]
    for key in keys:
        if (out / key).exists() or (out / key).is_symlink():
            raise UsageError(f"{str(out / key)!r} already exists (use --overwrite to replace it)")


def _write_all(
    out: Path, plan: list[_Planned], options: PackOptions, counter: _Counter
) -> tuple[tuple[WrittenFile, ...], tuple[WrittenFile, ...]]:
    staging = Staging()
    containers: list[WrittenFile] = []
    big_files: list[WrittenFile] = []
    try:
        if options.format is Format.DESHEAD1:
            (out / options.day.isoformat()).mkdir(parents=True, exist_ok=True)
        for planned in plan:
            writer = _write_datavision if options.format is Format.DESHEAD1 else _write_des
            containers.append(writer(out, planned, options, staging, big_files, counter))
        staging.commit()
    except OSError as exc:
        staging.abort()
        raise as_desfs_error(exc) from exc
    except BaseException:
        staging.abort()
        raise
    return tuple(containers), tuple(big_files)


def _write_datavision(
    out: Path,
    planned: _Planned,
    options: PackOptions,
    staging: Staging,
    big: list[WrittenFile],
    counter: _Counter,
) -> WrittenFile:
    with staging.file(out / planned.key) as handle:
        writer = DesHead1Writer(handle)
        for source in planned.files:
            counter.one()
            meta = _meta(options, source)
            with _naming(source):
                if source.size < options.big_threshold:
                    with open_source(source) as reader:
                        writer.add_stream(source.name, reader, source.size, meta)
                    continue
                key = _external_key(options, source.name)
                with staging.file(out / key) as target, open_source(source) as reader:
                    copy_exact(reader, source.size, target.write)
                writer.add_external(source.name, source.size, key, meta)
            big.append(WrittenFile(key, source.size))
        size = writer.close()
    return WrittenFile(planned.key, size, writer.entry_count)


def _write_des(
    out: Path,
    planned: _Planned,
    options: PackOptions,
    staging: Staging,
    big: list[WrittenFile],
    counter: _Counter,
) -> WrittenFile:
    with staging.file(out / planned.key) as handle:
        writer = Des2Writer(handle, options.codec, options.level, options.smart_skip)
        for source in planned.files:
            counter.one()
            meta = _meta(options, source)
            with _naming(source):
                if source.size <= options.big_threshold:
                    with open_source(source) as reader:
                        writer.add_stream(source.name, reader, source.size, meta)
                    continue
                sha256, new = staging.copy_content_addressed(source, out / "_bigFiles")
                writer.add_bigfile(source.name, sha256, source.size, meta)
            if new:
                big.append(WrittenFile(f"_bigFiles/{sha256}", source.size))
        size = writer.close()
    return WrittenFile(planned.key, size, writer.entry_count)


def _meta(options: PackOptions, source: SourceFile) -> Mapping[str, object] | None:
    meta = options.metadata.get(source.name)
    if not options.keep_mtime:
        return meta
    moment = datetime.fromtimestamp(source.mtime_ns / 1e9, UTC)
    return {**(meta or {}), "mtime": moment.isoformat().replace("+00:00", "Z")}


@contextmanager
def _naming(source: SourceFile) -> Iterator[None]:
    """Prefix a desfs error about one file with that file's name."""
    try:
        yield
    except OSError as exc:
        raise as_desfs_error(exc) from exc
    except DesfsError as exc:
        raise type(exc)(f"{source.name!r}: {exc}") from exc
