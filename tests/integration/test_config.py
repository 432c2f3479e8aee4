"""Configuration: every documented key parsed from the file, from its flag and from `-o`; the
precedence flags > -o > file > defaults, down to a real mount; each kind of mistake with its
one-line message and exit code 2, and nothing mounted."""

from __future__ import annotations

import dataclasses
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from desfs.archive.sources import sample_dir
from desfs.commands.main import build_parser
from desfs.errors import ExitCode, UsageError
from desfs.settings.flags import load_settings
from desfs.settings.keys import KEYS, SECRETS, Key
from desfs.settings.kinds import Flag
from desfs.settings.loader import Settings, read_config, resolve
from desfs.settings.zones import Zone, Zones
from tests.support.mounting import Mounted, needs_fuse

EXAMPLE = Path(__file__).resolve().parents[2] / "config.example.yaml"
KiB, MiB, GiB = 1024, 1024**2, 1024**3
SAMPLE = str(sample_dir())


def non_defaults(tmp_path: Path) -> dict[str, tuple[object, object]]:
    """Every key: (a YAML value other than its default, the typed value it must become)."""
    ca = tmp_path / "ca.pem"
    ca.write_text("not checked before use\n")
    cache = tmp_path / "index-cache"
    return {
        "source": ("s3://bucket/prefix", "s3://bucket/prefix"),
        "mountpoint": ("/mnt/elsewhere", "/mnt/elsewhere"),
        "zones": (ZONES_YAML, ZONES),
        "layout.layout": ("des-flat", "des-flat"),
        "layout.bigfiles_dir": ("_huge", "_huge"),
        "layout.sidecar_max_bytes": ("2MiB", 2 * MiB),
        "s3.endpoint_url": ("http://127.0.0.1:9000", "http://127.0.0.1:9000"),
        "s3.region": ("eu-west-3", "eu-west-3"),
        "s3.profile": ("archive", "archive"),
        "s3.access_key_id": ("AKIAEXAMPLE", "AKIAEXAMPLE"),
        "s3.secret_access_key": ("not-a-secret", "not-a-secret"),
        "s3.session_token": ("token", "token"),
        "s3.anonymous": (True, True),
        "s3.addressing_style": ("path", "path"),
        "s3.verify_tls": (False, False),
        "s3.ca_bundle": (str(ca), ca),
        "s3.connect_timeout": (2.5, 2.5),
        "s3.read_timeout": (30, 30.0),
        "s3.max_attempts": (3, 3),
        "s3.request_deadline": (12, 12.0),
        "routing.des_n_bits": (12, 12),
        "routing.datavision_shard_bits": (10, 10),
        "routing.max_parts": (3, 3),
        "serve.listen": ("127.0.0.1:9999", "127.0.0.1:9999"),
        "serve.max_clients": (8, 8),
        "serve.page_size": (50, 50),
        "serve.meta_header_max": ("1KiB", 1024),
        "s3.backoff_base": (0.5, 0.5),
        "s3.backoff_cap": (2, 2.0),
        "s3.max_connections": (32, 32),
        "cache.tail_window": ("128KiB", 128 * KiB),
        "cache.block_size": (65536, 64 * KiB),
        "cache.block_cache_bytes": ("1GiB", GiB),
        "cache.index_cache_bytes": ("64MiB", 64 * MiB),
        "cache.small_entry_bytes": ("512KiB", 512 * KiB),
        "cache.prefetch_cap": ("4MiB", 4 * MiB),
        "cache.readahead_min": ("2MiB", 2 * MiB),
        "cache.readahead_max": ("64MiB", 64 * MiB),
        "cache.prefetch_budget": ("200MiB", 200 * MiB),
        "cache.decoder_bytes": ("48MiB", 48 * MiB),
        "cache.listing_ttl": (15, 15.0),
        "cache.error_ttl": (5.5, 5.5),
        "cache.cache_dir": (str(cache), cache),
        "cache.index_store_bytes": ("2GiB", 2 * GiB),
        "cache.shared_url": ("rediss://cache.internal:6380/2", "rediss://cache.internal:6380/2"),
        "cache.shared_password": ("hunter2", "hunter2"),
        "cache.shared_timeout": (0.05, 0.05),
        "cache.shared_record_max": ("1MiB", MiB),
        "mount.uid": (1234, 1234),
        "mount.gid": (2345, 2345),
        "mount.umask": ("027", 0o027),
        "mount.allow_other": (True, True),
        "mount.allow_nonempty": (True, True),
        "mount.entry_ttl": (3600, 3600.0),
        "mount.attr_ttl": (600, 600.0),
        "mount.max_requests": (8, 8),
        "mount.max_inodes": (1000, 1000),
        "mount.shutdown_grace": (3, 3.0),
        "mount.read_ahead_kb": (0, 0),
        "mount.ready_file": (str(tmp_path / "ready"), tmp_path / "ready"),
        "logging.level": ("debug", "debug"),
        "logging.file": ("syslog", "syslog"),
        "metrics.enabled": (True, True),
        "metrics.address": ("::1", "::1"),
        "metrics.port": (9100, 9100),
    }


