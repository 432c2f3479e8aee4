"""External payloads: Datavision external files and DES BigFiles under `_bigFiles/`.

The key comes from `namespace.layout.external_key` (never outside the source, never via
`..`). A small payload is fetched whole, its size checked and, for a BigFile, its sha256;
a large one is first probed with a one-byte suffix GET, which gives its real size and
ETag without a HEAD, and then read in ranges with `If-Match` like any container.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from desfs.archive.opened import Container
from desfs.errors import EntryError
from desfs.format.model import Entry
from desfs.namespace.layout import external_key
from desfs.storage.aio import AsyncStore


@dataclass(frozen=True, slots=True)
class ExternalObject:
    key: str
    etag: str | None  # known once probed (large payloads)


class ExternalPayloads:
    def __init__(self, storage: AsyncStore, bigfiles_dir: str, small_bytes: int) -> None:
        self._storage = storage
        self._bigfiles = bigfiles_dir
        self._small = small_bytes
        self._probed: dict[tuple[str, str, int], ExternalObject] = {}

    def key_of(self, container: Container, entry: Entry) -> str | None:
        if entry.elsewhere is not None:
            return entry.elsewhere.key  # another store's data file
        return external_key(
            container.ref.key,
            entry,
            container.index.format,
            self._bigfiles,
            self._storage.key_prefix,
        )

    async def locate(self, container: Container, entry: Entry) -> ExternalObject:
        """The payload's object; a large one is probed (once) to check its size."""
        state = (*container.object_id, entry.position)
        found = self._probed.get(state)
        if found is not None:
            return found
        key = self.key_of(container, entry)
        if key is None:
            raise EntryError(f"{container.ref.key}: entry {entry.name!r} has no safe external key")
        if entry.size <= self._small:
            return ExternalObject(key, None)
        probe = await self._storage.read_suffix(key, 1)
        if probe.size != entry.size:
            raise EntryError(
                f"{container.ref.key}: external {key} has {probe.size} bytes, "
                f"the index says {entry.size}"
            )
        found = self._probed[state] = ExternalObject(key, probe.etag)
        if len(self._probed) > 4096:
            self._probed.pop(next(iter(self._probed)))
        return found

    async def read_whole(self, container: Container, entry: Entry, target: ExternalObject) -> bytes:
        blob = await self._storage.read_object(target.key)
        check_payload(container, target.key, entry, blob.data)
        return blob.data


def check_payload(container: Container, key: str, entry: Entry, data: bytes) -> None:
    where = f"{container.ref.key}: external {key}"
    if len(data) != entry.size:
        raise EntryError(f"{where} has {len(data)} bytes, the index says {entry.size}")
    assert entry.external is not None
    if entry.external.sha256 is not None:
        digest = hashlib.sha256(data).hexdigest()
        if digest != entry.external.sha256:
            raise EntryError(f"{where}: sha256 {digest} does not match the index")
