"""Keeping the kernel's entry cache, and with it the inode table, under the inode limit.

The kernel forgets an inode only when it evicts the entry, which it does under memory
pressure and not before: after `find` over millions of files it keeps them all, and the
daemon must keep a node for each. So when the table is over its limit, this task asks
the kernel to invalidate the least recently used entries; the kernel drops those that
nothing holds open and sends FORGET for their inodes, which shrinks the table.

Entry invalidation takes the parent directory's lock in the kernel, and a request about
that directory (a READDIR, a LOOKUP in it) holds the lock until the daemon answers it.
So `pyfuse3.invalidate_entry` can wait for any request in flight, and it can only end
while the daemon keeps answering. The rules (docs/CONCURRENCY.md):

- invalidations run in one worker thread at a time, never on the trio thread;
- `stop()` ends them: no new batch starts, the thread stops after its current entry, and
  the caller keeps the session answering requests until `stop()` returns;
- the session is closed only after `stop()` returned, so no thread is ever left in the
  kernel waiting for a request nobody will answer.
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
        self._pending: list[Invalidation] = []  # names gone from the archive
        self._halt = threading.Event()  # read by the worker thread between entries
        self._in_kernel = False  # a batch is running in the worker thread
        self._idle = trio.Event()
        self._idle.set()

    def poke(self) -> None:
        """Call after the kernel learned of new entries, or after a name went away; wakes
        `run` when there is something to invalidate."""
        if self._halt.is_set():
            return
        gone = self._fs.gone()
        if gone:
            self._pending.extend(gone)
            self._wanted.set()
        elif self._fs.over_limit():
            self._wanted.set()

    @property
    def busy(self) -> bool:
        """A batch of invalidations is in the kernel right now."""
        return self._in_kernel

    async def run(self) -> None:
        """Release surplus entries whenever poked, until `stop`."""
        while not self._halt.is_set():
            await self._wanted.wait()
            self._wanted = trio.Event()
            while not self._halt.is_set() and (batch := self._next_batch()):
                missing = await self._in_worker(batch)
                for ino in missing:
                    self._fs.not_released(ino)

    def _next_batch(self) -> list[Invalidation]:
        if self._pending:
            batch, self._pending = self._pending[:BATCH], self._pending[BATCH:]
            return batch
        return self._fs.releases(BATCH)

    async def stop(self) -> None:
        """No more invalidations; returns once no thread of ours is in the kernel.

        The session must keep answering requests until this returns: the thread may be
        waiting for a directory lock that only an answer releases.
        """
        self._halt.set()
        self._wanted.set()
        await self._idle.wait()

    async def _in_worker(self, batch: list[Invalidation]) -> list[int]:
        self._in_kernel = True
        self._idle = trio.Event()
        try:
            # Never abandoned: the task waits for the thread, so `stop()` can tell when
            # no invalidation is left in the kernel.
            return await trio.to_thread.run_sync(_invalidate, batch, self._halt)
        finally:
            self._in_kernel = False
            self._idle.set()


def _invalidate(batch: list[Invalidation], halt: threading.Event) -> list[int]:
    """Invalidate each entry; return the inodes of those the kernel did not have."""
    missing: list[int] = []
    for item in batch:
        if halt.is_set():
            break
        try:
            name = pyfuse3.FileNameT(os.fsencode(item.name))
            pyfuse3.invalidate_entry(pyfuse3.InodeT(item.parent), name)
        except FileNotFoundError:
            missing.append(item.ino)
        except OSError as exc:
            log.debug("invalidating %r in inode %d: %s", item.name, item.parent, exc)
    return missing
