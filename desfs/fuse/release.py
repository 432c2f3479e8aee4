"""Keeping the kernel's entry cache, and with it the inode table, under the inode limit.

The kernel forgets an inode only when it evicts the entry, which it does under memory
pressure and not before: after `find` over millions of files it keeps them all, and the
daemon must keep a node for each. So when the table is over its limit, this task asks
the kernel to invalidate the least recently used entries; the kernel drops those that
nothing holds open and sends FORGET for their inodes, which shrinks the table.

`pyfuse3.invalidate_entry` blocks while a request about the same directory is in
progress, so it runs in a worker thread, one batch per thread hop, and only from this
task. The task lives in the mount's nursery and so ends before the FUSE session is
closed; a batch still blocked in the kernel at that moment is abandoned and stops at
its next entry.
"""

from __future__ import annotations

import logging
import os
import threading

import pyfuse3
import trio

from desfs.fs.filesystem import DesFilesystem, Invalidation

log = logging.getLogger(__name__)

BATCH = 256


class EntryReleaser:
    def __init__(self, fs: DesFilesystem) -> None:
        self._fs = fs
        self._wanted = trio.Event()

    def poke(self) -> None:
        """Call after the kernel learned of new entries; wakes `run` when over the limit."""
        if self._fs.over_limit():
            self._wanted.set()

    async def run(self) -> None:
        """Release surplus entries whenever poked, for the life of the mount."""
        stop = threading.Event()
        try:
            while True:
                await self._wanted.wait()
                self._wanted = trio.Event()
                while batch := self._fs.releases(BATCH):
                    missing = await trio.to_thread.run_sync(
                        _invalidate, batch, stop, abandon_on_cancel=True
                    )
                    for ino in missing:
                        self._fs.not_released(ino)
        finally:
            stop.set()


def _invalidate(batch: list[Invalidation], stop: threading.Event) -> list[int]:
    """Invalidate each entry; return the inodes of those the kernel did not have."""
    missing: list[int] = []
    for item in batch:
        if stop.is_set():
            break
        try:
            name = pyfuse3.FileNameT(os.fsencode(item.name))
            pyfuse3.invalidate_entry(pyfuse3.InodeT(item.parent), name)
        except FileNotFoundError:
            missing.append(item.ino)
        except OSError as exc:
            log.debug("invalidating %r in inode %d: %s", item.name, item.parent, exc)
    return missing
