"""Well-formed container bytes built in memory with desfs's own writers.

For lying or corrupt containers use `tests.support.fixtures`, whose field-level builder
is independent of the writers. DES2 version 1 is read-only history, so its two layouts
are written here directly from des-formats.md §2.4.
"""

from __future__ import annotations

import hashlib
import io
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from desfs.format.codecs import decode_meta, decode_payload
from desfs.format.container import parse_whole
from desfs.format.des2_writer import Des2Writer
from desfs.format.deshead1_writer import DesHead1Writer
from desfs.format.model import Codec
from desfs.format.writer import compress, encode_name

Name = str | bytes
Meta = Mapping[str, object] | bytes | None


@dataclass(frozen=True)
class ExternalPayload:
    """A DESHEAD1 external entry: `data` lives outside the container at `key`."""

    data: bytes
    key: str


@dataclass(frozen=True)
class BigPayload:
    """A DES2 BigFile entry: `data` lives outside the container under its SHA-256."""

    data: bytes

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


def build_deshead1(entries: Sequence[tuple[Name, bytes | ExternalPayload, Meta]]) -> bytes:
    """A DESHEAD1 container, as the upstream HEAD writer would write these entries."""
    out = io.BytesIO()
    writer = DesHead1Writer(out)
    for name, payload, meta in entries:
        if isinstance(payload, ExternalPayload):
            writer.add_external(name, len(payload.data), payload.key, meta)
        else:
            writer.add(name, payload, meta)
    writer.close()
    return out.getvalue()


def build_des2(
    entries: Sequence[tuple[Name, bytes | BigPayload, Meta]],
    codec: Codec = Codec.NONE,
    version: int = 2,
    level: int | None = None,
    smart_skip: bool = False,
) -> bytes:
    """A DES2 container; version 1 gives the v1 "codec" layout (no meta, no BigFiles)."""
    if version == 1:
        plain: list[tuple[Name, bytes]] = []
        for name, payload, meta in entries:
            if isinstance(payload, BigPayload) or meta:
                raise ValueError("DES2 version 1 has neither BigFiles nor metadata")
            plain.append((name, payload))
        return build_des2_v1(plain, "codec", codec, level)
    out = io.BytesIO()
    writer = Des2Writer(out, codec, level, smart_skip)
    for name, payload, meta in entries:
        if isinstance(payload, BigPayload):
            writer.add_bigfile(name, payload.sha256, len(payload.data), meta)
        else:
            writer.add(name, payload, meta)
    writer.close()
    return out.getvalue()


def build_des2_v1(
    entries: Sequence[tuple[Name, bytes]],
    variant: str = "codec",
    codec: Codec = Codec.NONE,
    level: int | None = None,
) -> bytes:
    """A DES2 version 1 container in the "codec" or the "nocodec" (first) layout."""
    if variant not in ("codec", "nocodec"):
        raise ValueError(f"unknown v1 variant {variant!r}")
    if variant == "nocodec" and codec is not Codec.NONE:
        raise ValueError('the "nocodec" layout stores raw payloads only')
    data = bytearray()
    index = bytearray(struct.pack("<I", len(entries)))
    for name, payload in entries:
        raw = encode_name(name)
        stored = compress(payload, codec, level)
        offset = 8 + len(data)
        data += stored
        index += struct.pack("<H", len(raw)) + raw
        if variant == "nocodec":
            index += struct.pack("<QQ", offset, len(stored))
        else:
            fields = (offset, len(stored), codec, len(stored), len(payload))
            index += struct.pack("<QQBQQ", *fields)
    footer = b"DESI" + struct.pack("<Q", len(index))
    return b"DES2\x01\x00\x00\x00" + bytes(data) + bytes(index) + footer


def read_back(
    container: bytes, externals: Mapping[str, bytes] | None = None
) -> list[tuple[bytes, bytes, dict[str, object]]]:
    """Every entry of a container as (name, logical bytes, meta), via desfs's own parser.

    `externals` maps an external key (DESHEAD1 `external_key`, or `_bigFiles/<sha256>`
    for DES2) to the object's bytes; a missing one raises KeyError.
    """
    index = parse_whole(container)
    result = []
    for entry in index.entries:
        if entry.external is None:
            stored = container[entry.offset : entry.offset + entry.stored_length]
        elif entry.external.sha256 is not None:
            stored = (externals or {})[f"_bigFiles/{entry.external.sha256}"]
        else:
            stored = (externals or {})[entry.external.key_hint or ""]
        result.append((entry.name, decode_payload(entry, stored), decode_meta(entry.meta)))
    return result
