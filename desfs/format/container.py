"""Opening any DES container from its tail (and head) in as few round trips as possible.

`open_container` is the single entry point for local files and S3 alike: the caller
hands over the object's size and last bytes, and gets back either the parsed index or
the exact extra byte ranges it must fetch (all at once) before calling again.
"""

from __future__ import annotations

from desfs.errors import FormatError, NotAContainer, PartialContainer
from desfs.format import des2, deshead1
from desfs.format.model import ContainerIndex, NeedBytes

HEAD_WINDOW = 16  # enough for both headers (DES2: 8 bytes, DESHEAD1: 16 bytes)
# Ranges closer than this are fetched as one: a few KiB more beats one more request.
MERGE_GAP = 4096


def open_container(size: int, tail: bytes, head: bytes | None = None) -> ContainerIndex | NeedBytes:
    """Parse the container whose last `len(tail)` bytes are `tail`.

    `head` is the object's first bytes (at least 8, 16 preferred) or None. Returns the
    index, or the ranges still missing: a range ending where the tail begins extends the
    tail, a range starting at 0 is the head. Raises NotAContainer, PartialContainer or
    another FormatError when the bytes at hand already prove the object unusable.
    """
    if size < 0 or len(tail) > size:
        raise FormatError(f"tail of {len(tail)} bytes for an object of {size} bytes")
    if size == 0:
        raise NotAContainer("empty object")
    tail_start = size - len(tail)
    if head is not None and len(head) >= tail_start:
        tail = head[:tail_start] + tail  # head and tail meet: the whole object is here
        tail_start = 0
    if tail_start == 0:
        head = tail[:HEAD_WINDOW]
    elif head is not None and len(head) < min(des2.HEADER_SIZE, size):
        head = None  # too short to tell the formats apart; ask for it properly
    if head is None:
        return _open_tail_only(size, tail)
    return _open_with_head(size, tail, head)


def parse_whole(data: bytes) -> ContainerIndex:
    """Parse a container held entirely in memory (local verify, tests)."""
    result = open_container(len(data), data)
    if isinstance(result, NeedBytes):
        raise FormatError(f"internal: a whole object still needs {result.ranges}")
    return result


def _open_with_head(size: int, tail: bytes, head: bytes) -> ContainerIndex | NeedBytes:
    if head[: len(des2.HEAD_MAGIC)] == des2.HEAD_MAGIC:
        return _open_des2(size, tail, head)
    if head[: len(deshead1.HEAD_MAGIC)] == deshead1.HEAD_MAGIC:
        deshead1.check_header(head)
        return _open_deshead1(size, tail, head)
    raise NotAContainer(f"no DES head magic at offset 0 (found {head[:8]!r})")


def _open_tail_only(size: int, tail: bytes) -> ContainerIndex | NeedBytes:
    tail_start = size - len(tail)
    try:
        index_offset = des2.read_footer(size, tail)
    except FormatError:
        index_offset = None  # not a usable DES2 footer: maybe a DESHEAD1 one
    if index_offset is not None:
        # The version byte in the header decides the index layout: fetch it too.
        need = [(0, min(des2.HEADER_SIZE, tail_start))]
        if index_offset < tail_start:
            need.append((index_offset, tail_start))
        return _need(need, 0)
    if deshead1.has_footer_magic(size, tail):
        return _open_deshead1(size, tail, None)
    # No footer in sight: fetch the head to tell a partial container from a stranger,
    # and the rest of the last 72 bytes when the tail was too short to show a footer.
    need = [(0, min(HEAD_WINDOW, tail_start))]
    footer_start = max(0, size - deshead1.FOOTER_SIZE)
    if footer_start < tail_start:
        need.append((footer_start, tail_start))
    return _need(need, 0)


def _open_des2(size: int, tail: bytes, head: bytes) -> ContainerIndex | NeedBytes:
    tail_start = size - len(tail)
    footer_start = max(0, size - des2.FOOTER_SIZE)
    if size >= des2.MIN_SIZE and footer_start < tail_start:
        return _need([(footer_start, tail_start)], len(head))
    index_offset = des2.read_footer(size, tail)
    if index_offset is None:
        raise PartialContainer(
            f"DES2 head magic but no DESI footer at offset {max(0, size - des2.FOOTER_SIZE)} "
            f"(object of {size} bytes)"
        )
    version = des2.parse_header(head)
    if index_offset < tail_start:
        return _need([(index_offset, tail_start)], len(head))
    return des2.parse_index(version, size, index_offset, tail, tail_start)


def _open_deshead1(size: int, tail: bytes, head: bytes | None) -> ContainerIndex | NeedBytes:
    tail_start = size - len(tail)
    head_len = 0 if head is None else len(head)
    footer_start = size - deshead1.FOOTER_SIZE
    if size >= deshead1.MIN_SIZE and footer_start < tail_start:
        return _need([(footer_start, tail_start)], head_len)
    if not deshead1.has_footer_magic(size, tail):
        if head is not None:
            raise PartialContainer(
                f"DESHEAD1 head magic but no DESFOOT1 footer at offset "
                f"{max(0, footer_start)} (object of {size} bytes)"
            )
        raise NotAContainer(f"no DESFOOT1 footer at offset {footer_start}")
    footer = deshead1.parse_footer(tail[len(tail) - deshead1.FOOTER_SIZE :], size)
    if footer.meta_start < tail_start:
        return _need([(footer.meta_start, tail_start)], head_len)
    return deshead1.parse_index(footer, size, tail, tail_start)


def _need(ranges: list[tuple[int, int]], head_len: int) -> NeedBytes:
    """Sorted, non-empty ranges, neighbours within MERGE_GAP merged into one request.

    The first `head_len` bytes are already known, so no range asks for them again; a
    range clipped this way still ends at the tail and so meets the head after the fetch.
    """
    merged: list[tuple[int, int]] = []
    clipped = ((max(start, head_len), end) for start, end in ranges)
    for start, end in sorted(r for r in clipped if r[0] < r[1]):
        if merged and start <= merged[-1][1] + MERGE_GAP:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    if not merged:
        raise FormatError("internal: asked for no bytes")
    return NeedBytes(tuple(merged))
