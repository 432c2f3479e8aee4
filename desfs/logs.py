"""Logging setup: stderr lines the journal understands, and the level switch at runtime.

Under systemd (stderr connected to the journal, as $JOURNAL_STREAM says) every line starts
with its syslog priority, `<3>` to `<7>`, so `journalctl -p warning` filters correctly;
the journal adds timestamps itself. Elsewhere lines read `LEVEL logger: message`.
SIGUSR2 on a mount daemon switches debug logging on, and off again on the next one.
"""

from __future__ import annotations

import logging
import os
import sys

_PRIORITY = {
    logging.DEBUG: 7,
    logging.INFO: 6,
    logging.WARNING: 4,
    logging.ERROR: 3,
    logging.CRITICAL: 2,
}


class JournalFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        priority = _PRIORITY.get(record.levelno, 6)
        text = super().format(record)
        # Every line of a multi-line record (a traceback) keeps the record's priority.
        return "\n".join(f"<{priority}>{line}" for line in text.splitlines())


# The HTTP client libraries log every request at debug level, headers and tokens included.
LIBRARY_LOGGERS = ("botocore", "boto3", "urllib3")


class _State:
    configured = logging.WARNING


def stderr_is_journal() -> bool:
    expected = os.environ.get("JOURNAL_STREAM", "")
    try:
        found = os.fstat(sys.stderr.fileno())
    except (OSError, ValueError):
        return False
    return expected == f"{found.st_dev}:{found.st_ino}"


class PeopleFormatter(logging.Formatter):
    """`desfs: warning: ...` for the commands people run at a terminal; the module name
    only at debug level, where it helps."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        where = f"{record.name}: " if record.levelno <= logging.DEBUG else ""
        return f"desfs: {record.levelname.lower()}: {where}{text}"


def setup(level: str, daemon: bool = True) -> None:
    """Log to stderr: daemon lines (`LEVEL logger: message`, or journal priorities), or
    the short lines of a command run by a person."""
    handler = logging.StreamHandler(sys.stderr)
    if stderr_is_journal():
        handler.setFormatter(JournalFormatter("%(name)s: %(message)s"))
    elif daemon:
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    else:
        handler.setFormatter(PeopleFormatter("%(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    set_level(level)


def set_level(level: str) -> None:
    numeric = logging.getLevelName(level.upper())
    _State.configured = numeric
    _apply(numeric)


def toggle_debug() -> str:
    """Debug on if it is off, back to the configured level if it is on; the new level."""
    current = logging.getLogger().level
    numeric = _State.configured if current == logging.DEBUG else logging.DEBUG
    _apply(numeric)
    return logging.getLevelName(numeric)


def _apply(numeric: int) -> None:
    logging.getLogger().setLevel(numeric)
    quiet_libraries(numeric, force=True)


def quiet_libraries(level: int = logging.WARNING, force: bool = False) -> None:
    """Keep the client libraries at warning or above; without `force`, only those an
    operator has not configured."""
    for name in LIBRARY_LOGGERS:
        logger = logging.getLogger(name)
        if force or logger.level == logging.NOTSET:
            logger.setLevel(max(level, logging.WARNING))
