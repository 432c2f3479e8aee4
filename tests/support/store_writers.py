"""Our own writers of the other stores' formats, for sources bigger than the fixtures (the
request-budget tests and the benchmark). They follow docs/formats/*.md, and the fixtures
that the stores' own writers made stay the reference: tests read both the same way.
"""

from __future__ import annotations

import struct
import tarfile
import zlib
from collections.abc import Sequence
from pathlib import Path

import cramjam
import zstandard

BLOCK = 512


# -- datas3t2 ----------------------------------------------------------------------------


def _tar_header(name: str, size: int) -> bytes:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = size, 0o644, 0
    header = info.tobuf(tarfile.USTAR_FORMAT)
    assert len(header) == BLOCK
    return header


def write_datarange(
    root: Path, dataset: str, first: int, items: Sequence[tuple[str, bytes]]
) -> dict[str, bytes]:
    """One datarange of `items` (extension, bytes) from datapoint `first` on, as datas3t2's
    uploader writes it: a ustar TAR closed by two zero blocks, and 16 bytes of index per
    datapoint. Returns mount path -> bytes."""
    last = first + len(items) - 1
    stem = root / "datas3t" / dataset / "dataranges" / f"{first:020d}-{last:020d}"
    stem.parent.mkdir(parents=True, exist_ok=True)
    tar, index, shown = bytearray(), bytearray(), {}
    for i, (ext, data) in enumerate(items):
        name = f"{first + i:020d}.{ext}"
        index += struct.pack(">QH", len(tar), 1) + len(data).to_bytes(6, "big")
        tar += _tar_header(name, len(data)) + data + bytes(-len(data) % BLOCK)
        shown[f"{dataset}/{stem.name}/{name}"] = data
    tar += bytes(2 * BLOCK)
    stem.with_suffix(".tar").write_bytes(bytes(tar))
    Path(f"{stem}.index.zst").write_bytes(bytes(index))
    return shown


# -- s4db ----------------------------------------------------------------------------------


def _record(key: bytes, value: bytes) -> bytes:
    packed = bytes(cramjam.snappy.compress_raw(value))
    flags, stored = (0x02, value) if len(packed) >= len(value) else (0, packed)
    body = struct.pack(">BII", flags, len(key), len(stored)) + key + stored
    return body + struct.pack(">I", zlib.crc32(body))


def write_s4db(root: Path, items: dict[str, bytes], per_file: int = 1000) -> None:
    """A store of `items` (key -> value): version-2 index, data files of `per_file`
    records each, Snappy values (raw where Snappy would not shrink them)."""
    root.mkdir(parents=True, exist_ok=True)
    writer = 0x5EED0001
    index = bytearray()
    keys = list(items)
    for number, at in enumerate(range(0, len(keys), per_file), start=1):
        file_id = writer << 32 | number
        data = bytearray(b"S4DB" + struct.pack(">BI", 2, number))
        for key in keys[at : at + per_file]:
            raw = key.encode()
            record = _record(raw, items[key])
            index += struct.pack(">H", len(raw)) + raw
            index += struct.pack(">QQI", file_id, len(data), len(record))
            data += record
        (root / f"data_{writer:08x}_{number:06d}.s4db").write_bytes(bytes(data))
    body = struct.pack(">BII", 2, 0, len(keys)) + index
    (root / "index.idx").write_bytes(body + struct.pack(">I", zlib.crc32(body)))


# -- ConduitFlatFileDB ---------------------------------------------------------------------


def write_conduit(
    root: Path, number: int, blobs: Sequence[bytes], frame_bytes: int = 256 * 1024
) -> list[tuple[int, int]]:
    """Data file `number` holding `blobs` back to back, compressed in the seekable zstd
    format (a frame per `frame_bytes` of BLOBs at most, and the seek table). Returns each
    BLOB's DataLocation (start, end) in the uncompressed stream."""
    root.mkdir(parents=True, exist_ok=True)
    compressor = zstandard.ZstdCompressor(level=3, write_checksum=True)
    out, table, frame, where = bytearray(), bytearray(), bytearray(), []
    at = 0

    def close() -> None:
        if frame:
            packed = compressor.compress(bytes(frame))
            table.extend(struct.pack("<II", len(packed), len(frame)))
            out.extend(packed)
            frame.clear()

    for blob in blobs:
        where.append((at, at + len(blob)))
        at += len(blob)
        frame.extend(blob)
        if len(frame) >= frame_bytes:
            close()
    close()
    count = len(table) // 8
    body = bytes(table) + struct.pack("<IBI", count, 0, 0x8F92EAB1)
    out += struct.pack("<II", 0x184D2A5E, len(body)) + body
    (root / f"data_{number:08d}.dat.zst").write_bytes(bytes(out))
    return where
