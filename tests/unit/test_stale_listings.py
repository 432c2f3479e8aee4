"""Stale-if-error: listings keep serving while the store is away, never when it says no."""

from __future__ import annotations

from pathlib import Path

import pytest

from desfs.archive.catalog import Catalog
from desfs.errors import AccessDenied, StorageError, StorageTimeout
from desfs.settings.sections import CacheSettings, LayoutSettings
from desfs.storage.aio import AsyncStorage
from desfs.storage.base import ListPage
from desfs.storage.local import LocalStorage
from tests.support.builders import build_deshead1


class Flaky(AsyncStorage):
    def __init__(self, root: Path) -> None:
        super().__init__(LocalStorage(root), 2)
        self.failure: StorageError | None = None
        self.lists = 0

    async def list_page(self, prefix: str, delimiter: str, token: str | None) -> ListPage:
        self.lists += 1
        if self.failure is not None:
            raise type(self.failure)(str(self.failure))
        return await super().list_page(prefix, delimiter, token)


class Clock:
    now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def source(tmp_path: Path) -> Path:
    (tmp_path / "2024-12-03").mkdir()
    (tmp_path / "2024-12-03" / "a.des").write_bytes(build_deshead1([("f", b"x", None)]))
    return tmp_path


async def test_an_outage_longer_than_the_ttl_serves_the_last_listings(
    source: Path, caplog: pytest.LogCaptureFixture
) -> None:
    storage, clock = Flaky(source), Clock()
    catalog = Catalog(storage, LayoutSettings(), CacheSettings(listing_ttl=5), clock)
    assert await catalog.days() == ("2024-12-03",)
    assert list((await catalog.day("2024-12-03")).shards) == ["a"]
    storage.failure = StorageTimeout("no answer")
    for _ in range(20):  # 100 s of outage, twenty times the TTL
        clock.now += 5.1
        assert await catalog.days() == ("2024-12-03",)
        assert list((await catalog.day("2024-12-03")).shards) == ["a"]
    assert catalog.stale_served >= 20
    warnings = [r for r in caplog.records if "does not answer" in r.getMessage()]
    assert len(warnings) == 1, "one warning per outage"
    storage.failure = None
    clock.now += 5.1
    (source / "2024-12-03" / "b.des").write_bytes(build_deshead1([("g", b"y", None)]))
    assert list((await catalog.day("2024-12-03")).shards) == ["a", "b"]
    assert any("answers again" in r.getMessage() for r in caplog.records)


async def test_while_away_the_store_is_asked_at_most_every_few_seconds(source: Path) -> None:
    storage, clock = Flaky(source), Clock()
    catalog = Catalog(storage, LayoutSettings(), CacheSettings(listing_ttl=60), clock)
    await catalog.days()
    storage.failure = StorageError("503 after retries")
    clock.now += 61
    before = storage.lists
    for _ in range(100):  # a burst of lookups inside one second
        await catalog.days()
    assert storage.lists - before == 1


async def test_a_store_that_says_no_is_not_served_stale(source: Path) -> None:
    storage, clock = Flaky(source), Clock()
    catalog = Catalog(storage, LayoutSettings(), CacheSettings(listing_ttl=5), clock)
    await catalog.days()
    storage.failure = AccessDenied("403")
    clock.now += 6
    with pytest.raises(AccessDenied):
        await catalog.days()


async def test_nothing_listed_yet_means_the_error_itself(source: Path) -> None:
    storage = Flaky(source)
    storage.failure = StorageTimeout("no answer")
    catalog = Catalog(storage, LayoutSettings(), CacheSettings(), Clock())
    with pytest.raises(StorageTimeout):
        await catalog.days()
