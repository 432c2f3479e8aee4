"""Journal-friendly log lines and the runtime debug switch."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import pytest

from desfs import logs


def test_journal_lines_carry_their_priority() -> None:
    formatter = logs.JournalFormatter("%(name)s: %(message)s")
    record = logging.LogRecord("desfs.x", logging.WARNING, __file__, 1, "two\nlines", (), None)
    assert formatter.format(record) == "<4>desfs.x: two\n<4>lines"


def test_journal_detected_only_for_the_named_stream(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with open(tmp_path / "stream", "w") as stream:
        found = os.fstat(stream.fileno())
        monkeypatch.setattr(sys, "stderr", stream)
        monkeypatch.setenv("JOURNAL_STREAM", f"{found.st_dev}:{found.st_ino}")
        assert logs.stderr_is_journal()
        monkeypatch.setenv("JOURNAL_STREAM", f"{found.st_dev}:{found.st_ino + 1}")
        assert not logs.stderr_is_journal()


def test_toggle_debug_returns_to_the_configured_level() -> None:
    before = logging.getLogger().level
    try:
        logs.set_level("info")
        assert logs.toggle_debug() == "DEBUG"
        assert logging.getLogger("botocore").level == logging.WARNING
        assert logs.toggle_debug() == "INFO"
        assert logging.getLogger().level == logging.INFO
    finally:
        logging.getLogger().setLevel(before)
