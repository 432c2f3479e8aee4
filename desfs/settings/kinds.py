"""Kinds of configuration values: how a YAML value or a command-line word becomes a typed
value, and what a key expects when it does not.

A value from the config file arrives typed by YAML (int, float, bool, str, None); a value from
a flag or a `-o` option arrives as text. Each kind accepts both, and refuses a YAML value of
the wrong type instead of guessing (a YAML `"5"` is text, not an integer).
"""

from __future__ import annotations

import difflib
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

from desfs.errors import UsageError

_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}
_SIZE = re.compile(r"\s*(\d+)\s*([kmgt]?)(?:i?b)?\s*", re.IGNORECASE)
_SHOWN_UNITS = (("TiB", 1024**4), ("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024))
_TRUE = ("true", "yes", "on", "1")
_FALSE = ("false", "no", "off", "0")


def parse_size(text: str) -> int:
    """ "65536", "64k", "64KiB", "8M", "1GiB" -> bytes."""
    match = _SIZE.fullmatch(text)
    if match is None:
        raise UsageError(f"{text!r} is not a size (examples: 65536, 64KiB, 8MiB)")
    return int(match.group(1)) * _UNITS[match.group(2).lower()]


def show_size(size: int) -> str:
    for unit, factor in _SHOWN_UNITS:
        if size >= factor and size % factor == 0:
            return f"{size // factor}{unit}"
    return str(size)


def close_match(word: str, candidates: list[str]) -> str | None:
    found = difflib.get_close_matches(word, candidates, n=1, cutoff=0.6)
    return found[0] if found else None


class Invalid(Exception):
    """A value a key cannot take: `problem` says what is wrong with it, `expected` what would
    do, `hint` a likely intended value."""

    def __init__(
        self,
        problem: str,
        expected: str,
        hint: str | None = None,
        concealed: bool = False,
        sentence: bool = False,
    ) -> None:
        super().__init__(problem)
        self.problem = problem
        self.expected = expected
        self.hint = hint
        self.concealed = concealed  # the value may hold a credential: never echo it
        self.sentence = sentence  # `problem` says it all (a structured value's inner error)


class Kind(Protocol):
    @property
    def metavar(self) -> str: ...

    @property
    def expected(self) -> str: ...

    def parse(self, value: object, text: bool) -> object: ...

    def show(self, value: object) -> str: ...


def _number(value: object, text: bool, convert: type[int] | type[float]) -> int | float | None:
    """The number in `value`, or None when it is not one of the accepted shape."""
    if isinstance(value, str) and text:
        try:
            return convert(value.strip())
        except ValueError:
            return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if convert is int and not isinstance(value, int):
        return None
    return value


def _bounded(number: int | float, lo: float, hi: float, expected: str) -> int | float:
    if not (math.isfinite(number) and lo <= number <= hi):
        raise Invalid("out of range", expected)
    return number


@dataclass(frozen=True, slots=True)
class Size:
    """Bytes: an integer, or text with a binary unit ("64KiB", "8M")."""

    lo: int
    hi: int

    @property
    def metavar(self) -> str:
        return "SIZE"

    @property
    def expected(self) -> str:
        span = f"from {show_size(self.lo)} to {show_size(self.hi)}"
        return f"a size {span} (bytes, or a number with KiB, MiB or GiB)"

    def parse(self, value: object, text: bool) -> object:
        if isinstance(value, str):
            try:
                number = parse_size(value)
            except UsageError:
                raise Invalid("not a valid size", self.expected) from None
        elif isinstance(value, int) and not isinstance(value, bool):
            number = value
        else:
            raise Invalid("not a valid size", self.expected)
        return _bounded(number, self.lo, self.hi, self.expected)

    def show(self, value: object) -> str:
        return show_size(value) if isinstance(value, int) else str(value)


@dataclass(frozen=True, slots=True)
class Seconds:
    lo: float
    hi: float
    above_lo: bool = False  # the bound itself is excluded ("greater than 0")

    @property
    def metavar(self) -> str:
        return "SECONDS"

    @property
    def expected(self) -> str:
        if self.above_lo:
            return f"a number of seconds greater than {self.lo:.10g} and at most {self.hi:.10g}"
        return f"a number of seconds from {self.lo:.10g} to {self.hi:.10g}"

    def parse(self, value: object, text: bool) -> object:
        number = _number(value, text, float)
        if number is None:
            raise Invalid("not a valid number of seconds", self.expected)
        if self.above_lo and number <= self.lo:
            raise Invalid("out of range", self.expected)
        return float(_bounded(number, self.lo, self.hi, self.expected))

    def show(self, value: object) -> str:
        return f"{value:.10g}" if isinstance(value, float | int) else str(value)


@dataclass(frozen=True, slots=True)
class Integer:
    lo: int
    hi: int
    optional: bool = False  # null (YAML ~) stands for "not set"

    @property
    def metavar(self) -> str:
        return "N"

    @property
    def expected(self) -> str:
        return f"an integer from {self.lo} to {self.hi}"

    def parse(self, value: object, text: bool) -> object:
        if value is None and self.optional:
            return None
        number = _number(value, text, int)
        if number is None:
            raise Invalid("not a valid integer", self.expected)
        return _bounded(number, self.lo, self.hi, self.expected)

    def show(self, value: object) -> str:
        return "null" if value is None else str(value)


@dataclass(frozen=True, slots=True)
class Flag:
    @property
    def metavar(self) -> str:
        return "BOOL"

    @property
    def expected(self) -> str:
        return "true or false"

    def parse(self, value: object, text: bool) -> object:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and text and value.strip().lower() in _TRUE + _FALSE:
            return value.strip().lower() in _TRUE
        raise Invalid("not a valid boolean", self.expected)

    def show(self, value: object) -> str:
        return str(value).lower()


@dataclass(frozen=True, slots=True)
class Choice:
    options: tuple[str, ...]
    optional: bool = False

    @property
    def metavar(self) -> str:
        return "{" + ",".join(self.options) + "}"

    @property
    def expected(self) -> str:
        return "one of " + ", ".join(self.options)

    def parse(self, value: object, text: bool) -> object:
        if value is None and self.optional:
            return None
        if isinstance(value, str) and value in self.options:
            return value
        if isinstance(value, str) and value.lower() in self.options:
            return value.lower()  # DEBUG, Path: the options are all lower case
        hint = close_match(value, list(self.options)) if isinstance(value, str) else None
        raise Invalid("not a valid choice", self.expected, hint)

    def show(self, value: object) -> str:
        return "null" if value is None else str(value)


@dataclass(frozen=True, slots=True)
class Umask:
    """Octal permission bits, always written as text: YAML reads an unquoted 022 as 18."""

    @property
    def metavar(self) -> str:
        return "OCTAL"

    @property
    def expected(self) -> str:
        return "octal digits from 000 to 777, quoted in YAML (such as '022')"

    def parse(self, value: object, text: bool) -> object:
        if isinstance(value, str):
            match = re.fullmatch(r"\s*(?:0o)?([0-7]{1,4})\s*", value)
            if match is None:
                raise Invalid("not a valid umask", self.expected)
            return _bounded(int(match.group(1), 8), 0, 0o777, self.expected)
        raise Invalid("not a valid umask", self.expected)

    def show(self, value: object) -> str:
        return f"{value:03o}" if isinstance(value, int) else str(value)


@dataclass(frozen=True, slots=True)
class Text:
    description: str = "text"
    optional: bool = True
    prefixes: tuple[str, ...] = ()  # the text must start with one of these
    forbidden: str = ""  # characters the text must not contain
    bare: bool = False  # a URL without user:password@ (credentials come another way)

    @property
    def metavar(self) -> str:
        return "URL" if self.prefixes else "TEXT"

    @property
    def expected(self) -> str:
        return self.description

    def parse(self, value: object, text: bool) -> object:
        if value is None and self.optional:
            return None
        if not isinstance(value, str) or not value.strip():
            raise Invalid("not valid text", self.expected)
        if self.prefixes and not value.startswith(self.prefixes):
            raise Invalid("not a valid URL", self.expected)
        if self.bare and "@" in urlsplit(value).netloc:
            raise Invalid("a URL with credentials in it", self.expected, concealed=True)
        for char in self.forbidden:
            if char in value:
                raise Invalid(f"not allowed to hold {char!r}", self.expected)
        return value

    def show(self, value: object) -> str:
        return "null" if value is None else str(value)


@dataclass(frozen=True, slots=True)
class FilePath:
    """A path; `existing_file` demands a regular file now, `new_file` a path desfs will
    write a file at (not a directory), otherwise a path that, if it exists, is a directory."""

    existing_file: bool = False
    new_file: bool = False

    @property
    def metavar(self) -> str:
        return "FILE" if self.existing_file or self.new_file else "DIR"

    @property
    def expected(self) -> str:
        if self.new_file:
            return "a file path (not a directory)"
        return "the path of an existing file" if self.existing_file else "a directory path"

    def parse(self, value: object, text: bool) -> object:
        if value is None:
            return None
        if not isinstance(value, str) or not value.strip():
            raise Invalid("not a valid path", self.expected)
        path = Path(value).expanduser()
        try:
            self._check(path)
        except OSError as exc:  # EACCES on a parent: pathlib lets it through
            raise Invalid(f"unreachable ({exc.strerror or exc})", self.expected) from None
        return path

    def _check(self, path: Path) -> None:
        if self.existing_file and not path.is_file():
            raise Invalid("not an existing file", self.expected)
        if self.new_file and path.is_dir():
            raise Invalid("a directory", self.expected)
        if not (self.existing_file or self.new_file) and path.exists() and not path.is_dir():
            raise Invalid("not a directory", self.expected)

    def show(self, value: object) -> str:
        return "null" if value is None else str(value)
