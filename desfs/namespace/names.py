"""The name policy (design-brief §1 "Names"): which raw entry names become paths.

A name becomes a path inside its shard only when it is valid UTF-8 and every `/`-separated
component is non-empty, not "." or "..", free of NUL and at most 255 bytes. Everything else
is hidden with its reason, and can still be read by its raw name with `desfs cat --name`.
"""

from __future__ import annotations

from enum import IntEnum

NAME_MAX = 255  # bytes in one path component (Linux NAME_MAX)


class Hide(IntEnum):
    """Why a name is not exposed (shown by `desfs ls --all` and counted). 0 is "shown"."""

    NOT_UTF8 = 1
    DELETED = 2
    TOMBSTONED = 3
    EMPTY = 4
    NUL = 5
    ABSOLUTE = 6
    EMPTY_COMPONENT = 7
    DOT_COMPONENT = 8
    TOO_LONG = 9
    DIRECTORY = 10
    SHADOWED = 11

    def __str__(self) -> str:
        return _TEXT[self]


_TEXT = {
    Hide.NOT_UTF8: "not valid UTF-8",
    Hide.DELETED: "deleted (flag bit 3)",
    Hide.TOMBSTONED: "tombstoned",
    Hide.EMPTY: "empty name",
    Hide.NUL: "contains NUL",
    Hide.ABSOLUTE: "leading '/'",
    Hide.EMPTY_COMPONENT: "empty path component",
    Hide.DOT_COMPONENT: "'.' or '..' component",
    Hide.TOO_LONG: "component over 255 bytes",
    Hide.DIRECTORY: "collides with a directory",
    Hide.SHADOWED: "shadowed by a later entry",
}


def check_path(text: str) -> Hide | None:
    """Why a decoded name cannot be a path (deletion and tombstones aside); None: it can."""
    if not text:
        return Hide.EMPTY
    if "\x00" in text:
        return Hide.NUL
    if text[0] == "/":
        return Hide.ABSOLUTE
    if "/" not in text and len(text) <= NAME_MAX // 4:
        return Hide.DOT_COMPONENT if text in (".", "..") else None
    for part in text.split("/"):
        if not part:
            return Hide.EMPTY_COMPONENT
        if part in (".", ".."):
            return Hide.DOT_COMPONENT
        if len(part) > NAME_MAX // 4 and len(part.encode("utf-8", "surrogatepass")) > NAME_MAX:
            return Hide.TOO_LONG
    return None
