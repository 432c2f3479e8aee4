"""The config file and the command line, merged into one typed, frozen `Settings`.

Precedence, key by key: command-line flags, then `-o` mount options, then `DESFS_*`
environment variables (containers and Kubernetes pods are configured that way), then the
config file, then the defaults of the settings dataclasses. Every value, whichever layer it
comes from, passes the same checks (`desfs.settings.keys`); the first bad one stops the
command before anything is opened or mounted, with one line naming the key as the user
wrote it, the value and what is expected.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from desfs.errors import UsageError
from desfs.settings.keys import BY_PATH, KEYS, SECRETS, SECTIONS, Key
from desfs.settings.kinds import Invalid, close_match, show_size
from desfs.settings.sections import (
    ArchiveSettings,
    CacheSettings,
    LayoutSettings,
    LoggingSettings,
    MetricsSettings,
    MountSettings,
    RoutingSettings,
    S3Settings,
    ServeSettings,
)
from desfs.settings.zones import ZONES_SOURCE, Zones

log = logging.getLogger(__name__)

CONFIG_SOURCE = "@config"  # SOURCE written this way means "the config file's source"
Origin = Literal["flag", "option", "env", "file"]
ENV_PREFIX = "DESFS_"
ENV_CONFIG = "DESFS_CONFIG"  # the config file, when no --config or -o config names one
ENV_OTHER = frozenset({ENV_CONFIG, "DESFS_DEBUG", "DESFS_FUZZ_EXAMPLES"})  # not settings


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything one command runs with."""

    source: str | None = None
    mountpoint: str | None = None
    zones: Zones | None = None  # the source, when it is DES zones (`source` is then @zones)
    layout: LayoutSettings = field(default_factory=LayoutSettings)
    s3: S3Settings = field(default_factory=S3Settings)
    cache: CacheSettings = field(default_factory=CacheSettings)
    mount: MountSettings = field(default_factory=MountSettings)
    logging: LoggingSettings = field(default_factory=LoggingSettings)
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    routing: RoutingSettings = field(default_factory=RoutingSettings)
    serve: ServeSettings = field(default_factory=ServeSettings)

    @property
    def archive(self) -> ArchiveSettings:
        return ArchiveSettings(cache=self.cache, layout=self.layout, routing=self.routing)

    @property
    def cache_dir(self) -> Path | None:
        """The persistent index cache directory (cache.cache_dir); None: no such cache."""
        return self.cache.cache_dir

    def log_level(self, command: str) -> str:
        return self.logging.level or ("info" if command == "mount" else "warning")


@dataclass(frozen=True, slots=True)
class Layer:
    """Values from one place, by dotted key, and how that place names a key in messages."""

    origin: Origin
    values: Mapping[str, object]
    file: Path | None = None

    def where(self, key: Key) -> str:
        if self.origin == "flag":
            return key.flag or key.path.upper()
        if self.origin == "option":
            return f"-o {key.option}"
        if self.origin == "env":
            return env_name(key)
        return f"config {self.file}: {key.path}"


def env_name(key: Key) -> str:
    """`cache.shared_url` -> DESFS_CACHE_SHARED_URL; section names hold no `_`."""
    return ENV_PREFIX + key.path.replace(".", "_").upper()


def environment_layer(environ: Mapping[str, str]) -> Layer:
    """The `DESFS_*` variables of `environ` as a layer. One that names no key is ignored
    with a warning (the environment is shared with other programs, so not an error)."""
    by_name = {env_name(key): key for key in KEYS}
    values: dict[str, object] = {}
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX) or name in ENV_OTHER:
            continue
        key = by_name.get(name)
        if key is None:
            guess = close_match(name, list(by_name))
            hint = f"; did you mean {guess}?" if guess else ""
            log.warning("environment: %s names no desfs setting; ignored%s", name, hint)
            continue
        values[key.path] = value
    return Layer("env", values)


