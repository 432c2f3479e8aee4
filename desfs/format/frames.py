"""Where compressed frames end: a structural walk over the stored bytes of an entry.

The decoders stop once an entry's recorded size is produced, and a stream decoder never
says whether its frame was complete: a zstd frame cut inside its checksum, or one whose
last block never comes, decodes to the right number of bytes all the same. So every
stored byte also passes through a walker that follows the frame structure (RFC 8878 §3:
frame header, block headers, checksum; skippable frames) without decompressing, and at
the end says whether the bytes formed whole frames that end exactly at the stored length.
Each block costs one header read, so the walk is cheap next to decompression.
"""

from __future__ import annotations

from desfs.errors import EntryError

ZSTD_MAGIC = 0xFD2FB528
SKIPPABLE_MASK = 0xFFFFFFF0
SKIPPABLE_MAGIC = 0x184D2A50
_FCS_BYTES = (0, 2, 4, 8)
_DICT_BYTES = (0, 1, 2, 4)


class ZstdFrameWalker:
    """Feed it every stored byte in order; `complete` tells whether they ended on a frame
    boundary after at least one zstd frame. Raises EntryError on bytes that cannot be a
    frame sequence (a bad magic, a reserved block type)."""

    def __init__(self) -> None:
        self._pending = b""  # bytes of the header being read
        self._skip = 0  # payload bytes to pass over before the next header
        self._want = "magic"  # what the next header is
        self._checksum = False
        self._frames = 0
        self.consumed = 0

    @property
    def complete(self) -> bool:
        return self._want == "magic" and self._skip == 0 and not self._pending and self._frames > 0

    def feed(self, data: bytes) -> None:
        view = memoryview(data)
        base = self.consumed
        self.consumed += len(view)
        at = 0
        while at < len(view):
            if self._skip:
                step = min(self._skip, len(view) - at)
                self._skip -= step
                at += step
                continue
            need = self._header_size()
            take = min(need - len(self._pending), len(view) - at)
            self._pending += bytes(view[at : at + take])
            at += take
            if len(self._pending) == need:
                header, self._pending = self._pending, b""
                self._advance(header, base + at - need)

    def _header_size(self) -> int:
        if self._want in ("magic", "skip_size", "checksum"):
            return 4
        if self._want == "descriptor":
            return 1
        if self._want == "frame_rest":
            return self._rest
        return 3  # block header

    def _advance(self, header: bytes, offset: int) -> None:
        value = int.from_bytes(header, "little")
        if self._want == "magic":
            if value == ZSTD_MAGIC:
                self._want = "descriptor"
            elif value & SKIPPABLE_MASK == SKIPPABLE_MAGIC:
                self._want = "skip_size"
            else:
                raise EntryError(f"zstd: no frame magic at stored byte {offset}")
        elif self._want == "skip_size":
            self._skip, self._want = value, "magic"
        elif self._want == "descriptor":
            self._descriptor(value)
        elif self._want == "frame_rest":
            self._want = "block"
        elif self._want == "block":
            self._block(value)
        else:  # checksum
            self._frames += 1
            self._want = "magic"

    def _descriptor(self, value: int) -> None:
        if value & 0x08:
            raise EntryError("zstd: frame header sets its reserved bit")
        single = bool(value & 0x20)
        fcs = _FCS_BYTES[value >> 6] or (1 if single else 0)
        self._checksum = bool(value & 0x04)
        self._rest = (0 if single else 1) + _DICT_BYTES[value & 0x03] + fcs
        self._want = "frame_rest" if self._rest else "block"

    def _block(self, value: int) -> None:
        last, kind, size = value & 1, (value >> 1) & 3, value >> 3
        if kind == 3:
            raise EntryError("zstd: reserved block type")
        self._skip = 1 if kind == 1 else size
        if last:
            if self._checksum:
                self._want = "checksum"
            else:
                self._frames += 1
                self._want = "magic"
