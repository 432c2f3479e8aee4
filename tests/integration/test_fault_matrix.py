"""Every store fault through a real mount over S3, with `cat`, `cp` and `ls`.

A fault-injecting proxy (`tests.support.s3proxy`) sits between the daemon and the moto
server. For each fault, on one mount:

* transient (fewer faulty replies than `--max-attempts`): every tool gets the correct bytes
  or names, after retries;
* lasting: every tool fails with EIO (ESTALE for 412) within a timeout derived from the
  mount's settings, and no tool reports wrong or short bytes as success;
* meanwhile the daemon keeps serving other paths: a bystander shard's cached file and
  listing, and (when the fault is confined to some objects) a new read from it;
* when the fault clears, the very same paths work again, without a remount.

Faults are aimed at the objects a probe reads (`path=` of the proxy's fault queue), and
every probe reads something nothing has read before, so it costs exactly the requests the
test means to fault: a small file (one range GET), a large file (block reads), a shard
not opened yet (the suffix GET of its container) and a day not listed yet (a LIST).
"""

from __future__ import annotations

import errno
import os
import random
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from desfs.settings.sections import S3Settings
from tests.support.builders import build_deshead1
from tests.support.moto_server import MotoServer
from tests.support.mounting import Mounted, needs_fuse
from tests.support.s3proxy import S3Proxy

pytestmark = [needs_fuse(), pytest.mark.s3]

MiB = 1024 * 1024
BUCKET = "faultmatrix"
DAY = "2024-12-03"
SPARE_DAYS = ("2024-12-04", "2024-12-05", "2024-12-06")  # one LIST probe each
SHARDS = tuple(f"s{i:02d}" for i in range(6))
PROBED, BYSTANDER = SHARDS[0], SHARDS[1]  # loaded at warm-up; the rest are opened by probes
FILES_PER_SHARD = 24
BIG = "big.bin"
BIG_SIZE = 3 * MiB

READ_TIMEOUT = 1.0
MAX_ATTEMPTS = 3
SETTINGS = S3Settings(
    connect_timeout=1.0,
    read_timeout=READ_TIMEOUT,
    max_attempts=MAX_ATTEMPTS,
    backoff_base=0.05,
    backoff_cap=0.2,
)
MOUNT_ARGS = [
    f"--connect-timeout={SETTINGS.connect_timeout}",
    f"--read-timeout={SETTINGS.read_timeout}",
    f"--max-attempts={SETTINGS.max_attempts}",
    f"--backoff-base={SETTINGS.backoff_base}",
    f"--backoff-cap={SETTINGS.backoff_cap}",
    # A small file must cost a GET of its own: no tail read holding it, no GET widened to
    # its neighbours, and no listing expiring in the middle of a test.
    "--tail-window=4KiB",
    "--prefetch-cap=0",
    "--listing-ttl=3600",
]
# A tool may wait on a few storage calls in a row (a container open takes up to two
# rounds; the kernel reads a page again after a failed readahead), each bounded by
# `worst_case_seconds`; beyond this, the mount hangs.
STORAGE_CALLS_PER_TOOL = 4
TOOL_TIMEOUT = STORAGE_CALLS_PER_TOOL * SETTINGS.worst_case_seconds + 10.0
STALL = READ_TIMEOUT + 1.5  # longer than the read timeout: the client must give up
LASTING = 1000  # more faulty replies than any probe can consume


# -- the source -------------------------------------------------------------------------


@dataclass(frozen=True)
class Source:
    shards: dict[str, dict[str, bytes]]  # shard -> name -> bytes, in container order


def _shard_files(rng: random.Random, shard: str) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    if shard == PROBED:
        files[BIG] = rng.randbytes(BIG_SIZE)
    for i in range(FILES_PER_SHARD):
        files[f"{shard}-f{i:02d}.bin"] = rng.randbytes(rng.randint(6000, 20000))
    return files


def _upload(client: Any, key: str, files: dict[str, bytes]) -> None:
    body = build_deshead1([(name, data, None) for name, data in files.items()])
    client.put_object(Bucket=BUCKET, Key=key, Body=body)


@pytest.fixture(scope="module")
def source(s3_client: Any) -> Source:
    rng = random.Random(2024)
    s3_client.create_bucket(Bucket=BUCKET)
    shards = {shard: _shard_files(rng, shard) for shard in SHARDS}
    for shard, files in shards.items():
        _upload(s3_client, f"{DAY}/{shard}.des", files)
    spare = _shard_files(rng, "spare")
    for day in SPARE_DAYS:
        _upload(s3_client, f"{day}/s00.des", spare)
    return Source(shards)


@pytest.fixture(scope="module")
def proxy(moto_server: MotoServer) -> Iterator[S3Proxy]:
    with S3Proxy(moto_server.port) as running:
        yield running


# -- one mount and its probes -----------------------------------------------------------