ZONES_YAML = {
    "n_bits": 4,
    "zones": [
        {"name": "low", "range": {"start": 0, "end": 7}, "s3": {"bucket": "b1", "prefix": "p"}},
        {"name": "high", "range": {"start": 8, "end": 15}, "s3": {"bucket": "b2"}},
    ],
}
ZONES = Zones(4, (Zone("low", 0, 7, "b1", "p/"), Zone("high", 8, 15, "b2", "")))


def nested(flat: dict[str, object]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for path, value in flat.items():
        section, _, name = path.rpartition(".")
        (out.setdefault(section, {}) if section else out)[name or path] = value
    return out


def write_config(path: Path, flat: dict[str, object], mode: int = 0o600) -> Path:
    path.write_text(yaml.safe_dump(nested(flat), sort_keys=False))
    path.chmod(mode)
    return path


def value_at(settings: Settings, path: str) -> object:
    value: object = settings
    for part in path.split("."):
        value = getattr(value, part)
    return value


def example_keys() -> set[str]:
    data = yaml.safe_load(EXAMPLE.read_text())
    keys = set()
    for name, value in data.items():
        if isinstance(value, dict):
            keys.update(f"{name}.{sub}" for sub in value)
        else:
            keys.add(name)
    return keys


def parse(*words: str) -> Settings:
    """The settings a real `desfs` command line resolves to (no source or mountpoint needed)."""
    args = build_parser().parse_args(list(words))
    return load_settings(args, need=())


# -- every key ---------------------------------------------------------------------------------


def test_example_documents_every_key_at_its_default(tmp_path: Path) -> None:
    assert example_keys() == {key.path for key in KEYS} == set(non_defaults(tmp_path))
    text = EXAMPLE.read_text()
    for key in KEYS:
        if key.flag:
            assert key.flag in text, f"config.example.yaml does not name {key.flag}"
    settings = resolve([read_config(EXAMPLE)])
    assert dataclasses.replace(settings, source=None, mountpoint=None) == Settings()


def test_every_key_is_parsed_from_the_file(tmp_path: Path) -> None:
    table = non_defaults(tmp_path)
    # A file names its source or its zones, not both: zones get a file of their own.
    zones = write_config(tmp_path / "zones.yaml", {"zones": table.pop("zones")[0]})
    assert resolve([read_config(zones)]).zones == ZONES
    assert resolve([read_config(zones)]).source == "@zones"
    config = write_config(tmp_path / "all.yaml", {k: v[0] for k, v in table.items()})
    settings = resolve([read_config(config)])
    for path, (_, expected) in table.items():
        assert value_at(settings, path) == expected, path
        assert expected != BY_DEFAULT.get(path), f"{path}: the test value is the default"


BY_DEFAULT = {key.path: key.default for key in KEYS}


def _flag_words(key: Key, value: object) -> list[str]:
    assert key.flag is not None
    if key.const is not None or isinstance(key.kind, Flag):
        return [key.flag]
    return [key.flag, str(value)]


@pytest.mark.parametrize("key", [k for k in KEYS if k.flag], ids=lambda k: k.path)
def test_every_flag_and_option_sets_its_key(key: Key, tmp_path: Path) -> None:
    yaml_value, expected = non_defaults(tmp_path)[key.path]
    words = _flag_words(key, yaml_value)
    if key.scope == "serve":
        # desfs serve's own flags; a mount takes no -o for them.
        assert value_at(parse("serve", *words, "SRC"), key.path) == expected
        return
    if key.scope == "global":
        settings = parse(*words, "mount", "SRC", "MNT")
    else:
        settings = parse("mount", *words, "SRC", "MNT")
    assert value_at(settings, key.path) == expected
    option = key.option if len(words) == 1 else f"{key.option}={yaml_value}"
    assert value_at(parse("mount", "-o", f"ro,{option}", "SRC", "MNT"), key.path) == expected


def test_secrets_have_no_flag_and_no_option() -> None:
    for key in KEYS:
        assert (key.path in SECRETS) == (key.flag is None and key.section is not None), key.path


# -- precedence --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        (["--config", "{F}", "-o", "listing_ttl=20", "--listing-ttl", "30"], 30.0),
        (["--config", "{F}", "-o", "listing_ttl=20"], 20.0),
        (["-o", "config={F},listing_ttl=20"], 20.0),
        (["--config", "{F}"], 10.0),
        (["-o", "config={F}"], 10.0),
        ([], 60.0),
    ],
    ids=["flag", "option", "option-with-config-option", "file", "file-by-option", "default"],
)
def test_flags_over_options_over_file_over_defaults(
    tmp_path: Path, words: list[str], expected: float
) -> None:
    config = write_config(tmp_path / "c.yaml", {"cache.listing_ttl": 10, "cache.error_ttl": 7})
    words = [w.replace("{F}", str(config)) for w in words]
    settings = parse("mount", *words, "SRC", "MNT")
    assert settings.cache.listing_ttl == expected
    # A key only the file sets survives the layers above it.
    assert settings.cache.error_ttl == (7.0 if str(config) in " ".join(words) else 30.0)


