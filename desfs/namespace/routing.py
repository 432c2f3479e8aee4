"""Where the upstream writers put a file: the shard a name hashes to (pure).

Datavision's daily store hashes the entry name (`shard_from_name`, des-formats.md §1.11);
DES routes a UID by `n_bits` (`des_shard_index`, §2.9). `desfs pack` writes with these,
and `desfs serve` finds a file by name and day with them, without listing the day.
"""

from __future__ import annotations

import hashlib
import zlib
from datetime import datetime

from desfs.errors import UsageError


def shard_from_name(name: str, bits: int) -> int:
    """Datavision shard: the top `bits` bits of SHA-256(name)[:4] as big-endian u32."""
    if not 1 <= bits <= 32:
        raise UsageError(f"Datavision shard bits must be 1..32, not {bits}")
    prefix = int.from_bytes(hashlib.sha256(name.encode("utf-8")).digest()[:4], "big")
    return prefix >> (32 - bits)


def datavision_shard_token(shard: int, bits: int) -> str:
    return f"{shard:0{(bits + 3) // 4}x}"


def des_shard_index(uid: str, n_bits: int) -> int:
    """DES routing: decimal UIDs modulo 2^n, others the low n bits of CRC-32."""
    if not 4 <= n_bits <= 16:
        raise UsageError(f"DES n_bits must be 4..16, not {n_bits}")
    if uid.isdigit():
        try:
            return int(uid) % (1 << n_bits)
        except ValueError as exc:  # e.g. superscript digits: upstream cannot route them
            raise UsageError(f"DES routing cannot place the name {uid!r}") from exc
    return zlib.crc32(uid.encode("utf-8")) & ((1 << n_bits) - 1)


def des_shard_hex(index: int, n_bits: int) -> str:
    # Upstream pads to n_bits // 4 digits (floor), so widths vary when n_bits % 4 != 0.
    return f"{index:0{max(1, n_bits // 4)}X}"


def des_day_prefix(created_at: datetime) -> str:
    """The YYYYMMDD of a DES key: `created_at` in its own time zone, as upstream does."""
    return created_at.strftime("%Y%m%d")


def des_keys(uid: str, created_at: datetime, n_bits: int, parts: int) -> list[str]:
    """The flat keys a UID can live in: its shard's split parts `_0000` .. in order."""
    shard = des_shard_hex(des_shard_index(uid, n_bits), n_bits)
    day = des_day_prefix(created_at)
    return [f"{day}_{shard}_{part:04d}.des" for part in range(parts)]


def datavision_key(name: str, day: str, bits: int) -> str:
    """The daily-store key of a name: `YYYY-MM-DD/<hex>.des`."""
    return f"{day}/{datavision_shard_token(shard_from_name(name, bits), bits)}.des"
