"""Which keys of a source listing are days and containers, and where external payloads live.

Pure functions over keys relative to the source root (des-formats.md §1.7, §1.10, §2.6,
§2.10, §6). No key this module returns has a leading "/", an empty, "." or ".."
component, or a NUL, whatever the listing or the container's metadata says.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from enum import Enum

from desfs.errors import NotFound, UsageError
from desfs.format.model import Entry, Format

NAME_MAX = 255  # bytes in one path component (Linux NAME_MAX)
DEFAULT_BIGFILES = "_bigFiles"

# re.ASCII everywhere: "\d" would otherwise accept any Unicode digit.
_DASHED_DAY = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})", re.ASCII)
_COMPACT_DAY = re.compile(r"([0-9]{4})([0-9]{2})([0-9]{2})", re.ASCII)
_FLAT_KEY = re.compile(r"([0-9]{8})_([0-9A-F]{1,16}_[0-9]{4,})\.des", re.ASCII)
_FLAT_DAY_PREFIX = re.compile(r"([0-9]{8})_", re.ASCII)
_SHA256 = re.compile(r"[0-9a-f]{64}", re.ASCII)
_SUFFIX = ".des"


class Layout(Enum):
    """The three upstream key layouts; the value is the config spelling."""

    DATAVISION = "datavision"  # YYYY-MM-DD/<stem>.des
    DES_FLAT = "des-flat"  # YYYYMMDD_<HEX>_<NNNN>.des at the root
    DES_NESTED = "des-nested"  # YYYYMMDD/<HEX>.des or YYYYMMDD/<HH>_<XXXX>.des
    # Other stores (namespace.stores): never mixed with DES layouts in one source.
    DATAS3T2 = "datas3t2"  # datas3t/<dataset>/dataranges/<first>-<last>.tar
    S4DB = "s4db"  # <prefix>/index.idx and data_*.s4db
    CONDUIT = "conduit"  # <prefix>/data_NNNNNNNN.dat[.zst]


# Lower wins when two containers claim the same (day, shard) directory.
_PRIORITY = {Layout.DATAVISION: 0, Layout.DES_NESTED: 1, Layout.DES_FLAT: 2}


STORE_LAYOUTS = frozenset({Layout.DATAS3T2, Layout.S4DB, Layout.CONDUIT})
_STORE_FORMATS = {
    Layout.DATAS3T2: Format.DATAS3T2,
    Layout.S4DB: Format.S4DB,
    Layout.CONDUIT: Format.CONDUIT,
}


def _expected_format(layout: Layout) -> Format:
    if layout is Layout.DATAVISION:
        return Format.DESHEAD1
    return _STORE_FORMATS.get(layout, Format.DES2)


@dataclass(frozen=True, slots=True)
class ContainerName:
    """A listed key that names a container, and the directory it becomes in the mount."""

    key: str
    day: str  # YYYY-MM-DD
    shard: str  # the shard directory's name
    layout: Layout

    @property
    def path(self) -> str:
        """The shard directory relative to the mount root: "YYYY-MM-DD/<shard>"."""
        return f"{self.day}/{self.shard}"

    @property
    def format(self) -> Format:
        """The format the layout promises; the magic bytes have the final word."""
        return _expected_format(self.layout)

    @property
    def sidecar_key(self) -> str | None:
        """The DES `.meta` sidecar next to the container (des-formats §2.11)."""
        if self.layout is Layout.DATAVISION:
            return None
        return self.key[: -len(_SUFFIX)] + ".meta"


@dataclass(frozen=True, slots=True)
class Hidden:
    """A container left out of the mount because another one owns its directory."""

    key: str
    reason: str


def _calendar_day(match: re.Match[str] | None) -> str | None:
    if match is None:
        return None
    year, month, day = match.groups()
    try:
        date(int(year), int(month), int(day))
    except ValueError:
        return None
    return f"{year}-{month}-{day}"


def day_from_dir(prefix: str) -> tuple[str, Layout] | None:
    """A day directory prefix -> (day, layout).

    "2024-12-03/" -> ("2024-12-03", DATAVISION); "20241203/" -> ("2024-12-03", DES_NESTED).
    Anything that is not a real calendar day (`_bigFiles/`, `2024-02-30/`) -> None.
    """
    name = prefix[:-1] if prefix.endswith("/") else prefix
    day = _calendar_day(_DASHED_DAY.fullmatch(name))
    if day is not None:
        return day, Layout.DATAVISION
    day = _calendar_day(_COMPACT_DAY.fullmatch(name))
    if day is not None:
        return day, Layout.DES_NESTED
    return None


def flat_day_from_prefix(prefix: str) -> str | None:
    """A common prefix of a flat root listed with delimiter "_": "20241203_" -> "2024-12-03"."""
    match = _FLAT_DAY_PREFIX.fullmatch(prefix)
    return None if match is None else _calendar_day(_COMPACT_DAY.fullmatch(match.group(1)))


def day_prefix(layout: Layout, day: str) -> str:
    """The listing prefix of one day: "2024-12-03/", "20241203/" or "20241203_" (flat)."""
    if _calendar_day(_DASHED_DAY.fullmatch(day)) is None:
        raise NotFound(f"not a day: {day!r}")
    if layout is Layout.DATAVISION:
        return f"{day}/"
    compact = day.replace("-", "")
    return f"{compact}_" if layout is Layout.DES_FLAT else f"{compact}/"


def flat_day_prefix(day: str) -> str:
    """ "2024-12-03" -> "20241203_", the prefix of one day's LIST in a flat layout."""
    return day_prefix(Layout.DES_FLAT, day)


def _safe_part(part: str) -> bool:
    """One component of a key this module may hand to storage."""
    return part not in ("", ".", "..") and "\x00" not in part and "\\" not in part


