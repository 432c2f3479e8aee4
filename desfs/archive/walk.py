"""Opening the containers of a day ahead of a walk, so `find` or `du -s` over S3 pays one
round trip per batch of shards instead of one per shard.

A walk is recognised when a shard directory is opened right after its predecessor in
the day's listing order (which is readdir order). The next `WINDOW` shards are then
opened together with it, concurrently, in the same round trip. Opening one shard and
then a distant one never triggers it, so browsing costs what it did.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import trio

from desfs.archive.catalog import ContainerRef, DayListing
from desfs.errors import DesfsError

log = logging.getLogger(__name__)

WINDOW = 8


class ShardWalk:
    def __init__(self) -> None:
        self._last: dict[str, int] = {}  # day -> listing position of the last shard opened
        self._positions: dict[str, tuple[DayListing, dict[str, int]]] = {}

    def ahead(self, listing: DayListing, shard: str) -> list[ContainerRef]:
        """The shards to open with `shard`: the next WINDOW when this is a walk, else none."""
        positions = self._positions_of(listing)
        here = positions.get(shard)
        if here is None:
            return []
        previous = self._last.get(listing.day)
        self._last[listing.day] = here
        if len(self._last) > 64:
            self._last.pop(next(iter(self._last)))
        if previous is None or here != previous + 1:
            return []
        refs = list(listing.shards.values())
        return refs[here + 1 : here + 1 + WINDOW]

    def _positions_of(self, listing: DayListing) -> dict[str, int]:
        cached = self._positions.get(listing.day)
        if cached is not None and cached[0] is listing:
            return cached[1]
        positions = {name: i for i, name in enumerate(listing.shards)}
        self._positions[listing.day] = (listing, positions)
        if len(self._positions) > 64:
            self._positions.pop(next(iter(self._positions)))
        return positions


async def open_ahead(
    refs: list[ContainerRef], load: Callable[[ContainerRef], Awaitable[object]]
) -> None:
    """Open `refs` concurrently; a failure is the loader's to log and remember, not ours."""

    async def one(ref: ContainerRef) -> None:
        try:
            await load(ref)
        except DesfsError as exc:
            log.debug("opening %s ahead of a walk failed: %s", ref.key, exc)

    async with trio.open_nursery() as nursery:
        for ref in refs:
            nursery.start_soon(one, ref)