def test_config_flag_wins_over_config_option(tmp_path: Path) -> None:
    flag = write_config(tmp_path / "flag.yaml", {"cache.listing_ttl": 1})
    option = write_config(tmp_path / "option.yaml", {"cache.listing_ttl": 2})
    settings = parse("mount", "--config", str(flag), "-o", f"config={option}", "SRC", "MNT")
    assert settings.cache.listing_ttl == 1.0


def test_positionals_over_the_file(tmp_path: Path) -> None:
    config = write_config(tmp_path / "c.yaml", {"source": "/from/file", "mountpoint": "/mnt/f"})
    both = parse("mount", "--config", str(config))
    assert (both.source, both.mountpoint) == ("/from/file", "/mnt/f")
    one = parse("mount", "--config", str(config), "/mnt/cli")
    assert (one.source, one.mountpoint) == ("/from/file", "/mnt/cli")
    named = parse("mount", "--config", str(config), "@config", "/mnt/cli")
    assert (named.source, named.mountpoint) == ("/from/file", "/mnt/cli")
    two = parse("mount", "--config", str(config), "/src/cli", "/mnt/cli")
    assert (two.source, two.mountpoint) == ("/src/cli", "/mnt/cli")


@needs_fuse()
def test_a_mount_applies_flag_option_and_file_together(tmp_path: Path) -> None:
    config = write_config(
        tmp_path / "mount.yaml",
        {"source": SAMPLE, "mount.uid": 1111, "mount.gid": 1111, "mount.umask": "027"},
    )
    args = ["--config", str(config), "-o", "uid=2222,gid=2222", "--gid", "3333"]
    with Mounted("@config", tmp_path / "mnt", tmp_path / "daemon.log", args) as mount:
        root = os.stat(mount.path)
        assert (root.st_uid, root.st_gid) == (2222, 3333)  # -o over file, flag over -o
        assert stat.S_IMODE(root.st_mode) == 0o550  # umask from the file
        assert sorted(os.listdir(mount.path)) == ["2024-12-03", "2024-12-04"]


# -- mistakes ----------------------------------------------------------------------------------


def desfs(*words: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "desfs", *words],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def daemons_of(mnt: Path) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                words = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if str(mnt).encode() in words and b"desfs" in b" ".join(words):
                found.append(int(entry.name))
    return found


