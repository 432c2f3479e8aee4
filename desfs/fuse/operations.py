"""The pyfuse3 adapter: argument and value translation, and the one errno boundary.

pyfuse3 ends the whole mount when a handler raises anything but FUSEError, so every
handler goes through `_boundary`: a DesfsError becomes its errno (logged at its own
level), any other exception becomes a logged EIO, and the daemon keeps serving.
Every write-type operation answers EROFS.
"""

from __future__ import annotations

import errno
import functools
import logging
import os
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, ParamSpec, TypeVar

import pyfuse3
import trio

from desfs.errors import DesfsError
from desfs.fs.attributes import Attr
from desfs.fs.filesystem import DesFilesystem
from desfs.fuse.release import EntryReleaser

log = logging.getLogger(__name__)

# Operator attributes name the source (bucket, endpoint, path) and its traffic; with
# allow_other only root, the daemon's user and the mount's owner may read them.
OPERATOR_XATTRS = frozenset({"user.des.stats"})

P = ParamSpec("P")
R = TypeVar("R")


class Requests:
    """The handlers in flight, so that shutdown can make every one of them answer.

    pyfuse3 sends no reply for a cancelled handler, and the kernel request (with any
    directory lock it holds) then waits until the connection closes. So shutdown never
    cancels handlers from outside: `fail_all` cancels each handler's own scope, and the
    handler answers EIO like any failed request.
    """

    def __init__(self) -> None:
        self._scopes: set[trio.CancelScope] = set()
        self.failing = False
        self._idle = trio.Event()
        self._idle.set()

    def __len__(self) -> int:
        return len(self._scopes)

    def enter(self) -> trio.CancelScope:
        scope = trio.CancelScope()
        if self.failing:
            scope.cancel()
        self._scopes.add(scope)
        self._idle = trio.Event() if len(self._scopes) == 1 else self._idle
        return scope

    def leave(self, scope: trio.CancelScope) -> None:
        self._scopes.discard(scope)
        if not self._scopes:
            self._idle.set()

    def fail_all(self) -> None:
        """Every handler in flight, and every later one, answers EIO at once."""
        self.failing = True
        for scope in self._scopes:
            scope.cancel()

    async def idle(self) -> None:
        await self._idle.wait()


def _boundary(handler: Callable[P, Coroutine[Any, Any, R]]) -> Callable[P, Coroutine[Any, Any, R]]:
    @functools.wraps(handler)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        requests: Requests = args[0].requests  # type: ignore[attr-defined]
        scope = requests.enter()
        try:
            with scope:
                return await handler(*args, **kwargs)
        except pyfuse3.FUSEError:
            raise
        except DesfsError as exc:
            log.log(exc.log_level, "%s: %s", handler.__name__, exc)
            raise pyfuse3.FUSEError(exc.errno) from None
        except Exception:
            log.exception("unexpected error in %s; answering EIO", handler.__name__)
            raise pyfuse3.FUSEError(errno.EIO) from None
        finally:
            requests.leave(scope)
            # New kernel entries (the inode limit), or names found gone: invalidations.
            args[0].releaser.poke()  # type: ignore[attr-defined]
        # Only a scope cancelled by `Requests.fail_all` gets here: the daemon is stopping.
        raise pyfuse3.FUSEError(errno.EIO)

    return wrapper


def _entry(attr: Attr, owner_uid: int, owner_gid: int) -> pyfuse3.EntryAttributes:
    out = pyfuse3.EntryAttributes()
    out.st_ino = pyfuse3.InodeT(attr.ino)
    out.generation = 0
    out.entry_timeout = attr.ttl
    out.attr_timeout = attr.ttl
    out.st_mode = pyfuse3.ModeT(attr.mode)
    out.st_nlink = attr.nlink
    out.st_uid = owner_uid
    out.st_gid = owner_gid
    out.st_rdev = 0
    out.st_size = attr.size
    out.st_blksize = 128 * 1024
    out.st_blocks = (attr.size + 511) // 512
    out.st_atime_ns = attr.mtime_ns
    out.st_ctime_ns = attr.mtime_ns
    out.st_mtime_ns = attr.mtime_ns
    return out


def _name(raw: bytes) -> str:
    return os.fsdecode(raw)