def read_config(path: Path) -> Layer:
    """The config file as a layer; its structure and key names are checked here, its values
    when the layers are resolved."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"config {path}: cannot read it: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise UsageError(f"config {path}: not UTF-8 text") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise UsageError(f"config {path}: not valid YAML{_yaml_position(exc)}") from None
    values = _flatten(path, {} if data is None else data)
    _warn_exposed_secrets(path, values)
    return Layer("file", values, path)


def _yaml_position(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or "syntax error"
    if mark is None:
        return f": {problem}"
    return f" (line {mark.line + 1}, column {mark.column + 1}): {problem}"


def _flatten(path: Path, data: object) -> dict[str, object]:
    if not isinstance(data, dict):
        raise UsageError(f"config {path}: expected a mapping of keys at the top, got {_show(data)}")
    values: dict[str, object] = {}
    for name, value in data.items():
        if name in SECTIONS:
            if value is None:
                continue
            if not isinstance(value, dict):
                raise UsageError(
                    f"config {path}: {name}: {_show(value)} is not a section; expected a "
                    f"mapping of {name} keys"
                )
            for sub, item in value.items():
                values[_known(path, f"{name}.{sub}")] = item
        else:
            values[_known(path, str(name))] = value
    return values


def _known(path: Path, dotted: str) -> str:
    if dotted in BY_PATH:
        return dotted
    guess = suggest_key(dotted)
    hint = f"; did you mean {guess}?" if guess else ""
    raise UsageError(f"config {path}: {dotted}: unknown key{hint}")


def suggest_key(dotted: str) -> str | None:
    """The key most likely meant by a misspelled or misplaced `dotted`."""
    leaf = dotted.rsplit(".", 1)[-1]
    moved = [key.path for key in KEYS if key.name == leaf and key.path != dotted]
    if moved:
        return moved[0]
    # Written as the flag is named: cache.cache_size for --cache-size.
    by_flag = [key for key in KEYS if key.option in (leaf, leaf.replace("-", "_"))]
    if by_flag:
        return f"{by_flag[0].path} (the key of {by_flag[0].flag})"
    return close_match(dotted, [key.path for key in KEYS] + list(SECTIONS))


def _warn_exposed_secrets(path: Path, values: Mapping[str, object]) -> None:
    held = [name for name in SECRETS if values.get(name) is not None]
    if not held:
        return
    mode = os.stat(path).st_mode & 0o777
    if mode & 0o044:
        log.warning(
            "config %s holds %s and is readable by other users (mode %04o); run chmod 600 on "
            "it, or leave secrets out and let the environment or an AWS profile supply them",
            path,
            ", ".join(held),
            mode,
        )


def resolve(layers: Sequence[Layer], need: Sequence[str] = ("source",)) -> Settings:
    """Settings from `layers`, highest precedence first; `need` names top-level keys that
    must end up set (source, mountpoint)."""
    chosen: dict[str | None, dict[str, Any]] = {None: {}, **{name: {} for name in SECTIONS}}
    origin: dict[str, str] = {}
    for key in KEYS:
        for layer in layers:
            if key.path in layer.values:
                where = layer.where(key)
                text = layer.origin != "file"  # flags, options and variables are text
                value = parse_value(key, layer.values[key.path], where, text)
                chosen[key.section][key.name] = value
                origin[key.path] = where
                break
    top = chosen[None]
    if top.get("zones") is not None:
        if top.get("source") is None:
            top["source"] = ZONES_SOURCE
        elif origin.get("source", "").startswith("config"):
            raise UsageError(f"{origin['zones']}: the file also names a source; keep one")
    for name in need:
        if chosen[None].get(name) is None:
            raise UsageError(_missing(name, layers))
    settings = _build(chosen)
    _check_relations(settings, origin)
    return settings


def parse_value(key: Key, value: object, where: str, text: bool) -> Any:
    try:
        return key.kind.parse(value, text)
    except Invalid as bad:
        if bad.sentence:
            raise UsageError(f"{where}: {bad.problem}") from None
        hint = f"; did you mean {bad.hint!r}?" if bad.hint else ""
        shown = repr(value) if text else _show(value)
        if key.path in SECRETS or bad.concealed:  # a credential is never echoed
            shown, hint = "the value (not shown)", ""
        raise UsageError(
            f"{where}: {shown} is {bad.problem}; expected {bad.expected}{hint}"
        ) from None


def _show(value: object) -> str:
    """A YAML value as the user wrote it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return repr(value) if isinstance(value, str) else str(value)


def _missing(name: str, layers: Sequence[Layer]) -> str:
    files = [str(layer.file) for layer in layers if layer.file is not None]
    where = f"config {files[0]} has no '{name}:' key" if files else "no config file names one"
    return f"no {name} given: name {name.upper()} on the command line ({where})"


def _build(chosen: Mapping[str | None, dict[str, Any]]) -> Settings:
    top = chosen[None]
    return Settings(
        source=top.get("source"),
        mountpoint=top.get("mountpoint"),
        zones=top.get("zones"),
        layout=LayoutSettings(**chosen["layout"]),
        s3=S3Settings(**chosen["s3"]),
        cache=CacheSettings(**chosen["cache"]),
        mount=MountSettings(**chosen["mount"]),
        logging=LoggingSettings(**chosen["logging"]),
        metrics=MetricsSettings(**chosen["metrics"]),
        routing=RoutingSettings(**chosen["routing"]),
        serve=ServeSettings(**chosen["serve"]),
    )


def _check_relations(settings: Settings, origin: Mapping[str, str]) -> None:
    """Checks that involve two keys; the message names the first as it was given."""
    cache = settings.cache
    if cache.readahead_min > cache.readahead_max:
        where = origin.get("cache.readahead_min", "cache.readahead_min (default)")
        raise UsageError(
            f"{where}: {show_size(cache.readahead_min)} is out of range; expected at most "
            f"cache.readahead_max ({show_size(cache.readahead_max)})"
        )
    if cache.block_cache_bytes < 2 * cache.block_size:
        where = origin.get("cache.block_cache_bytes", "cache.block_cache_bytes (default)")
        raise UsageError(
            f"{where}: {show_size(cache.block_cache_bytes)} is out of range; expected at "
            f"least two blocks of cache.block_size ({show_size(2 * cache.block_size)})"
        )
