"""DES zones: shard ranges spread over several buckets or endpoints, in DES's own format.

The upstream file, YAML or JSON, unchanged::

    n_bits: 8                      # default 8
    zones:
      - name: zone-a
        range: {start: 0, end: 127}
        s3: {bucket: archive-a, prefix: des/, region_name: eu-west-1, endpoint_url: ...}
      - name: zone-b
        range: {start: 128, end: 255}
        s3: {bucket: archive-b}

A shard belongs to the zone whose inclusive range holds its routing index. desfs checks
more than upstream does: ranges that overlap or leave `[0, 2**n_bits - 1]` are errors, and
so is a gap, unless the file says `allow_gaps: true` (upstream finds a gap only when a read
falls in it). Two keys are desfs's own and optional: `allow_gaps`, and `profile` in a zone's
`s3` (the AWS profile holding that zone's credentials). Every error names the zone.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

import yaml

from desfs.errors import UsageError
from desfs.settings.kinds import Invalid

ZONES_SOURCE = "@zones"  # SOURCE meaning "the zones of the config file"
ZONE_FILE_SUFFIXES = (".yaml", ".yml", ".json")
MIN_BITS, MAX_BITS = 4, 16  # DES routing's own bounds
MAX_ZONES = 1024  # each zone is a client and a connection pool of its own
_TOP = ("n_bits", "zones", "allow_gaps")
_FLAT_KEY = re.compile(r"[0-9]{8}_([0-9A-F]{1,4})_[0-9]{4,}\.(?:des|meta)", re.ASCII)
_DAY_KEY = re.compile(
    r"(?:[0-9]{8}|[0-9]{4}-[0-9]{2}-[0-9]{2})/([0-9A-Fa-f]{1,4})\.(?:des|meta)", re.ASCII
)
_ZONE = ("name", "range", "s3")
_S3 = ("bucket", "prefix", "region_name", "endpoint_url", "profile")


@dataclass(frozen=True, slots=True)
class Zone:
    name: str
    start: int  # inclusive
    end: int  # inclusive
    bucket: str
    prefix: str  # "" or ending with "/"
    region: str | None = None
    endpoint_url: str | None = None
    profile: str | None = None

    def holds(self, index: int) -> bool:
        return self.start <= index <= self.end


@dataclass(frozen=True, slots=True)
class Zones:
    n_bits: int
    zones: tuple[Zone, ...]  # ordered by range
    allow_gaps: bool = False

    def zone_of(self, index: int) -> Zone | None:
        for zone in self.zones:
            if zone.holds(index):
                return zone
        return None


def shard_index_of_key(key: str) -> int | None:
    """The routing index a container key (or its sidecar) carries: `<HEX>` of DES's
    `YYYYMMDD_<HEX>_<NNNN>.des` and `YYYYMMDD/<HEX>.des`, or a Datavision day's hex stem;
    None for any other key (external payloads, tombstones, strangers)."""
    found = _FLAT_KEY.fullmatch(key) or _DAY_KEY.fullmatch(key)
    return int(found.group(1), 16) if found is not None else None


class ZonesError(ValueError):
    """What is wrong with a zones description, as one sentence."""


def read_zones_file(path: Path) -> Zones:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"zones file {path}: cannot read it: {exc}") from None
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise UsageError(f"zones file {path}: not valid {path.suffix[1:].upper()}: {exc}") from None
    try:
        return parse_zones(data)
    except ZonesError as exc:
        raise UsageError(f"zones file {path}: {exc}") from None


def looks_like_zones_file(path: Path) -> bool:
    return path.suffix.lower() in ZONE_FILE_SUFFIXES


@dataclass(frozen=True, slots=True)
class ZonesKind:
    """The config's `zones:` key: the upstream description, as a mapping in the file, or as
    YAML text in DESFS_ZONES."""

    metavar: str = "ZONES"
    expected: str = "a DES zones description (n_bits, zones: [...])"

    def parse(self, value: object, text: bool) -> object:
        if value is None:
            return None
        if text and isinstance(value, str):
            try:
                value = yaml.safe_load(value)
            except yaml.YAMLError:
                raise Invalid("not valid YAML", self.expected) from None
        try:
            return parse_zones(value)
        except ZonesError as exc:
            raise Invalid(str(exc), self.expected, sentence=True) from None

    def show(self, value: object) -> str:
        if not isinstance(value, Zones):
            return "null"
        return ", ".join(f"{z.name} {z.start}..{z.end}" for z in value.zones)


def parse_zones(data: object) -> Zones:
    top = _mapping(data, "the zones description", _TOP)
    n_bits = _integer(top.get("n_bits", 8), "n_bits")
    if not MIN_BITS <= n_bits <= MAX_BITS:
        raise ZonesError(f"n_bits: {n_bits} is outside {MIN_BITS}..{MAX_BITS}")
    allow_gaps = top.get("allow_gaps", False)
    if not isinstance(allow_gaps, bool):
        raise ZonesError(f"allow_gaps: {allow_gaps!r} is not true or false")
    raw = top.get("zones")
    if not isinstance(raw, list) or not raw:
        raise ZonesError("expected a non-empty 'zones:' list")
    if len(raw) > MAX_ZONES:
        raise ZonesError(f"{len(raw)} zones; desfs takes at most {MAX_ZONES}")
    zones = [_zone(item, i, n_bits) for i, item in enumerate(raw)]
    _check_names(zones)
    ordered = tuple(sorted(zones, key=lambda z: z.start))
    _check_overlaps(ordered)
    if not allow_gaps:
        _check_gaps(ordered, n_bits)
    return Zones(n_bits, ordered, allow_gaps)


def _zone(item: object, position: int, n_bits: int) -> Zone:
    zone = _mapping(item, f"zone #{position + 1}", _ZONE)
    name = zone.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ZonesError(f"zone #{position + 1}: 'name' must be a non-empty text")
    where = f"zone {name!r}"
    bounds = _mapping(zone.get("range"), f"{where}: range", ("start", "end"))
    start = _integer(bounds.get("start"), f"{where}: range start")
    end = _integer(bounds.get("end"), f"{where}: range end")
    top = (1 << n_bits) - 1
    if not 0 <= start <= end <= top:
        raise ZonesError(
            f"{where}: range {start}..{end} is not inside 0..{top} (n_bits {n_bits}) with "
            "start <= end"
        )
    s3 = _mapping(zone.get("s3"), f"{where}: s3", _S3)
    bucket = s3.get("bucket")
    if not isinstance(bucket, str) or not bucket or "/" in bucket:
        raise ZonesError(f"{where}: s3.bucket must be a bucket name")
    prefix = _text(s3, "prefix", where) or ""
    if prefix and not prefix.endswith("/"):
        prefix += "/"  # as upstream: a prefix names a folder
    endpoint = _text(s3, "endpoint_url", where)
    if endpoint is not None and not endpoint.startswith(("http://", "https://")):
        raise ZonesError(f"{where}: s3.endpoint_url {endpoint!r} is not an http(s) URL")
    return Zone(
        name=name,
        start=start,
        end=end,
        bucket=bucket,
        prefix=prefix.lstrip("/"),
        region=_text(s3, "region_name", where),
        endpoint_url=endpoint,
        profile=_text(s3, "profile", where),
    )


def _check_names(zones: list[Zone]) -> None:
    seen: set[str] = set()
    for zone in zones:
        if zone.name in seen:
            raise ZonesError(f"zone {zone.name!r} is named twice")
        seen.add(zone.name)


def _check_overlaps(ordered: tuple[Zone, ...]) -> None:
    for before, after in pairwise(ordered):
        if after.start <= before.end:
            raise ZonesError(
                f"zone {after.name!r}: range {after.start}..{after.end} overlaps zone "
                f"{before.name!r} ({before.start}..{before.end})"
            )


def _check_gaps(ordered: tuple[Zone, ...], n_bits: int) -> None:
    expected = 0
    for zone in ordered:
        if zone.start > expected:
            raise ZonesError(_gap(expected, zone.start - 1, f"before zone {zone.name!r}"))
        expected = zone.end + 1
    top = (1 << n_bits) - 1
    if expected <= top:
        raise ZonesError(_gap(expected, top, f"after zone {ordered[-1].name!r}"))


def _gap(first: int, last: int, where: str) -> str:
    return (
        f"shard indices {first}..{last} ({where}) belong to no zone; give them to a zone, "
        "or write 'allow_gaps: true' if that is intended (their shards are then not shown)"
    )


def _mapping(value: object, what: str, known: tuple[str, ...]) -> Mapping[str, object]:
    if not isinstance(value, dict):
        raise ZonesError(f"{what}: expected a mapping")
    for key in value:
        if key not in known:
            raise ZonesError(f"{what}: unknown key {key!r}; expected one of {', '.join(known)}")
    return value


def _integer(value: object, what: str) -> int:
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        return int(value)  # upstream reads these with int()
    if isinstance(value, bool) or not isinstance(value, int):
        raise ZonesError(f"{what}: {value!r} is not an integer")
    return value


def _text(mapping: Mapping[str, object], key: str, where: str) -> str | None:
    value = mapping.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ZonesError(f"{where}: s3.{key} {value!r} is not text")
    return value
