"""Finding a file by its name and day, the way the writers placed it: no listing of the day.

DES routes a UID by `n_bits` to `YYYYMMDD_<HEX>_<NNNN>.des` (the size-split parts tried in
order) or `YYYYMMDD/<HEX>.des`; Datavision's daily store hashes a name by `shard_bits` to
`YYYY-MM-DD/<hex>.des` (des-formats.md §1.11, §2.9). The parameters come from
`routing.*`, or, for DES, are learnt from a day whose listing holds every shard of some
`n_bits` (a full day says it unambiguously; a sparse one does not, and teaches nothing).
Which containers exist, and their ETags, are remembered for the listing TTL, so a warm
lookup costs no request at all.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable

from cachetools import LRUCache

from desfs.archive.catalog import ContainerRef
from desfs.namespace.layout import ContainerName, Layout
from desfs.namespace.routing import (
    datavision_shard_token,
    des_shard_hex,
    des_shard_index,
    shard_from_name,
)
from desfs.settings.sections import RoutingSettings

KEPT = 65536  # routed keys remembered
_FLAT_SHARD = re.compile(r"([0-9A-F]{1,4})_[0-9]{4,}", re.ASCII)


class Routes:
    def __init__(
        self, settings: RoutingSettings, ttl: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._settings = settings
        self._ttl = ttl
        self._clock = clock
        self._learned_n_bits: int | None = None
        # key -> (expires, its listing-like ref, or None when missing), for the listing TTL.
        self._known: LRUCache[str, tuple[float, ContainerRef | None]] = LRUCache(maxsize=KEPT)

    @property
    def des_n_bits(self) -> int | None:
        return self._settings.des_n_bits or self._learned_n_bits

    def candidates(
        self, day: str, layouts: frozenset[Layout], name: str
    ) -> list[list[ContainerName]]:
        """The containers `name` may live in on `day`, in the order to try them: groups of
        which each is tried in order up to its first missing member (DES split parts)."""
        found: list[list[ContainerName]] = []
        compact = day.replace("-", "")
        bits = self.des_n_bits
        if bits is not None and layouts & {Layout.DES_FLAT, Layout.DES_NESTED}:
            token = des_shard_hex(des_shard_index(name, bits), bits)
            if Layout.DES_NESTED in layouts:
                key = f"{compact}/{token}.des"
                found.append([ContainerName(key, day, token, Layout.DES_NESTED)])
            if Layout.DES_FLAT in layouts:
                parts = [f"{token}_{part:04d}" for part in range(self._settings.max_parts)]
                found.append(
                    [ContainerName(f"{compact}_{p}.des", day, p, Layout.DES_FLAT) for p in parts]
                )
        shard_bits = self._settings.datavision_shard_bits
        if shard_bits is not None and Layout.DATAVISION in layouts:
            token = datavision_shard_token(shard_from_name(name, shard_bits), shard_bits)
            found.append([ContainerName(f"{day}/{token}.des", day, token, Layout.DATAVISION)])
        return found

    def known(self, key: str) -> tuple[bool, ContainerRef | None]:
        """(whether `key` is known now, its ref: None when it is missing)."""
        found = self._known.get(key)
        if found is None or found[0] <= self._clock():
            return False, None
        return True, found[1]

    def note(self, key: str, ref: ContainerRef | None) -> None:
        self._known[key] = (self._clock() + self._ttl, ref)

    def learn(self, shards: Iterable[str]) -> None:
        """Learn DES n_bits from the shard names of a listed day, when it holds them all."""
        if self._settings.des_n_bits is not None or self._learned_n_bits is not None:
            return
        tokens = {m.group(1) for s in shards if (m := _FLAT_SHARD.fullmatch(s))}
        for bits in range(4, 17):
            if len(tokens) == 1 << bits:
                if tokens == {des_shard_hex(i, bits) for i in range(1 << bits)}:
                    self._learned_n_bits = bits
                return
