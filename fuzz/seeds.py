"""Seed corpora for the atheris harnesses: real containers, frames, sidecars and names.

    python fuzz/seeds.py fuzz/corpus

writes fuzz/corpus/{container,codecs,namespace}/ in each harness's input layout, from the
sample archive bundled with desfs, the upstream fixtures when the workspace has them, and
small containers and frames made by desfs's own writers. libFuzzer adds what it finds to
the same directories, so a long run can be resumed.
"""

from __future__ import annotations

import hashlib
import io
import json
import sys
from collections.abc import Iterator
from pathlib import Path

from desfs.format.des2_writer import Des2Writer
from desfs.format.deshead1_writer import DesHead1Writer
from desfs.format.model import Codec
from desfs.format.writer import compress

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "desfs" / "sample"
UPSTREAM = REPO / "tests" / "fixtures" / "upstream"
MAX_SEED = 256 * 1024  # libFuzzer's default -max_len is far below; keep seeds useful


def containers() -> Iterator[bytes]:
    for root in (SAMPLE, UPSTREAM):
        for path in sorted(root.glob("**/*.des")) if root.is_dir() else []:
            if path.stat().st_size <= MAX_SEED:
                yield path.read_bytes()
    files = [("a.txt", b"hello\n"), ("dir/b.bin", bytes(range(256))), ("empty", b"")]
    for codec in Codec:
        out = io.BytesIO()
        writer = Des2Writer(out, codec, None, False)
        for name, data in files:
            writer.add(name, data, {"k": name})
        writer.add_bigfile("big", hashlib.sha256(b"big").hexdigest(), 3, None)
        writer.close()
        yield out.getvalue()
    out = io.BytesIO()
    head1 = DesHead1Writer(out)
    for name, data in files:
        head1.add(name, data, {"mtime": "2024-12-03T10:00:00Z"})
    head1.add_external("ext.bin", 9, "2024-12-03/_bigFiles/ext.bin", None)
    head1.close()
    yield out.getvalue()


def container_seeds() -> Iterator[bytes]:
    for data in containers():
        yield b"\x00\x00\x00" + data  # whole parse
        yield b"\x05\x40\x00" + data  # windowed open, 64-byte tail, with the head
        yield b"\x01\x00\x10" + data  # windowed open, 4 KiB tail, no head
        yield b"\x86\x00\x01" + data  # inconsistent size, tail and a 16-byte head


def codec_seeds() -> Iterator[bytes]:
    payloads = [b"", b"x", b"hello desfs\n" * 50, bytes(range(256)) * 8]
    for codec in Codec:
        for payload in payloads:
            stored = compress(payload, codec, None)
            for step in (0, 6, 255):
                yield bytes([codec]) + len(payload).to_bytes(4, "little") + bytes([step]) + stored
    yield b"\x00\x09\x00\x00\x00\x00" + b'{"k":[1]}'


def namespace_seeds() -> Iterator[bytes]:
    sidecar = {"tombstones": {"1": {"uid": "a.txt"}, "2": {"uid": 7}}, "index": {}}
    yield b"\x00" + json.dumps(sidecar).encode()
    names = [b"a.txt", b"dir/b.txt", b"dir", b"../x", b"/abs", b"a//b", b"\xff", b"gone\x08"]
    yield b"\x01" + b"\n".join(names)
    yield b"\x02" + "\n".join(["2024-12-03/c.des", "f.bin", "2024-12-03/_bigFiles/f.bin"]).encode()
    yield b"\x02" + "\n".join(["c.des", "f", "", hashlib.sha256(b"x").hexdigest()]).encode()


def write_seeds(root: Path) -> dict[str, int]:
    """Write every corpus under `root`; returns the number of seeds per harness."""
    counts = {}
    for name, seeds in (
        ("container", container_seeds()),
        ("codecs", codec_seeds()),
        ("namespace", namespace_seeds()),
    ):
        directory = root / name
        directory.mkdir(parents=True, exist_ok=True)
        counts[name] = 0
        for seed in seeds:
            (directory / hashlib.sha1(seed).hexdigest()).write_bytes(seed)
            counts[name] += 1
    return counts


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit("usage: python fuzz/seeds.py CORPUS_DIR")
    for name, count in write_seeds(Path(sys.argv[1])).items():
        print(f"{name}: {count} seeds")


if __name__ == "__main__":
    main()