MISTAKES = {
    "unknown-key": (
        {"cache": {"tail_windw": "1MiB"}},
        "cache.tail_windw: unknown key; did you mean cache.tail_window?",
    ),
    "key-in-wrong-section": (
        {"s3": {"listing_ttl": 5}},
        "s3.listing_ttl: unknown key; did you mean cache.listing_ttl?",
    ),
    "unknown-section": ({"cahce": {"listing_ttl": 5}}, "cahce: unknown key; did you mean cache?"),
    "key-named-after-its-flag": (
        {"cache": {"cache_size": "1GiB"}},
        "cache.cache_size: unknown key; did you mean cache.block_cache_bytes "
        "(the key of --cache-size)?",
    ),
    "wrong-type-integer": (
        {"s3": {"max_attempts": "five"}},
        "s3.max_attempts: 'five' is not a valid integer; expected an integer from 1 to 100",
    ),
    "wrong-type-boolean": (
        {"mount": {"allow_other": 1}},
        "mount.allow_other: 1 is not a valid boolean; expected true or false",
    ),
    "wrong-type-size": (
        {"cache": {"tail_window": 1.5}},
        "cache.tail_window: 1.5 is not a valid size; expected a size from 4KiB to 64MiB",
    ),
    "unquoted-umask": (
        {"mount": {"umask": 18}},
        "mount.umask: 18 is not a valid umask; expected octal digits from 000 to 777",
    ),
    "section-not-a-mapping": ({"cache": 5}, "cache: 5 is not a section; expected a mapping"),
    "out-of-range-size": (
        {"cache": {"tail_window": "1KiB"}},
        "cache.tail_window: '1KiB' is out of range; expected a size from 4KiB to 64MiB",
    ),
    "metrics-off-the-host": (
        {"metrics": {"address": "0.0.0.0"}},
        "metrics.address: '0.0.0.0' is not a valid choice; expected one of 127.0.0.1, ::1, "
        "localhost",
    ),
    "out-of-range-port": (
        {"metrics": {"port": 70000}},
        "metrics.port: 70000 is out of range; expected an integer from 1 to 65535",
    ),
    "out-of-range-timeout": (
        {"s3": {"read_timeout": 0}},
        "s3.read_timeout: 0 is out of range; expected a number of seconds greater than 0",
    ),
    "out-of-range-pair": (
        {"cache": {"readahead_min": "64MiB"}},
        "cache.readahead_min: 64MiB is out of range; expected at most cache.readahead_max (32MiB)",
    ),
    "bad-choice": (
        {"layout": {"layout": "des_flat"}},
        "layout.layout: 'des_flat' is not a valid choice; expected one of auto, datavision, "
        "des-flat, des-nested, datas3t2, s4db, conduit; did you mean 'des-flat'?",
    ),
    "missing-source": ({"mount": {"uid": 0}}, "no source given: name SOURCE on the command line"),
}


# Both modes check the settings in the same code before anything else; two cases show it.
RUNS = [(case, "daemon") for case in MISTAKES] + [
    ("unknown-key", "foreground"),
    ("missing-source", "foreground"),
]


@pytest.mark.parametrize(("case", "mode"), RUNS, ids=[f"{c}-{m}" for c, m in RUNS])
def test_a_config_mistake_is_one_line_exit_2_and_no_mount(
    tmp_path: Path, case: str, mode: str
) -> None:
    data, message = MISTAKES[case]
    config = tmp_path / "bad.yaml"
    source = {} if case == "missing-source" else {"source": SAMPLE}
    config.write_text(yaml.safe_dump({**source, **data}))
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    extra = ["--foreground"] if mode == "foreground" else []
    done = desfs("mount", "--config", str(config), str(mnt), *extra)
    assert done.returncode == ExitCode.USAGE == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"desfs: config {config}: ") or case == "missing-source"
    assert message in lines[0], lines[0]
    assert not os.path.ismount(mnt)
    assert list(mnt.iterdir()) == []
    assert daemons_of(mnt) == []


CLI_MISTAKES = {
    "option": (
        ["-o", "tail_windw=1MiB"],
        "-o tail_windw=1MiB: unknown mount option; did you mean tail_window?",
    ),
    "option-value": (["-o", "uid=abc"], "-o uid: 'abc' is not a valid integer; expected"),
    "flag": (["--tail-window", "lots"], "--tail-window: 'lots' is not a valid size; expected"),
    "no-file": (["--config", "{T}/absent.yaml"], "config {T}/absent.yaml: cannot read it: No"),
    "no-file-by-option": (["-o", "config={T}/absent.yaml"], "config {T}/absent.yaml: cannot"),
    "yaml": (["--config", "{T}/broken.yaml"], "config {T}/broken.yaml: not valid YAML (line 3,"),
    "not-mapping": (["--config", "{T}/list.yaml"], "config {T}/list.yaml: expected a mapping"),
}


@pytest.mark.parametrize("case", CLI_MISTAKES)
def test_command_line_mistakes(tmp_path: Path, case: str) -> None:
    words, message = CLI_MISTAKES[case]
    (tmp_path / "broken.yaml").write_text("cache:\n  listing_ttl: [1\n")
    (tmp_path / "list.yaml").write_text("- source\n")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    words = [w.replace("{T}", str(tmp_path)) for w in words]
    done = desfs("mount", *words, SAMPLE, str(mnt))
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert message.replace("{T}", str(tmp_path)) in lines[0], lines[0]
    assert not os.path.ismount(mnt)
    assert daemons_of(mnt) == []


def test_resolve_raises_the_desfs_error_type(tmp_path: Path) -> None:
    config = write_config(tmp_path / "c.yaml", {"cache.block_size": "huge"})
    with pytest.raises(UsageError, match=r"cache\.block_size: 'huge' is not a valid size"):
        resolve([read_config(config)])