@dataclass
class World:
    """One mount, warmed up: the probed and the bystander shard loaded, a file of each
    cached; the rest of the source untouched."""

    mount: Mounted
    proxy: S3Proxy
    source: Source
    scratch: Path
    fresh: dict[str, list[str]] = field(default_factory=dict)  # shard -> unread small files
    fresh_shards: list[str] = field(default_factory=list)  # not opened yet
    fresh_days: list[str] = field(default_factory=list)  # not listed yet
    big_read: bool = False

    def path(self, shard: str, name: str = "") -> Path:
        return self.mount.path / DAY / shard / name

    def take_file(self, shard: str = PROBED) -> str:
        return self.fresh[shard].pop(0)


@dataclass(frozen=True)
class Probe:
    """One tool on one path, the object its requests go to, and its right answer."""

    command: list[str]
    target: str  # a substring of the path (and query) of every request it makes
    expected: bytes  # stdout of cat and ls; the copy's bytes for cp
    copy: Path | None = None

    def start(self) -> subprocess.Popen[bytes]:
        return subprocess.Popen(self.command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _object(shard: str) -> str:
    return f"/{DAY}/{shard}.des"


def _cat(world: World, shard: str, name: str) -> Probe:
    expected = world.source.shards[shard][name]
    return Probe(["cat", str(world.path(shard, name))], _object(shard), expected)


def _cp(world: World, name: str) -> Probe:
    copy = world.scratch / f"copy-{name}"
    copy.unlink(missing_ok=True)
    command = ["cp", str(world.path(PROBED, name)), str(copy)]
    return Probe(command, _object(PROBED), world.source.shards[PROBED][name], copy)


def _ls_shard(world: World, shard: str) -> Probe:
    names = "".join(f"{name}\n" for name in sorted(world.source.shards[shard]))
    return Probe(["ls", str(world.path(shard))], _object(shard), names.encode())


def _ls_day(world: World, day: str) -> Probe:
    return Probe(["ls", str(world.mount.path / day)], f"prefix={day}", b"s00\n")


def _probes(world: World) -> list[Probe]:
    """cat and cp of fresh files, ls of a fresh shard and of a fresh day."""
    return [
        _cat(world, PROBED, world.take_file()),
        _cp(world, world.take_file()),
        _ls_shard(world, world.fresh_shards.pop(0)),
        _ls_day(world, world.fresh_days.pop(0)),
    ]


@dataclass(frozen=True)
class Outcome:
    probe: Probe
    code: int
    stdout: bytes
    stderr: bytes

    def got(self) -> bytes:
        if self.probe.copy is not None:
            return self.probe.copy.read_bytes() if self.probe.copy.exists() else b""
        return self.stdout

    def assert_correct(self) -> None:
        assert self.code == 0, f"{self.probe.command}: {self.stderr.decode()}"
        assert self.got() == self.probe.expected, f"{self.probe.command}: wrong bytes"

    def assert_failed(self, code: int) -> None:
        """Failed with `code`; what it printed is at most the start of the truth."""
        assert self.code != 0, f"{self.probe.command} reported success under a lasting fault"
        assert os.strerror(code).encode() in self.stderr, self.stderr.decode()
        if self.probe.command[0] == "cat":
            assert self.probe.expected.startswith(self.stdout), "cat printed wrong bytes"


def _finish(probe: Probe, proc: subprocess.Popen[bytes]) -> Outcome:
    try:
        out, err = proc.communicate(timeout=TOOL_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        message = f"{probe.command} hung: still running after {TOOL_TIMEOUT:.0f}s"
        raise AssertionError(message) from None
    return Outcome(probe, proc.returncode, out, err)


def _run(probe: Probe) -> Outcome:
    return _finish(probe, probe.start())


def _bystander_served(world: World, store_reachable: bool) -> None:
    """Another shard keeps working: its cached file and listing need no request, and
    when the fault is confined to other objects, a new read goes through as well."""
    _run(_cat(world, BYSTANDER, f"{BYSTANDER}-f00.bin")).assert_correct()
    _run(_ls_shard(world, BYSTANDER)).assert_correct()
    if store_reachable:
        _run(_cat(world, BYSTANDER, world.take_file(BYSTANDER))).assert_correct()


@pytest.fixture
def world(
    source: Source, proxy: S3Proxy, moto_server: MotoServer, tmp_path: Path
) -> Iterator[World]:
    proxy.clear_faults()
    if not proxy.running:  # a failed refused-connection test may have left it stopped
        proxy.start()
    env = {**moto_server.env(), "AWS_ENDPOINT_URL": proxy.url}
    mount = Mounted(f"s3://{BUCKET}", tmp_path / "mnt", tmp_path / "daemon.log", MOUNT_ARGS, env)
    (tmp_path / "scratch").mkdir()
    with mount:
        found = World(mount, proxy, source, tmp_path / "scratch")
        assert sorted(os.listdir(mount.path)) == sorted([DAY, *SPARE_DAYS])
        assert sorted(os.listdir(mount.path / DAY)) == list(SHARDS)
        for shard in (PROBED, BYSTANDER):
            names = [name for name in source.shards[shard] if name != BIG]
            _run(_cat(found, shard, names[0])).assert_correct()
            # The last few files may sit in the bytes of the tail read: never probed.
            found.fresh[shard] = names[1:-3]
        found.fresh_shards = [s for s in SHARDS if s not in (PROBED, BYSTANDER)]
        found.fresh_days = list(SPARE_DAYS)
        yield found
        assert "Traceback" not in mount.log(), mount.log()
    proxy.clear_faults()


# -- the phases -------------------------------------------------------------------------

Inject = Callable[[S3Proxy, int, str], None]  # (proxy, how many replies, target)


def _transient(world: World, inject: Inject) -> None:
    """Fewer faulty replies than attempts: every tool gets the right answer."""
    probes = _probes(world)
    if not world.big_read:
        world.big_read = True
        probes.append(_cat(world, PROBED, BIG))
    for probe in probes:
        inject(world.proxy, MAX_ATTEMPTS - 1, probe.target)
        _run(probe).assert_correct()
        assert world.proxy.pending_faults() == 0, f"{probe.command} never met the fault"


def _lasting(
    world: World,
    begin: Callable[[list[Probe]], None],
    end: Callable[[], None],
    code: int,
    confined: bool,
    slow: bool,
) -> None:
    """A fault that lasts: every tool fails within its budget while other paths keep
    working, and the same paths work again once the fault is gone.

    `confined`: the fault hits only the probes' objects, so the bystander may send
    requests. `slow`: each failing attempt waits out the read timeout, so the probes are
    still waiting (MAX_ATTEMPTS x READ_TIMEOUT at least) when the bystander is served."""
    probes = _probes(world)
    begin(probes)
    try:
        running = [(probe, probe.start()) for probe in probes]
        _bystander_served(world, store_reachable=confined)
        if slow:
            assert any(proc.poll() is None for _, proc in running), "the faults never held"
        for probe, proc in running:
            _finish(probe, proc).assert_failed(code)
        _bystander_served(world, store_reachable=confined)
    finally:
        end()
    for probe in probes:
        _run(probe).assert_correct()


def _course(world: World, inject: Inject, slow: bool) -> None:
    """The transient and the lasting phase of a fault queued in the proxy."""
    _transient(world, inject)

    def begin(probes: list[Probe]) -> None:
        for probe in probes:
            inject(world.proxy, LASTING, probe.target)

    _lasting(world, begin, world.proxy.clear_faults, errno.EIO, confined=True, slow=slow)


QUEUED: dict[str, tuple[Inject, bool]] = {
    "stall_before_headers": (lambda proxy, n, at: proxy.stall_next(n, STALL, at), True),
    "stall_mid_body": (lambda proxy, n, at: proxy.stall_body_next(n, STALL, at), True),
    "reset": (lambda proxy, n, at: proxy.reset_next(n, at), False),
    "http_500": (lambda proxy, n, at: proxy.fail_next(n, 500, "InternalError", at), False),
    "http_503_slowdown": (lambda proxy, n, at: proxy.fail_next(n, 503, "SlowDown", at), False),
    "truncated_body": (lambda proxy, n, at: proxy.truncate_next(n, at), False),
}


@pytest.mark.parametrize("fault", QUEUED)
def test_queued_fault(world: World, fault: str) -> None:
    inject, slow = QUEUED[fault]
    _course(world, inject, slow)


def test_connection_refused(world: World) -> None:
    """The endpoint is gone (every connection refused) until it comes back; there is no
    transient phase, and no request of anyone's can succeed meanwhile."""
    proxy = world.proxy

    def back() -> None:
        proxy.start()

    _lasting(world, lambda _: proxy.stop(), back, errno.EIO, confined=False, slow=False)


def test_latency(world: World) -> None:
    """Every reply delayed: within the read timeout it is only slower; beyond it, EIO."""
    proxy = world.proxy

    def slow_replies(proxy: S3Proxy, count: int, target: str) -> None:
        proxy.latency = READ_TIMEOUT / 2

    _transient(world, slow_replies)

    def too_slow(probes: list[Probe]) -> None:
        proxy.latency = READ_TIMEOUT + 1.0

    def fast_again() -> None:
        proxy.latency = 0.0

    _lasting(world, too_slow, fast_again, errno.EIO, confined=False, slow=True)


def test_precondition_failed_412(world: World) -> None:
    """412 (the object is no longer the one opened) is never retried by desfs: ESTALE, the
    container is dropped and reloaded, and the next read gets the right bytes."""
    proxy = world.proxy
    once = _cat(world, PROBED, world.take_file())
    proxy.fail_next(1, 412, "PreconditionFailed", once.target)
    first = _run(once)
    # The kernel reads a page again after a failed readahead, so one 412 may be absorbed.
    if first.code == 0:
        first.assert_correct()
    else:
        first.assert_failed(errno.ESTALE)
    _run(once).assert_correct()

    def begin(probes: list[Probe]) -> None:
        for probe in probes:
            proxy.fail_next(LASTING, 412, "PreconditionFailed", probe.target)

    _lasting(world, begin, proxy.clear_faults, errno.ESTALE, confined=True, slow=False)
    refused = [line for line in world.mount.log().splitlines() if "HTTP 412" in line]
    assert refused and not any("attempts" in line for line in refused), refused
    assert "changed since it was opened" in world.mount.log()
