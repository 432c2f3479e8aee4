"""The one error vocabulary of desfs.

Every layer raises these; each class knows the errno a FUSE caller sees, the log level
the FUSE boundary logs it at, and the exit code a CLI command ends with. The mapping to
errno happens in exactly one place (`desfs.fuse.operations`), the mapping to exit codes
in `desfs.commands.main`.
"""

from __future__ import annotations

import errno
import logging


class ExitCode:
    """Documented exit codes of every `desfs` command (README, "Exit codes")."""

    OK = 0
    PROBLEMS = 1  # `verify` found damage; `umount` could not unmount
    USAGE = 2  # bad arguments or configuration; nothing was done
    NOT_FOUND = 3  # the path or key does not exist
    STORAGE = 4  # the store could not be reached or refused access
    FORMAT = 5  # a container is corrupt or not a DES container
    MOUNTPOINT = 6  # mountpoint missing, not empty, or already mounted
    MOUNT_FAILED = 7  # the FUSE mount itself failed or never answered
    NOT_MOUNTED = 8  # `umount`, `ready`: nothing is mounted there (or no ready file)
    INTERNAL = 70  # a bug: an unexpected exception (EX_SOFTWARE)


class DesfsError(Exception):
    """Base of every expected desfs failure."""

    errno: int = errno.EIO
    log_level: int = logging.WARNING
    exit_code: int = ExitCode.INTERNAL


class NotFound(DesfsError):
    """A path, name or object that does not exist."""

    errno = errno.ENOENT
    log_level = logging.DEBUG
    exit_code = ExitCode.NOT_FOUND


class NotADirectory(DesfsError):
    errno = errno.ENOTDIR
    log_level = logging.DEBUG
    exit_code = ExitCode.NOT_FOUND


class IsADirectory(DesfsError):
    errno = errno.EISDIR
    log_level = logging.DEBUG
    exit_code = ExitCode.USAGE


class ReadOnly(DesfsError):
    """Any attempt to change the filesystem."""

    errno = errno.EROFS
    log_level = logging.DEBUG
    exit_code = ExitCode.USAGE


class NoAttribute(DesfsError):
    errno = errno.ENODATA
    log_level = logging.DEBUG
    exit_code = ExitCode.NOT_FOUND


class UsageError(DesfsError):
    """Bad command-line arguments or a bad configuration value."""

    errno = errno.EINVAL
    exit_code = ExitCode.USAGE


class FormatError(DesfsError):
    """Bytes that are not a valid DES container (corrupt, truncated, lying)."""

    exit_code = ExitCode.FORMAT


class NotAContainer(FormatError):
    """Neither magic matches: the object is not a DES container at all."""


class PartialContainer(FormatError):
    """A head magic without a valid footer: a writer still at work, or one that crashed."""


class EntryError(FormatError):
    """One entry is unreadable (unknown codec or flag, bad meta, size mismatch)."""


class StorageError(DesfsError):
    """The store failed to answer (after retries) or refused the request."""

    exit_code = ExitCode.STORAGE


class ObjectMissing(StorageError):
    """The store says the key does not exist."""

    errno = errno.ENOENT
    exit_code = ExitCode.NOT_FOUND


class AccessDenied(StorageError):
    errno = errno.EACCES


class ObjectChanged(StorageError):
    """The object no longer matches the ETag seen when it was opened (HTTP 412)."""

    errno = errno.ESTALE


class StorageTimeout(StorageError):
    """A request did not complete within its timeout budget."""


class MountError(DesfsError):
    exit_code = ExitCode.MOUNT_FAILED


class MountpointError(MountError):
    exit_code = ExitCode.MOUNTPOINT