class FuseOperations(pyfuse3.Operations):
    supports_dot_lookup = False
    enable_writeback_cache = False
    enable_acl = False

    def __init__(self, fs: DesFilesystem, uid: int, gid: int) -> None:
        super().__init__()
        self._fs = fs
        self._uid = uid
        self._gid = gid
        self._daemon_uid = os.getuid()
        self.requests = Requests()
        self.releaser = EntryReleaser(fs)

    def _attrs(self, attr: Attr) -> pyfuse3.EntryAttributes:
        return _entry(attr, self._uid, self._gid)

    @_boundary
    async def lookup(
        self, parent_inode: pyfuse3.InodeT, name: pyfuse3.FileNameT, ctx: pyfuse3.RequestContext
    ) -> pyfuse3.EntryAttributes:
        try:
            found = await self._fs.lookup(parent_inode, _name(name))
        except DesfsError as exc:
            ttl = self._fs.negative_ttl(parent_inode)
            if exc.errno != errno.ENOENT or ttl <= 0:
                raise
            # The index is authoritative: cache the miss in the kernel (st_ino 0).
            miss = pyfuse3.EntryAttributes()
            miss.st_ino = pyfuse3.InodeT(0)
            miss.entry_timeout = ttl
            return miss
        return self._attrs(found)

    @_boundary
    async def getattr(
        self, inode: pyfuse3.InodeT, ctx: pyfuse3.RequestContext
    ) -> pyfuse3.EntryAttributes:
        return self._attrs(await self._fs.getattr(inode))

    async def forget(self, inode_list: Sequence[tuple[pyfuse3.InodeT, int]]) -> None:
        for inode, nlookup in inode_list:
            try:
                self._fs.forget(inode, nlookup)
            except Exception:
                log.exception("forget(%d, %d) failed", inode, nlookup)

    @_boundary
    async def opendir(
        self, inode: pyfuse3.InodeT, ctx: pyfuse3.RequestContext
    ) -> pyfuse3.FileHandleT:
        return pyfuse3.FileHandleT(await self._fs.opendir(inode))

    @_boundary
    async def readdir(
        self, fh: pyfuse3.FileHandleT, start_id: int, token: pyfuse3.ReaddirToken
    ) -> None:

        def offer(name: str, attr: Attr, next_id: int) -> bool:
            return bool(pyfuse3.readdir_reply(token, os.fsencode(name), self._attrs(attr), next_id))

        self._fs.readdir(fh, start_id, offer)

    @_boundary
    async def releasedir(self, fh: pyfuse3.FileHandleT) -> None:
        self._fs.releasedir(fh)

    @_boundary
    async def open(
        self, inode: pyfuse3.InodeT, flags: int, ctx: pyfuse3.RequestContext
    ) -> pyfuse3.FileInfo:
        if flags & os.O_ACCMODE != os.O_RDONLY or flags & os.O_TRUNC:
            raise pyfuse3.FUSEError(errno.EROFS)
        # Containers never change once written: the page cache may outlive this open.
        return pyfuse3.FileInfo(fh=pyfuse3.FileHandleT(await self._fs.open(inode)), keep_cache=True)

    @_boundary
    async def read(self, fh: pyfuse3.FileHandleT, off: int, size: int) -> bytes:
        if log.isEnabledFor(logging.DEBUG):
            log.debug("read fh=%d offset=%d size=%d", fh, off, size)
        return await self._fs.read(fh, off, size)

    @_boundary
    async def release(self, fh: pyfuse3.FileHandleT) -> None:
        self._fs.release(fh)

    @_boundary
    async def getxattr(
        self, inode: pyfuse3.InodeT, name: pyfuse3.XAttrNameT, ctx: pyfuse3.RequestContext
    ) -> bytes:
        text = _name(name)
        if text in OPERATOR_XATTRS and not self._is_operator(ctx.uid):
            raise pyfuse3.FUSEError(errno.EACCES)
        return await self._fs.getxattr(inode, text)

    @_boundary
    async def listxattr(
        self, inode: pyfuse3.InodeT, ctx: pyfuse3.RequestContext
    ) -> Sequence[pyfuse3.XAttrNameT]:
        names = await self._fs.listxattr(inode)
        if not self._is_operator(ctx.uid):
            names = [n for n in names if n not in OPERATOR_XATTRS]
        return [pyfuse3.XAttrNameT(os.fsencode(n)) for n in names]

    def _is_operator(self, uid: int) -> bool:
        """Root, the user who runs the daemon, and the owner the mount shows."""
        return uid in (0, self._daemon_uid, self._uid)

    @_boundary
    async def statfs(self, ctx: pyfuse3.RequestContext) -> pyfuse3.StatvfsData:
        stats = self._fs.statfs()
        out = pyfuse3.StatvfsData()
        out.f_bsize = stats.block_size
        out.f_frsize = stats.block_size
        out.f_blocks = stats.blocks
        out.f_bfree = 0
        out.f_bavail = 0
        out.f_files = stats.files
        out.f_ffree = 0
        out.f_favail = 0
        out.f_namemax = stats.namemax
        return out

    # -- everything that would change the filesystem -------------------------------------

    async def _read_only(self, *_: Any) -> Any:
        raise pyfuse3.FUSEError(errno.EROFS)

    setattr = mknod = mkdir = unlink = rmdir = symlink = rename = link = _read_only  # type: ignore[assignment]
    write = create = setxattr = removexattr = _read_only  # type: ignore[assignment]
