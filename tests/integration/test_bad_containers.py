"""Bad input on a real mount: one damaged, lying, hostile or partial container among good
ones fails alone, with a clear log line naming it, and every other path keeps working.

Each test builds a source holding the same good containers (Datavision and DES flat,
sharing one day) plus one bad container, mounts it, and reads with ordinary tools.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import struct
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import pytest

from desfs.format.model import Codec
from desfs.format.writer import compress
from tests.support import fixtures
from tests.support.builders import BigPayload, ExternalPayload, build_des2, build_deshead1
from tests.support.mounting import Mounted, needs_fuse

pytestmark = needs_fuse()

DAY = "2024-12-03"
TIMEOUT = 30.0
BIG = 1536 * 1024  # above small_entry_bytes (1 MiB): external reads take the probing path

# -- the good part of every source ------------------------------------------------------------

GOOD_FILES: dict[str, bytes] = {
    f"{DAY}/alpha/a.txt": b"alpha a\n",
    f"{DAY}/alpha/docs/b.txt": b"alpha b\n" * 50,
    f"{DAY}/beta/c.json": b'{"c": 1}\n',
    f"{DAY}/A_0000/x.bin": bytes(range(256)) * 20,
    f"{DAY}/A_0000/y/z.txt": b"zz\n" * 100,
    "2024-12-04/1_0000/one.txt": b"one\n",
}


def _inner(shard: str) -> list[tuple[str, bytes, None]]:
    prefix = f"{shard}/"
    return [(p.split("/", 2)[2], d, None) for p, d in GOOD_FILES.items() if p.startswith(prefix)]


def write_good(src: Path) -> None:
    (src / DAY).mkdir(parents=True, exist_ok=True)
    (src / DAY / "alpha.des").write_bytes(build_deshead1(_inner(f"{DAY}/alpha")))
    (src / DAY / "beta.des").write_bytes(build_deshead1(_inner(f"{DAY}/beta")))
    (src / "20241203_A_0000.des").write_bytes(build_des2(_inner(f"{DAY}/A_0000"), Codec.ZSTD))
    (src / "20241204_1_0000.des").write_bytes(build_des2(_inner("2024-12-04/1_0000")))


# -- helpers ---------------------------------------------------------------------------------


def run(*command: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(command, capture_output=True, timeout=TIMEOUT, check=False)


def desfs(*args: str) -> subprocess.CompletedProcess[bytes]:
    return run(sys.executable, "-m", "desfs", *args)


@contextmanager
def mounted(tmp_path: Path, bad: dict[str, bytes]) -> Iterator[Mounted]:
    """Mount the good containers plus `bad` (source-relative key -> bytes)."""
    src = tmp_path / "src"
    write_good(src)
    for key, data in bad.items():
        (src / key).parent.mkdir(parents=True, exist_ok=True)
        (src / key).write_bytes(data)
    with Mounted(str(src), tmp_path / "mnt", tmp_path / "daemon.log") as mount:
        yield mount


def assert_good(mnt: Path) -> None:
    """Every good file reads back byte for byte through `cat`."""
    for path, data in GOOD_FILES.items():
        done = run("cat", str(mnt / path))
        assert done.returncode == 0, done.stderr
        assert done.stdout == data, path


def assert_eio(path: Path) -> None:
    done = run("cat", str(path))
    assert done.returncode != 0 and b"Input/output error" in done.stderr, (path, done)


def ls(path: Path) -> subprocess.CompletedProcess[bytes]:
    return run("ls", "-a", str(path))


def names(path: Path) -> list[str]:
    done = ls(path)
    assert done.returncode == 0, done.stderr
    return [n for n in done.stdout.decode().split() if n not in (".", "..")]


def warnings_naming(mount: Mounted, key: str) -> list[str]:
    return [line for line in mount.log().splitlines() if line.startswith("WARNING") and key in line]


def errno_of(call: Callable[[], object]) -> int | None:
    """The errno `call` fails with; None when it succeeds."""
    try:
        call()
    except OSError as exc:
        return exc.errno
    return None


def flip(data: bytes, offset: int, mask: int = 0x80) -> bytes:
    out = bytearray(data)
    out[offset] ^= mask
    return bytes(out)


# -- damaged containers ----------------------------------------------------------------------

DH1_KEY = f"{DAY}/bad.des"
DH1_SHARD = f"{DAY}/bad"
DES2_KEY = "20241203_BAD_0000.des"
DES2_SHARD = f"{DAY}/BAD_0000"

DH1_VICTIM = build_deshead1(
    [("v1.txt", b"victim one\n" * 30, {"k": 1}), ("v2.txt", b"victim two\n", None)]
)
DES2_VICTIM = build_des2(
    [("v1.txt", b"victim one\n" * 30, {"k": 1}), ("v2.txt", b"victim two\n", None)], Codec.ZSTD
)
_DH1_INDEX_START = struct.unpack_from("<Q", DH1_VICTIM, len(DH1_VICTIM) - 24)[0]
_DES2_INDEX_START = len(DES2_VICTIM) - 12 - struct.unpack_from("<Q", DES2_VICTIM, -8)[0]

# Damage that the bytes at hand prove: the shard directory answers EIO.
CORRUPT: dict[str, tuple[str, bytes]] = {
    "dh1-footer-data_length-bitflip": (DH1_KEY, flip(DH1_VICTIM, len(DH1_VICTIM) - 48, 0x01)),
    "dh1-footer-meta_start-bitflip": (DH1_KEY, flip(DH1_VICTIM, len(DH1_VICTIM) - 40, 0x04)),
    "dh1-footer-version": (DH1_KEY, fixtures.patch(DH1_VICTIM, -64, "<B", 2)),
    "dh1-footer-file_count-huge": (DH1_KEY, fixtures.patch(DH1_VICTIM, -8, "<Q", 2**64 - 1)),
    "dh1-footer-file_count-plus-one": (DH1_KEY, fixtures.patch(DH1_VICTIM, -8, "<Q", 3)),
    "dh1-footer-index_length-huge": (DH1_KEY, fixtures.patch(DH1_VICTIM, -16, "<Q", 2**40)),
    "dh1-index-name_len-bitflip": (DH1_KEY, flip(DH1_VICTIM, _DH1_INDEX_START + 1)),
    "dh1-header-version": (DH1_KEY, fixtures.patch(DH1_VICTIM, 8, "<B", 7)),
    "des2-footer-index_size-bitflip": (DES2_KEY, flip(DES2_VICTIM, len(DES2_VICTIM) - 3)),
    "des2-footer-index_size-larger-than-object": (
        DES2_KEY,
        fixtures.patch(DES2_VICTIM, -8, "<Q", len(DES2_VICTIM)),
    ),
    "des2-entry_count-huge": (
        DES2_KEY,
        fixtures.patch(DES2_VICTIM, _DES2_INDEX_START, "<I", 0xFFFFFFFF),
    ),
    "des2-index-name_len-bitflip": (DES2_KEY, flip(DES2_VICTIM, _DES2_INDEX_START + 5)),
    "des2-header-reserved": (DES2_KEY, fixtures.patch(DES2_VICTIM, 5, "<B", 1)),
    # Fewer bytes than a head magic: nothing marks it as a container being written.
    "dh1-cut-inside-magic": (DH1_KEY, DH1_VICTIM[:3]),
    "des2-empty": (DES2_KEY, b""),
    "not-a-container": (DH1_KEY, b"this is not a DES container at all\n" * 10),
}


@pytest.mark.parametrize("case", CORRUPT)
def test_corrupt_container_fails_alone(tmp_path: Path, case: str) -> None:
    key, data = CORRUPT[case]
    shard = DH1_SHARD if key == DH1_KEY else DES2_SHARD
    with mounted(tmp_path, {key: data}) as mount:
        mnt = mount.path
        for _ in range(2):  # the remembered failure answers the same
            done = ls(mnt / shard)
            assert done.returncode != 0 and b"Input/output error" in done.stderr, done
        assert shard.split("/")[1] in names(mnt / DAY)  # still listed in its day
        assert os.stat(mnt / shard).st_mode & 0o040000
        assert_good(mnt)
        found = run("find", str(mnt))
        assert found.returncode != 0  # find reports the broken shard ...
        listed = set(found.stdout.decode().splitlines())
        assert {str(mnt / p) for p in GOOD_FILES} <= listed  # ... and lists everything else
        assert any(f"container {key}: " in line for line in warnings_naming(mount, key))


# A head magic without a valid footer: a writer at work, or one that died (or a footer
# whose magic was hit, which looks exactly the same).
def _cuts(data: bytes, footer: int, header: int) -> dict[str, bytes]:
    points = {"header-only": header, "mid": len(data) // 2, "no-footer": len(data) - footer}
    points |= {"footer-minus-1": len(data) - 1, "header-plus-1": header + 1}
    return {name: data[:at] for name, at in points.items()}


PARTIAL: dict[str, tuple[str, bytes]] = {
    **{f"dh1-cut-{n}": (DH1_KEY, d) for n, d in _cuts(DH1_VICTIM, 72, 16).items()},
    **{f"des2-cut-{n}": (DES2_KEY, d) for n, d in _cuts(DES2_VICTIM, 12, 8).items()},
    "dh1-footer-magic-bitflip": (DH1_KEY, flip(DH1_VICTIM, len(DH1_VICTIM) - 70, 0x01)),
    "des2-footer-magic-bitflip": (DES2_KEY, flip(DES2_VICTIM, len(DES2_VICTIM) - 12, 0x01)),
}


@pytest.mark.parametrize("case", PARTIAL)
def test_partial_container_is_skipped_with_one_warning(tmp_path: Path, case: str) -> None:
    key, data = PARTIAL[case]
    shard = DH1_SHARD if key == DH1_KEY else DES2_SHARD
    with mounted(tmp_path, {key: data}) as mount:
        mnt = mount.path
        for _ in range(2):
            done = ls(mnt / shard)
            assert done.returncode != 0 and b"No such file or directory" in done.stderr, done
        # Known partial now: the day no longer shows it, and stat agrees with ls.
        assert shard.split("/")[1] not in names(mnt / DAY)
        assert sorted(names(mnt / DAY)) == ["A_0000", "alpha", "beta"]
        assert errno_of(lambda: os.stat(mnt / shard)) == errno.ENOENT
        assert "assumed partly written" in mount.log()
        assert_good(mnt)
        found = run("find", str(mnt))
        assert found.returncode == 0, found.stderr
        assert len(warnings_naming(mount, key)) == 1, mount.log()


# -- lying entries: only the liar fails --------------------------------------------------------


def _dh1_liars() -> bytes:
    entries = [
        fixtures.AEntry(b"first.txt", b"first\n"),
        fixtures.AEntry(b"far.txt", b"far away", data_offset=10**12),
        fixtures.AEntry(b"middle.txt", b"middle\n" * 10),
        fixtures.AEntry(b"long.txt", b"long", data_length=2**40),
        fixtures.AEntry(b"into-meta.txt", b"0123456789", data_length=10 + 5 + 3, meta=b'{"m":1}'),
        fixtures.AEntry(b"last.txt", b"last\n"),
    ]
    return fixtures.build_deshead1(entries)


def _des2_liars() -> bytes:
    entries = [
        fixtures.BEntry(b"first.txt", b"first\n"),
        fixtures.BEntry(b"far.txt", b"far away", offset=2**40),
        fixtures.BEntry(b"middle.txt", b"middle\n" * 10),
        fixtures.BEntry(b"long.txt", b"long", length=2**40, compressed_size=2**40, size=2**40),
        fixtures.BEntry(b"into-index.txt", b"0123456789", length=10 + 8, compressed_size=18),
        fixtures.BEntry(b"last.txt", b"last\n"),
    ]
    return fixtures.build_des2(entries)


LIARS = {
    "dh1": (DH1_KEY, DH1_SHARD, _dh1_liars(), ["far.txt", "long.txt", "into-meta.txt"]),
    "des2": (DES2_KEY, DES2_SHARD, _des2_liars(), ["far.txt", "long.txt", "into-index.txt"]),
}
HONEST = {"first.txt": b"first\n", "middle.txt": b"middle\n" * 10, "last.txt": b"last\n"}


@pytest.mark.parametrize("case", LIARS)
def test_lying_entries_fail_alone(tmp_path: Path, case: str) -> None:
    key, shard, data, liars = LIARS[case]
    with mounted(tmp_path, {key: data}) as mount:
        mnt = mount.path
        assert sorted(names(mnt / shard)) == sorted([*HONEST, *liars])
        for name in liars:
            assert_eio(mnt / shard / name)
        for name, content in HONEST.items():  # in container order, after the liars
            assert run("cat", str(mnt / shard / name)).stdout == content
        assert_good(mnt)
        assert run("find", str(mnt)).returncode == 0
        for name in liars:
            lines = [line for line in warnings_naming(mount, key) if name in line]
            assert lines and "outside the data" in lines[0], mount.log()


def test_corrupt_payload_does_not_poison_its_neighbours(tmp_path: Path) -> None:
    """Files read in container order are fetched together; a bad one fails only itself."""
    texts = {f"f{i}.txt": f"file {i}\n".encode() * 40 for i in range(7)}
    entries = []
    for name, text in texts.items():
        stored = compress(text, Codec.ZSTD, None)
        if name == "f2.txt":  # unknown codec 7: refused by the parser
            entries.append(fixtures.BEntry(name.encode(), stored, codec=7, size=len(text)))
            continue
        if name == "f4.txt":  # a zstd frame with a damaged block: refused by the decoder
            stored = stored[:-8] + bytes(8)
        entries.append(fixtures.BEntry(name.encode(), stored, codec=1, size=len(text)))
    with mounted(tmp_path, {DES2_KEY: fixtures.build_des2(entries)}) as mount:
        shard = mount.path / DES2_SHARD
        for name, text in texts.items():
            # O_DIRECT: through the page cache the kernel retries a failed read once,
            # which would hide a neighbour's failure behind a cache hit.
            done = run("dd", "iflag=direct", "bs=1M", "status=none", f"if={shard / name}")
            if name in ("f2.txt", "f4.txt"):
                assert done.returncode != 0 and b"Input/output error" in done.stderr, name
            else:
                assert done.returncode == 0, (name, done.stderr, mount.log())
                assert done.stdout == text
        assert_good(mount.path)
    verify = desfs("verify", str(tmp_path / "src"))
    assert verify.returncode == 1
    bad = [line for line in verify.stderr.decode().splitlines() if line.startswith("BAD")]
    assert len(bad) == 2 and "f2.txt" in bad[0] and "f4.txt" in bad[1], verify.stderr


# -- hostile names -----------------------------------------------------------------------------

HOSTILE: dict[bytes, str] = {
    b"../escape.txt": "'.' or '..' component",
    b"/abs.txt": "leading '/'",
    b"a/../../x": "'.' or '..' component",
    b"a//b": "empty path component",
    b"trailing/": "empty path component",
    b".": "'.' or '..' component",
    b"..": "'.' or '..' component",
    b"": "empty name",
    b"nul\x00name": "contains NUL",
    b"c" * 300: "component over 255 bytes",
    b"dir/" + b"d" * 256: "component over 255 bytes",
    b"\xff\xfeinvalid": "not valid UTF-8",
    b"a": "collides with a directory",
}
VISIBLE: dict[bytes, bytes] = {
    b"ok.txt": b"ok\n",
    b"a/b": b"a slash b\n",
    b"e" * 255: b"longest name\n",
    b"dir/deep/fine.txt": b"fine\n",
}


def _hostile_entries() -> list[tuple[bytes, bytes, None]]:
    hostile = [(n, b"HOSTILE " + n.hex().encode(), None) for n in HOSTILE]
    return [*hostile, *((n, d, None) for n, d in VISIBLE.items())]


HOSTILE_CASES = {
    "dh1": (f"{DAY}/hostile.des", f"{DAY}/hostile", build_deshead1(_hostile_entries())),
    "des2": ("20241203_E_0000.des", f"{DAY}/E_0000", build_des2(_hostile_entries())),
}


def _tree(files: list[str]) -> set[str]:
    """`find -printf '%y %P'` lines for these files and every directory above them."""
    lines = {f"f {f}" for f in files}
    for path in files:
        parts = path.split("/")
        lines |= {"d " + "/".join(parts[:i]) for i in range(1, len(parts))}
    return lines


def _shown(raw: bytes) -> str:
    """How `desfs ls --all` prints a raw name: JSON of its text, bad bytes as \\xNN."""
    return json.dumps(raw.decode("utf-8", "backslashreplace"), ensure_ascii=False)


@pytest.mark.parametrize("case", HOSTILE_CASES)
def test_hostile_names_are_hidden_and_contained(tmp_path: Path, case: str) -> None:
    key, shard, data = HOSTILE_CASES[case]
    for bait in (tmp_path / "escape.txt", tmp_path / "x", tmp_path / "abs.txt"):
        bait.write_bytes(b"OUTSIDE")
    with mounted(tmp_path, {key: data, "escape.txt": b"OUTSIDE", "x": b"OUTSIDE"}) as mount:
        mnt = mount.path
        visible = [f"{shard}/{n.decode()}" for n in VISIBLE]
        found = run("find", str(mnt), "-mindepth", "1", "-printf", "%y %P\\n")
        assert found.returncode == 0, found.stderr
        assert set(found.stdout.decode().splitlines()) == _tree([*GOOD_FILES, *visible])
        for path in visible:
            assert run("cat", str(mnt / path)).stdout == VISIBLE[path.split("/", 2)[2].encode()]
        # The kernel resolves ".." itself; no spelling of a hostile name leaves the tree
        # ("a//b" is the visible file "a/b" to the kernel, so ".." after it is ENOTDIR).
        for spelled in ("../escape.txt", "../../x", "a/../../x", "abs.txt", "a//b/../../x"):
            found = errno_of(partial(os.stat, f"{mnt}/{shard}/{spelled}"))
            assert found in (errno.ENOENT, errno.ENOTDIR), spelled
        assert os.path.isdir(mnt / shard / "a")
        assert all(b"OUTSIDE" not in run("cat", str(mnt / p)).stdout for p in visible)
        assert_good(mnt)
        hidden_lines = [line for line in mount.log().splitlines() if "hidden entry" in line]
        assert len(hidden_lines) == len(HOSTILE), mount.log()
    check_offline_view(tmp_path / "src", shard)


def check_offline_view(src: Path, shard: str) -> None:
    listing = desfs("ls", "--all", str(src), f"/{shard}")
    assert listing.returncode == 0, listing.stderr
    lines = listing.stdout.decode().splitlines()
    expected_hidden = {f"{_shown(name)}\t(hidden: {why})" for name, why in HOSTILE.items()}
    assert set(lines) == {"ok.txt", "a/", "e" * 255, "dir/"} | expected_hidden
    done = desfs("cat", str(src), f"/{shard}", "--name", "../escape.txt")
    assert done.returncode == 0, done.stderr
    assert done.stdout == b"HOSTILE " + b"../escape.txt".hex().encode()
    for raw in (b"", b"nul\x00name", b"\xff\xfeinvalid", b"a"):
        done = desfs("cat", str(src), f"/{shard}", "--name-hex", raw.hex())
        assert done.returncode == 0, done.stderr
        assert done.stdout == b"HOSTILE " + raw.hex().encode()


# -- external payloads -------------------------------------------------------------------------

OUTSIDE = b"root:x:0:0:outside the source, never to be served\n"
SECRET = b"a secret that is not an external payload\n"
FALLBACK = b"the payload at the safe fallback key!!!!\n"
assert len(FALLBACK) == len(SECRET)
BIG_DATA = bytes(range(251)) * (BIG // 251 + 1)


Externals = tuple[bytes, dict[str, bytes], dict[str, str]]


def _dh1_externals(src: Path) -> Externals:
    """(container, readable files, EIO files -> what their log line names); writes payloads."""
    big = src / DAY / "_bigFiles"
    big.mkdir(parents=True)
    (big / "good.bin").write_bytes(b"good external\n")
    (big / "big.bin").write_bytes(BIG_DATA)
    (big / "secret").write_bytes(FALLBACK)
    (big / "short.bin").write_bytes(b"too short")
    (big / "bigshort.bin").write_bytes(BIG_DATA[:-1])
    (src / DAY / "secret.txt").write_bytes(SECRET)
    (src.parent / "passwd").write_bytes(OUTSIDE)
    (big / "link.bin").symlink_to(src.parent / "passwd")
    b = f"{DAY}/_bigFiles"
    entries = [
        ("inline.txt", b"inline\n", None),
        ("good.bin", ExternalPayload(b"good external\n", f"{b}/good.bin"), None),
        ("big.bin", ExternalPayload(BIG_DATA, f"{b}/big.bin"), None),
        ("secret", ExternalPayload(FALLBACK, f"{DAY}/secret.txt"), None),
        ("secret2", ExternalPayload(SECRET, f"{DAY}/secret.txt"), None),
        ("passwd", ExternalPayload(OUTSIDE, "../passwd"), None),
        ("etc-passwd", ExternalPayload(OUTSIDE, "../../etc/passwd"), None),
        ("absolute", ExternalPayload(OUTSIDE, str(src.parent / "passwd")), None),
        ("dotdot", ExternalPayload(OUTSIDE, f"{b}/../../passwd"), None),
        ("missing.bin", ExternalPayload(b"nowhere", f"{b}/missing.bin"), None),
        ("short.bin", ExternalPayload(b"longer than stored", f"{b}/short.bin"), None),
        ("bigshort.bin", ExternalPayload(BIG_DATA, f"{b}/bigshort.bin"), None),
        ("bigmissing.bin", ExternalPayload(BIG_DATA, f"{b}/bigmissing.bin"), None),
        ("link.bin", ExternalPayload(OUTSIDE, f"{b}/link.bin"), None),
    ]
    readable = {"inline.txt": b"inline\n", "good.bin": b"good external\n", "big.bin": BIG_DATA}
    readable["secret"] = FALLBACK  # the meta's key is refused; the fallback key is safe
    eio = {n: n for n, _, _ in entries if n not in readable}  # name -> seen in its log line
    return build_deshead1(entries), readable, eio


def _des2_bigfiles(src: Path) -> Externals:
    big = src / "_bigFiles"
    big.mkdir(parents=True)
    good = BigPayload(BIG_DATA)
    small = BigPayload(b"small big file\n")
    upper = BigPayload(b"upper-case hash\n")
    for payload in (good, small):
        (big / payload.sha256).write_bytes(payload.data)
    (big / upper.sha256.upper()).write_bytes(upper.data)
    wrong_size = BigPayload(b"wrong size\n")
    (big / wrong_size.sha256).write_bytes(wrong_size.data + b"extra")
    wrong_hash = BigPayload(b"right hash\n")
    (big / wrong_hash.sha256).write_bytes(b"WRONG hash\n")
    (src.parent / "passwd").write_bytes(OUTSIDE)

    def bigfile(name: str, digest: bytes, size: int) -> fixtures.BEntry:
        return fixtures.BEntry(name.encode(), bigfile_hash=digest, bigfile_size=size)

    entries = [
        fixtures.BEntry(b"inline.txt", b"inline\n"),
        bigfile("big.bin", good.sha256.encode(), len(good.data)),
        bigfile("small.bin", small.sha256.encode(), len(small.data)),
        bigfile("traversal", b"../../passwd", len(OUTSIDE)),
        bigfile("upper", upper.sha256.upper().encode(), len(upper.data)),
        bigfile("short-hash", small.sha256[:63].encode(), len(small.data)),
        bigfile("missing", BigPayload(b"absent").sha256.encode(), 6),
        bigfile("big-missing", BigPayload(b"absent" * BIG).sha256.encode(), 6 * BIG),
        bigfile("wrong-size", wrong_size.sha256.encode(), len(wrong_size.data)),
        bigfile("wrong-hash", wrong_hash.sha256.encode(), len(wrong_hash.data)),
    ]
    readable = {"inline.txt": b"inline\n", "big.bin": good.data, "small.bin": small.data}
    eio = {e.name.decode(): e.name.decode() for e in entries if e.name.decode() not in readable}
    # A payload that is there but wrong is reported under its own key.
    eio |= {"wrong-size": wrong_size.sha256, "wrong-hash": wrong_hash.sha256}
    return fixtures.build_des2(entries), readable, eio


EXTERNALS: dict[str, tuple[str, str, Callable[[Path], Externals]]] = {
    "dh1": (f"{DAY}/ext.des", f"{DAY}/ext", _dh1_externals),
    "des2": ("20241203_B16_0000.des", f"{DAY}/B16_0000", _des2_bigfiles),
}


@pytest.mark.parametrize("case", EXTERNALS)
def test_bad_external_payloads_give_eio(tmp_path: Path, case: str) -> None:
    key, shard, build = EXTERNALS[case]
    container, readable, eio = build(tmp_path / "src")
    with mounted(tmp_path, {key: container}) as mount:
        mnt = mount.path
        assert sorted(names(mnt / shard)) == sorted([*readable, *eio])
        for name in eio:
            assert_eio(mnt / shard / name)
            assert_eio(mnt / shard / name)  # and again, from whatever was remembered
        for name, data in readable.items():
            done = run("cat", str(mnt / shard / name))
            assert done.returncode == 0, (name, done.stderr, mount.log())
            assert hashlib.sha256(done.stdout).digest() == hashlib.sha256(data).digest(), name
        warned = [line for line in mount.log().splitlines() if line.startswith("WARNING")]
        for name, token in eio.items():
            assert os.stat(mnt / shard / name).st_size > 0  # stat needs no payload
            assert any(token in line for line in warned), f"no warning for {name}"
        assert_good(mnt)


def test_missing_external_is_eio_not_enoent(tmp_path: Path) -> None:
    """A file that lists and stats fine must not claim, on read, not to exist."""
    key, shard, build = EXTERNALS["dh1"]
    container, _, _ = build(tmp_path / "src")
    with mounted(tmp_path, {key: container}) as mount:
        path = mount.path / shard / "missing.bin"
        assert os.stat(path).st_size == len(b"nowhere")
        with open(path, "rb") as handle:
            assert errno_of(handle.read) == errno.EIO