# -- offline commands and secrets --------------------------------------------------------------


def test_offline_commands_take_the_source_from_the_file(tmp_path: Path) -> None:
    config = write_config(tmp_path / "c.yaml", {"source": SAMPLE, "layout.layout": "auto"})
    listed = desfs("ls", "--config", str(config), "@config", "/")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.split() == ["2024-12-03/", "2024-12-04/"]
    verified = desfs("verify", "--config", str(config))
    assert verified.returncode == 0, verified.stderr
    missing = desfs("verify")
    assert missing.returncode == 2
    assert "no source given" in missing.stderr


@pytest.mark.parametrize(("mode", "warned"), [(0o644, True), (0o640, True), (0o600, False)])
def test_secrets_in_a_readable_file_draw_a_warning(tmp_path: Path, mode: int, warned: bool) -> None:
    secrets = {"s3.access_key_id": "AKIAEXAMPLE", "s3.secret_access_key": "not-a-secret"}
    config = write_config(tmp_path / "c.yaml", {"source": SAMPLE, **secrets}, mode)
    done = desfs("ls", "--config", str(config), "@config")
    assert done.returncode == 0, done.stderr
    warning = "s3.access_key_id, s3.secret_access_key and is readable by other users"
    assert (warning in done.stderr) == warned, done.stderr
    assert "not-a-secret" not in done.stderr


# -- the environment (containers, Kubernetes) ----------------------------------------------------


def _env_name(path: str) -> str:
    return "DESFS_" + path.replace(".", "_").upper()


def test_every_key_is_read_from_its_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    table = non_defaults(tmp_path)
    for path, (yaml_value, _) in table.items():
        text = str(yaml_value).lower() if isinstance(yaml_value, bool) else str(yaml_value)
        monkeypatch.setenv(_env_name(path), text)
    settings = parse("mount")
    for path, (_, expected) in table.items():
        assert value_at(settings, path) == expected, path


@pytest.mark.parametrize(
    ("words", "env", "expected"),
    [
        (["--listing-ttl", "30"], {"DESFS_CACHE_LISTING_TTL": "40"}, 30.0),
        (["-o", "listing_ttl=20"], {"DESFS_CACHE_LISTING_TTL": "40"}, 20.0),
        (["--config", "{F}"], {"DESFS_CACHE_LISTING_TTL": "40"}, 40.0),
        ([], {"DESFS_CONFIG": "{F}"}, 10.0),
        ([], {"DESFS_CONFIG": "{F}", "DESFS_CACHE_LISTING_TTL": "40"}, 40.0),
    ],
    ids=["flag-over-env", "option-over-env", "env-over-file", "file-by-env", "env-and-its-file"],
)
def test_environment_sits_between_options_and_file(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    words: list[str],
    env: dict[str, str],
    expected: float,
) -> None:
    config = write_config(tmp_path / "c.yaml", {"cache.listing_ttl": 10, "cache.error_ttl": 7})
    for name, value in env.items():
        monkeypatch.setenv(name, value.replace("{F}", str(config)))
    settings = parse("mount", *[w.replace("{F}", str(config)) for w in words], "SRC", "MNT")
    assert settings.cache.listing_ttl == expected
    # A key only the file sets survives the layers above it, when a file is named at all.
    file_named = "{F}" in " ".join([*words, *env.values()])
    assert settings.cache.error_ttl == (7.0 if file_named else 30.0)


def test_environment_mistakes_name_the_variable(tmp_path: Path) -> None:
    env = {**os.environ, "DESFS_CACHE_BLOCK_SIZE": "huge"}
    done = subprocess.run(
        [sys.executable, "-m", "desfs", "ls", SAMPLE], capture_output=True, text=True,
        timeout=60, env=env,
    )  # fmt: skip
    assert done.returncode == 2
    assert "DESFS_CACHE_BLOCK_SIZE: 'huge' is not a valid size" in done.stderr
    env = {**os.environ, "DESFS_CACHE_LISTNG_TTL": "5", "DESFS_CACHE_SHARED_PASSWORD": "x"}
    done = subprocess.run(
        [sys.executable, "-m", "desfs", "ls", SAMPLE], capture_output=True, text=True,
        timeout=60, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    [warning] = done.stderr.strip().splitlines()
    assert "DESFS_CACHE_LISTNG_TTL names no desfs setting; ignored" in warning
    assert "did you mean DESFS_CACHE_LISTING_TTL?" in warning
