"""Security of a real mount: who may enter it, that no credential ever shows, and that
attribute values stay bounded.

Writes are covered by test_lifecycle.py (every write syscall gives EROFS). Here: other
users are kept out unless `--allow-other` lets them read (never write); a recognisable fake
secret key and session token, given both in the environment and in a config file, appear
in no log line, command output, process listing, xattr or error at log level debug; and an
entry's oversized metadata gives E2BIG on getxattr instead of a huge reply.
"""

from __future__ import annotations

import errno
import json
import os
import pwd
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from desfs.errors import ExitCode
from desfs.format.model import Codec
from tests.support.builders import Meta, build_des2, build_deshead1
from tests.support.moto_server import MotoServer
from tests.support.mounting import Mounted, needs_fuse

pytestmark = needs_fuse()

DAY = "2024-12-03"
FILES = {"hello.txt": b"hello desfs\n", "sub/inner.txt": b"inner bytes\n" * 10}
TIMEOUT = 30.0


def run(*command: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(command, capture_output=True, timeout=TIMEOUT, check=False, env=env)


def desfs(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
    return run(sys.executable, "-m", "desfs", *args, env=env)


def errno_of(path: Path, call: str) -> int | None:
    try:
        getattr(os, call)(path)
    except OSError as exc:
        return exc.errno
    return None


def mount_options(mnt: Path) -> set[str]:
    """The per-mount and the superblock options of the mount on `mnt` (mountinfo)."""
    with open("/proc/self/mountinfo") as info:
        for line in info:
            fields = line.split()
            if fields[4] == str(mnt):
                return {*fields[5].split(","), *fields[-1].split(",")}
    raise AssertionError(f"{mnt} is not in mountinfo")


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory every user may traverse (pytest's own tmp_path is private to root)."""
    path = Path(tempfile.mkdtemp(prefix="desfs-security-", dir="/tmp"))
    path.chmod(0o755)
    yield path
    for mnt in path.glob("mnt*"):
        if os.path.ismount(mnt):
            subprocess.run(["fusermount3", "-u", "-z", str(mnt)], capture_output=True, check=False)
    shutil.rmtree(path, ignore_errors=True)


def write_source(root: Path) -> Path:
    src = root / "src"
    (src / DAY).mkdir(parents=True)
    (src / DAY / "s1.des").write_bytes(build_deshead1([(n, d, None) for n, d in FILES.items()]))
    src.chmod(0o700)  # the source itself stays private: others see only what desfs serves
    return src


# -- other users -----------------------------------------------------------------------------


def as_other_user() -> list[str]:
    """A command prefix that runs a command as `nobody`; skips when that is impossible."""
    if os.geteuid() != 0:
        pytest.skip("running a command as another user needs root")
    try:
        nobody = pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("there is no user 'nobody'")
    ids = [f"--reuid={nobody.pw_uid}", f"--regid={nobody.pw_gid}", "--clear-groups"]
    candidates = [["setpriv", *ids], ["runuser", "-u", "nobody", "--"]]
    for prefix in candidates:
        if (
            shutil.which(prefix[0])
            and run(*prefix, "id", "-u").stdout.strip() == str(nobody.pw_uid).encode()
        ):
            return prefix
    pytest.skip("neither setpriv nor runuser can switch to 'nobody'")


def test_other_users_are_kept_out_by_default(shared_dir: Path) -> None:
    other = as_other_user()
    src = write_source(shared_dir)
    mnt = shared_dir / "mnt"
    with Mounted(str(src), mnt, shared_dir / "daemon.log") as mount:
        assert "allow_other" not in mount_options(mnt)
        assert (mnt / DAY / "s1" / "hello.txt").read_bytes() == FILES["hello.txt"]
        for command in (
            ["ls", str(mnt)],
            ["ls", str(mnt / DAY / "s1")],
            ["stat", str(mnt)],
            ["cat", str(mnt / DAY / "s1" / "hello.txt")],
            ["getfattr", "-n", "user.des.stats", str(mnt)],
        ):
            done = run(*other, *command)
            assert done.returncode != 0, command
            assert b"Permission denied" in done.stderr, (command, done.stderr)
        # The mounting user is still served.
        assert sorted(os.listdir(mnt / DAY / "s1")) == ["hello.txt", "sub"]
        assert "Traceback" not in mount.log()


def test_allow_other_lets_others_read_but_never_write(shared_dir: Path) -> None:
    other = as_other_user()
    src = write_source(shared_dir)
    mnt = shared_dir / "mnt"
    with Mounted(str(src), mnt, shared_dir / "daemon.log", ["--allow-other"]):
        assert "allow_other" in mount_options(mnt)
        shard = mnt / DAY / "s1"
        listed = run(*other, "ls", str(shard))
        assert listed.returncode == 0, listed.stderr
        assert listed.stdout.split() == [b"hello.txt", b"sub"]
        for name, data in FILES.items():
            done = run(*other, "cat", str(shard / name))
            assert done.returncode == 0 and done.stdout == data, done.stderr
        modes = run(*other, "stat", "-c", "%a %F", str(shard / "hello.txt"), str(shard / "sub"))
        assert modes.stdout.decode().splitlines() == ["444 regular file", "555 directory"]
        writes = {
            "truncate": ["sh", "-c", f"echo x > {shard / 'hello.txt'}"],
            "append": ["sh", "-c", f"echo x >> {shard / 'hello.txt'}"],
            "create": ["touch", str(shard / "new.txt")],
            "utime": ["touch", str(shard / "hello.txt")],
            "mkdir": ["mkdir", str(shard / "newdir")],
            "unlink": ["rm", "-f", str(shard / "hello.txt")],
            "rename": ["mv", str(shard / "hello.txt"), str(shard / "moved.txt")],
            "chmod": ["chmod", "666", str(shard / "hello.txt")],
            "setxattr": ["setfattr", "-n", "user.x", "-v", "1", str(shard / "hello.txt")],
        }
        for what, command in writes.items():
            if shutil.which(command[0]) is None:
                continue
            done = run(*other, *command)
            assert done.returncode != 0, what
            assert b"Read-only file system" in done.stderr, (what, done.stderr)
        assert sorted(os.listdir(shard)) == ["hello.txt", "sub"]
        assert (shard / "hello.txt").read_bytes() == FILES["hello.txt"]


def test_with_allow_other_only_operators_read_the_operator_attributes(shared_dir: Path) -> None:
    """user.des.stats names the source and its traffic: other users get EACCES and do not
    see it listed; the mounting user and root do; file metadata stays readable to all."""
    other = as_other_user()
    src = write_source(shared_dir)
    mnt = shared_dir / "mnt"
    with Mounted(str(src), mnt, shared_dir / "daemon.log", ["--allow-other"]):
        denied = run(*other, "getfattr", "-n", "user.des.stats", str(mnt))
        assert denied.returncode != 0 and b"Permission denied" in denied.stderr, denied
        listed = run(*other, "getfattr", "-d", "-m", "-", str(mnt))
        assert b"user.des.stats" not in listed.stdout
        mine = run("getfattr", "-n", "user.des.stats", str(mnt))
        assert mine.returncode == 0 and b"store" in mine.stdout
        meta = run(*other, "getfattr", "-n", "user.des.container", str(mnt / DAY / "s1"))
        assert meta.returncode == 0, meta.stderr


def test_allow_other_still_honours_the_mode_bits(shared_dir: Path) -> None:
    """The kernel checks permissions (default_permissions): --umask 077 keeps others out."""
    other = as_other_user()
    src = write_source(shared_dir)
    mnt = shared_dir / "mnt"
    with Mounted(str(src), mnt, shared_dir / "daemon.log", ["--allow-other", "--umask", "077"]):
        assert stat.S_IMODE(os.stat(mnt / DAY / "s1" / "hello.txt").st_mode) == 0o400
        for command in (["ls", str(mnt / DAY)], ["cat", str(mnt / DAY / "s1" / "hello.txt")]):
            done = run(*other, *command)
            assert done.returncode != 0 and b"Permission denied" in done.stderr, command
        assert (mnt / DAY / "s1" / "hello.txt").read_bytes() == FILES["hello.txt"]


# -- credentials -----------------------------------------------------------------------------

ENV_KEY_ID = "AKIDDESFSENVKEY00001"
ENV_SECRET = "desfs-ENV-secret-7f3a9c1e5b2d4086"
ENV_TOKEN = "desfs-ENV-session-token-1c9e8d7f6a5b4c3d"
FILE_KEY_ID = "AKIDDESFSFILEKEY0002"
FILE_SECRET = "desfs-FILE-secret-0b5c1e2d3f4a6978"
FILE_TOKEN = "desfs-FILE-session-token-aa11bb22cc33dd44"
CREDENTIALS = (ENV_SECRET, ENV_TOKEN, FILE_SECRET, FILE_TOKEN, ENV_KEY_ID, FILE_KEY_ID)
NUMERIC = "98765432109876543210"  # a secret YAML reads as a number: refused, never echoed
BUCKET = "desfs-security"
S3_FILES = {"a.txt": b"alpha\n" * 20, "dir/b.txt": b"beta\n" * 300}


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port  # closed again: connections to it are refused


def write_config(
    path: Path,
    endpoint: str,
    extra: str = "",
    mode: int = 0o600,
    secret: str = FILE_SECRET,
    token: str = FILE_TOKEN,
) -> Path:
    path.write_text(
        "s3:\n"
        f"  endpoint_url: {endpoint}\n"
        f"  access_key_id: {FILE_KEY_ID}\n"
        f"  secret_access_key: {secret}\n"
        f"  session_token: {token}\n"
        "  connect_timeout: 1\n"
        "  read_timeout: 2\n"
        "  max_attempts: 2\n"
        "  backoff_base: 0.01\n"
        "  backoff_cap: 0.02\n"
        "cache:\n"
        "  error_ttl: 0\n"
        "logging:\n"
        "  level: debug\n" + extra
    )
    path.chmod(mode)
    return path


@dataclass
class Evidence:
    """Every text the test collected, by where it came from."""

    texts: dict[str, str] = field(default_factory=dict)

    def add(self, where: str, data: bytes | str) -> None:
        text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
        self.texts[where] = self.texts.get(where, "") + text

    def add_run(self, where: str, done: subprocess.CompletedProcess[bytes]) -> None:
        self.add(f"{where} stdout", done.stdout)
        self.add(f"{where} stderr", done.stderr)

    def leaks(self) -> list[str]:
        return [
            f"{where} holds {secret!r}"
            for where, text in self.texts.items()
            for secret in CREDENTIALS
            if secret in text
        ]


def daemon_pid(mnt: Path) -> int:
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if str(mnt).encode() in argv and b"--foreground" in argv:
            return int(proc.name)
    raise AssertionError(f"no daemon serves {mnt}")


@pytest.fixture
def s3_source(moto_server: MotoServer, s3_client: Any) -> str:
    s3_client.create_bucket(Bucket=BUCKET)
    entries = [(name, data, {"note": "plain"}) for name, data in S3_FILES.items()]
    s3_client.put_object(Bucket=BUCKET, Key=f"{DAY}/s1.des", Body=build_deshead1(entries))
    s3_client.put_object(Bucket=BUCKET, Key=f"{DAY}/gone.des", Body=build_deshead1(entries))
    flat = build_des2([(n, d, None) for n, d in S3_FILES.items()], Codec.ZSTD)
    s3_client.put_object(Bucket=BUCKET, Key="20241204_A_0000.des", Body=flat)
    return f"s3://{BUCKET}"


def credential_env(moto_server: MotoServer) -> dict[str, str]:
    return {
        **os.environ,
        **moto_server.env(),
        "AWS_ACCESS_KEY_ID": ENV_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": ENV_SECRET,
        "AWS_SESSION_TOKEN": ENV_TOKEN,
    }


def use_the_mount(mnt: Path, evidence: Evidence, s3_client: Any) -> None:
    """Reads, xattrs, status, and two store errors through the mount."""
    shard = mnt / DAY / "s1"
    assert sorted(os.listdir(mnt / DAY)) == ["gone", "s1"]
    # A container deleted after its day was listed: opening it meets a missing key.
    s3_client.delete_object(Bucket=BUCKET, Key=f"{DAY}/gone.des")
    assert errno_of(mnt / DAY / "gone" / "a.txt", "stat") in (errno.ENOENT, errno.EIO)
    assert errno_of(mnt / DAY / "s1" / "not-there.txt", "stat") == errno.ENOENT
    assert run("ls", "-lR", str(shard), str(mnt / "2024-12-04")).returncode == 0
    for name, data in S3_FILES.items():
        assert (shard / name).read_bytes() == data
        assert (mnt / "2024-12-04" / "A_0000" / name).read_bytes() == data
    evidence.add_run("getfattr -d", run("getfattr", "-d", "-m", "-", str(shard / "a.txt")))
    evidence.add("user.des.stats", os.getxattr(mnt, "user.des.stats"))
    evidence.add_run("desfs status", desfs("status", str(mnt)))
    evidence.add_run("desfs status --json", desfs("status", "--json", str(mnt)))
    evidence.add("ps -eo args", run("ps", "-eo", "args").stdout)
    evidence.add("/proc/pid/cmdline", Path(f"/proc/{daemon_pid(mnt)}/cmdline").read_bytes())


def test_no_credential_ever_shows(
    shared_dir: Path, moto_server: MotoServer, s3_client: Any, s3_source: str
) -> None:
    env = credential_env(moto_server)
    config = write_config(shared_dir / "desfs.yaml", moto_server.url)
    evidence = Evidence()
    mnt, log = shared_dir / "mnt", shared_dir / "daemon.log"
    mnt.mkdir()
    done = desfs("--log-level", "debug", "mount", s3_source, str(mnt), "--config", str(config),
                 f"--log-file={log}", env=env)  # fmt: skip
    evidence.add_run("desfs mount", done)
    assert done.returncode == 0, done.stderr
    try:
        use_the_mount(mnt, evidence, s3_client)
        offline_commands(s3_source, config, env, evidence)
        refused_connection(shared_dir, s3_source, config, env, evidence)
    finally:
        evidence.add_run("desfs umount", desfs("umount", str(mnt)))
    wait_for(lambda: "unmounted" in log.read_text())
    evidence.add("daemon log", log.read_text())
    bad_configs(shared_dir, s3_source, moto_server.url, env, evidence)

    daemon_log = evidence.texts["daemon log"]
    assert "DEBUG" in daemon_log  # the level the test asked for really was in force
    assert "gone.des" in daemon_log  # the missing key was reported
    assert json.loads(evidence.texts["desfs status --json stdout"])["source"]
    assert evidence.leaks() == []


def offline_commands(source: str, config: Path, env: dict[str, str], evidence: Evidence) -> None:
    """The offline tools at debug level: a good listing, a missing key, a missing path."""
    common = ["--log-level", "debug"]
    done = desfs(*common, "ls", "--config", str(config), "--long", source, f"/{DAY}/s1", env=env)
    assert done.returncode == 0 and b"a.txt" in done.stdout, done.stderr
    evidence.add_run("desfs ls", done)
    gone = f"{source}/{DAY}/gone.des"  # one container as the source; deleted by now
    done = desfs(*common, "cat", "--config", str(config), gone, "a.txt", env=env)
    assert done.returncode == 3 and b"gone.des" in done.stderr, done.stderr
    evidence.add_run("desfs cat (missing key)", done)
    done = desfs(*common, "stat", "--config", str(config), source, "/2030-01-01", env=env)
    assert done.returncode == 3, done.stderr
    evidence.add_run("desfs stat (missing path)", done)


def refused_connection(
    base: Path, source: str, config: Path, env: dict[str, str], evidence: Evidence
) -> None:
    """A second mount whose endpoint refuses connections. The mount asks for the root
    listing before it reports success, so it fails (exit 4) with the store's reason on
    stderr and in its log, and nothing stays mounted; no secret shows in either."""
    mnt, log = base / "mnt-refused", base / "refused.log"
    mnt.mkdir()
    endpoint = f"http://127.0.0.1:{closed_port()}"
    done = desfs("--log-level", "debug", "mount", source, str(mnt), "--config", str(config),
                 "--endpoint-url", endpoint, "--request-deadline", "5",
                 f"--log-file={log}", env=env)  # fmt: skip
    evidence.add_run("desfs mount (refused)", done)
    assert done.returncode == ExitCode.STORAGE, done.stderr
    assert b"Could not connect" in done.stderr
    assert not os.path.ismount(mnt)
    evidence.add("refused mount log", log.read_text())


def bad_configs(
    base: Path, source: str, endpoint: str, env: dict[str, str], evidence: Evidence
) -> None:
    """Bad values next to the secrets, a malformed secret, a secret given as -o: each is
    refused with exit code 2 and a line that names the key, never the value. A config
    file with secrets that others may read mounts, with a warning naming only the keys."""

    def config(name: str, **how: Any) -> list[str]:
        return ["--config", str(write_config(base / name, endpoint, **how))]

    refused: dict[str, tuple[list[str], str]] = {
        "bad value": (config("bad.yaml", extra="mount:\n  uid: x\n"), "mount.uid"),
        "secret a number": (config("num.yaml", secret=NUMERIC), "s3.secret_access_key"),
        "token a list": (config("list.yaml", token=f"[{FILE_TOKEN}]"), "s3.session_token"),
        "secret as -o": (["-o", f"ro,secret_access_key={FILE_SECRET}"], "-o secret_access_key"),
        "token as -o": (["-o", f"aws_session_token={FILE_TOKEN}"], "-o aws_session_token"),
    }
    mnt = base / "mnt-bad"
    mnt.mkdir()
    for case, (args, expected) in refused.items():
        done = desfs("--log-level", "debug", "mount", source, str(mnt), *args, env=env)
        evidence.add_run(f"desfs mount ({case})", done)
        assert done.returncode == 2, (case, done.stderr)
        assert expected.encode() in done.stderr, (case, done.stderr)
        assert not os.path.ismount(mnt)
    # The malformed secret's own digits are not echoed either.
    assert NUMERIC not in evidence.texts["desfs mount (secret a number) stderr"]

    log = base / "open.log"
    done = desfs("--log-level", "debug", "mount", source, str(mnt), f"--log-file={log}",
                 *config("open.yaml", mode=0o644), env=env)  # fmt: skip
    evidence.add_run("desfs mount (readable by others)", done)
    assert done.returncode == 0 and b"chmod 600" in done.stderr, done.stderr
    evidence.add_run("desfs umount (readable by others)", desfs("umount", str(mnt)))
    wait_for(lambda: "unmounted" in log.read_text())
    evidence.add("readable-by-others mount log", log.read_text())


def wait_for(condition: Any, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


# -- bounded xattr values --------------------------------------------------------------------

XATTR_SIZE_MAX = 64 * 1024


def meta_of_length(length: int) -> bytes:
    """A metadata JSON object of exactly `length` bytes."""
    shell = b'{"blob":""}'
    return shell[:-2] + b"x" * (length - len(shell)) + shell[-2:]


BIG_METAS = {
    "at-limit.txt": meta_of_length(XATTR_SIZE_MAX),
    "over-limit.txt": meta_of_length(XATTR_SIZE_MAX + 1),
    "huge.txt": meta_of_length(4 * 1024 * 1024),
}


@pytest.fixture
def big_meta_mount(tmp_path: Path) -> Iterator[Mounted]:
    src = tmp_path / "src"
    (src / DAY).mkdir(parents=True)
    entries: list[tuple[str, bytes, Meta]] = [("plain.txt", b"plain\n", {"k": "v"})]
    entries += [(name, name.encode(), meta) for name, meta in BIG_METAS.items()]
    (src / DAY / "meta.des").write_bytes(build_deshead1(entries))
    with Mounted(str(src), tmp_path / "mnt", tmp_path / "daemon.log") as mount:
        yield mount


def xattr_errno(path: Path, name: str) -> int | None:
    try:
        os.getxattr(path, name)
    except OSError as exc:
        return exc.errno
    return None


def test_oversized_metadata_gives_e2big_not_a_huge_reply(big_meta_mount: Mounted) -> None:
    shard = big_meta_mount.path / DAY / "meta"
    assert os.getxattr(shard / "at-limit.txt", "user.des.meta") == BIG_METAS["at-limit.txt"]
    for name in ("over-limit.txt", "huge.txt"):
        path = shard / name
        assert xattr_errno(path, "user.des.meta") in (errno.E2BIG, errno.ERANGE), name
        # The file and its other attributes are untouched.
        assert "user.des.meta" in os.listxattr(path)
        assert os.getxattr(path, "user.des.size") == str(len(name)).encode()
        assert path.read_bytes() == name.encode()
    done = big_meta_mount.run(
        "getfattr", "-n", "user.des.meta", str(shard / "huge.txt"), check=False
    )
    assert done.returncode != 0 and b"Argument list too long" in done.stderr, done.stderr
    assert json.loads(os.getxattr(shard / "plain.txt", "user.des.meta"))["k"] == "v"


def test_getfattr_dump_of_an_oversized_entry_keeps_the_daemon_serving(
    big_meta_mount: Mounted,
) -> None:
    shard = big_meta_mount.path / DAY / "meta"
    for name in BIG_METAS:
        done = big_meta_mount.run("getfattr", "-d", "-m", "-", str(shard / name), check=False)
        assert b"user.des.size" in done.stdout, (name, done.stderr)
    dump = big_meta_mount.run("getfattr", "-R", "-d", "-m", "-", str(shard), check=False)
    assert b"plain.txt" in dump.stdout
    assert big_meta_mount.proc is not None and big_meta_mount.proc.poll() is None
    assert (shard / "plain.txt").read_bytes() == b"plain\n"
    assert "Traceback" not in big_meta_mount.log()


def test_the_bigger_xattrs_are_bounded_too(big_meta_mount: Mounted) -> None:
    """Every other value is small whatever the container says; listxattr is short."""
    shard = big_meta_mount.path / DAY / "meta"
    for path in (big_meta_mount.path, big_meta_mount.path / DAY, shard, shard / "huge.txt"):
        names = os.listxattr(path)
        assert len("\0".join(names)) < 4096
        for name in names:
            if name != "user.des.meta":
                assert len(os.getxattr(path, name)) < XATTR_SIZE_MAX, (path, name)
