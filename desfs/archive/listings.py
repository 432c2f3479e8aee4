"""Which catalog a source needs: DES days and shards, or another store's units.

Chosen once, by the `layout` setting or by the source's first root listing (the same
LIST the catalog would make anyway, handed over, so detection costs no request).
"""

from __future__ import annotations

from desfs.archive.catalog import Catalog, forced_layout
from desfs.archive.store_catalog import StoreCatalog
from desfs.cache.singleflight import SingleFlight
from desfs.namespace.layout import STORE_LAYOUTS
from desfs.namespace.stores import detect_store
from desfs.settings.sections import CacheSettings, LayoutSettings
from desfs.storage.aio import AsyncStore
from desfs.storage.base import ListPage

SourceCatalog = Catalog | StoreCatalog


class Listings:
    def __init__(self, storage: AsyncStore, layout: LayoutSettings, cache: CacheSettings) -> None:
        self._storage = storage
        self._layout = layout
        self._cache = cache
        self._chosen: SourceCatalog | None = None
        forced = forced_layout(layout.layout)
        if forced is not None:
            (kind,) = forced
            store = kind in STORE_LAYOUTS
            self._chosen = StoreCatalog(storage, kind, cache) if store else self._des()
        self._flights: SingleFlight[str, SourceCatalog] = SingleFlight()

    def current(self) -> SourceCatalog | None:
        """The catalog, once the source has been listed (or its layout was set)."""
        return self._chosen

    async def get(self) -> SourceCatalog:
        if self._chosen is not None:
            return self._chosen
        return await self._flights.run("detect", self._detect)

    async def _detect(self) -> SourceCatalog:
        first = await self._storage.list_page("", "/", None)
        kind = detect_store((obj.key for obj in first.objects), first.prefixes)
        if kind is None:
            self._chosen = self._des(first)
        else:
            self._chosen = StoreCatalog(self._storage, kind, self._cache, first=first)
        return self._chosen

    def _des(self, first: ListPage | None = None) -> Catalog:
        return Catalog(self._storage, self._layout, self._cache, first=first)
