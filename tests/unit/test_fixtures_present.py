"""The upstream fixtures ship with the repository: a clone with nothing beside it must
test against all of them, never silently against none."""

from __future__ import annotations

from pathlib import Path

from tests.support.fixtures import UPSTREAM, cases, containers


def test_every_upstream_case_is_in_the_repository() -> None:
    assert UPSTREAM.parents[1] == Path(__file__).resolve().parents[1]  # inside tests/
    assert len(cases()) == 6
    assert len(containers()) == 51