def _safe_key(key: str) -> bool:
    return all(_safe_part(part) for part in key.split("/"))


def _safe_stem(stem: str) -> bool:
    """A shard directory name; dot-files are temporary files of writers, never containers."""
    if not _safe_part(stem) or stem.startswith(".") or "/" in stem:
        return False
    try:
        return len(stem.encode("utf-8")) <= NAME_MAX
    except UnicodeEncodeError:  # a local file name that is not UTF-8 (surrogate escapes)
        return False


def parse_flat_key(key: str) -> ContainerName | None:
    """ "20241203_A7_0000.des" -> day 2024-12-03, shard "A7_0000"; None for anything else."""
    match = _FLAT_KEY.fullmatch(key)
    if match is None:
        return None
    day = _calendar_day(_COMPACT_DAY.fullmatch(match.group(1)))
    if day is None:
        return None
    return ContainerName(key=key, day=day, shard=match.group(2), layout=Layout.DES_FLAT)


def parse_day_key(layout: Layout, prefix: str, key: str) -> ContainerName | None:
    """A key found by listing one day (`prefix` from `day_prefix`) -> its container name.

    Datavision and nested stems are taken leniently (any safe name): the conventional
    ones are lowercase hex or shard_NN (Datavision) and uppercase hex or HH_XXXX (nested),
    but the container's magic bytes, not its name, decide whether it is one.
    """
    if layout is Layout.DES_FLAT:
        name = parse_flat_key(key) if key.startswith(prefix) else None
        return name if name is not None and flat_day_prefix(name.day) == prefix else None
    found = day_from_dir(prefix)
    if found is None or found[1] is not layout or not prefix.endswith("/"):
        return None
    rest = key[len(prefix) :] if key.startswith(prefix) else ""
    if not rest.endswith(_SUFFIX):
        return None
    stem = rest[: -len(_SUFFIX)]
    if not _safe_stem(stem):
        return None
    return ContainerName(key=key, day=found[0], shard=stem, layout=layout)


def detect_layouts(objects: Iterable[str], prefixes: Iterable[str]) -> frozenset[Layout]:
    """The layouts present in a root listing made with delimiter "/" (des-formats §6)."""
    found: set[Layout] = set()
    for prefix in prefixes:
        day = day_from_dir(prefix) if prefix.endswith("/") else None
        if day is not None:
            found.add(day[1])
    if any(parse_flat_key(key) is not None for key in objects):
        found.add(Layout.DES_FLAT)
    return frozenset(found)


def merge_shards(
    names: Iterable[ContainerName],
) -> tuple[dict[str, ContainerName], list[Hidden]]:
    """Merge containers of all layouts by directory ("YYYY-MM-DD/<shard>").

    On a clash the winner is deterministic: Datavision, then nested, then flat, then the
    smallest key. The result is ordered by directory path.
    """
    owners: dict[str, ContainerName] = {}
    hidden: list[Hidden] = []
    for name in sorted(set(names), key=lambda n: (_PRIORITY[n.layout], n.key)):
        owner = owners.setdefault(name.path, name)
        if owner is not name:
            hidden.append(Hidden(name.key, f"directory {name.path} belongs to {owner.key}"))
    return {path: owners[path] for path in sorted(owners)}, hidden


def _bigfiles_dir(container_key: str, bigfiles: str) -> str | None:
    """`<container dir>/<bigfiles>`; None when the container's own key is unsafe."""
    if not _safe_key(bigfiles):
        raise UsageError(f"bigfiles prefix {bigfiles!r} is not a safe relative key")
    parent = container_key.rpartition("/")[0]
    if parent and not _safe_key(parent):
        return None
    return f"{parent}/{bigfiles}" if parent else bigfiles


def _hint_key(hint: str | None, bigfiles: str, source_prefix: str) -> str | None:
    """The writer's recorded key, made source-relative, if it is safe and under bigfiles."""
    if hint is None or not hint.startswith(source_prefix):
        return None
    key = hint[len(source_prefix) :]
    if not _safe_key(key) or f"/{bigfiles}/" not in f"/{key}":
        return None
    return key


def _plain_name(raw: bytes) -> str | None:
    """An entry name usable as one key component (the upstream writer's placement)."""
    try:
        name = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    # The same test as every other key component, backslash included.
    if not _safe_part(name) or "/" in name:
        return None
    return name


def external_key(
    container_key: str,
    entry: Entry,
    kind: Format | Layout,
    bigfiles: str = DEFAULT_BIGFILES,
    source_prefix: str = "",
) -> str | None:
    """The source-relative key of an entry's external payload; None means EIO.

    DESHEAD1: the meta's `external_key` (bucket-relative, so `source_prefix`, the mount's
    key prefix ending with "/", is stripped from it) when it is safe and lies under a
    bigfiles component; else `<container dir>/<bigfiles>/<name>` for a plain name.
    DES2: `<container dir>/<bigfiles>/<sha256>`, the hash being 64 lowercase hex digits.
    `kind` is the container's parsed format, or its layout standing for the format the
    layout promises.
    """
    fmt = _expected_format(kind) if isinstance(kind, Layout) else kind
    external = entry.external
    if external is None:
        return None
    base = _bigfiles_dir(container_key, bigfiles)
    if fmt is Format.DES2:
        sha = external.sha256
        valid = sha is not None and _SHA256.fullmatch(sha) is not None
        return f"{base}/{sha}" if base is not None and valid else None
    hinted = _hint_key(external.key_hint, bigfiles, source_prefix)
    if hinted is not None:
        return hinted
    name = _plain_name(entry.name)
    return f"{base}/{name}" if base is not None and name is not None else None
