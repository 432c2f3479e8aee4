"""Directories over HTTP as JSON: the root's days, a day's shards, a directory of a shard.

Large directories come in pages (`?offset=N&limit=M`, at most `serve.page_size`): each
reply carries the `next` offset, or null on the last page. Listing costs what `ls` costs
on the mount: a LIST per listing TTL for days and shards, the container's open for a
shard, nothing more.
"""

from __future__ import annotations

from desfs.archive.engine import Archive
from desfs.archive.paths import DayDir, RootDir, ShardDir
from desfs.errors import UsageError
from desfs.namespace.tree import DirNode, FileNode

Row = dict[str, object]


async def listing(
    archive: Archive, target: RootDir | DayDir | ShardDir, query: dict[str, str], page: int
) -> dict[str, object]:
    offset, limit = _window(query, page)
    rows: list[Row]
    shown: list[Row]
    if isinstance(target, RootDir):
        rows = [{"name": d, "type": "day"} for d in await archive.days()]
        path, total, shown = "/", len(rows), rows[offset : offset + limit]
    elif isinstance(target, DayDir):
        rows = [
            {"name": shard, "type": "shard", "size": ref.size, "container": ref.key}
            for shard, ref in await archive.shards(target.day)
        ]
        path, total, shown = f"/{target.day}/", len(rows), rows[offset : offset + limit]
    else:
        children = target.container.tree.listdir(target.path)
        shard = target.container.ref.name.shard
        path = f"/{target.day}/{shard}/{target.path}".rstrip("/") + "/"
        total = len(children)
        shown = [_row(name, node) for name, node in children[offset : offset + limit]]
    after = offset + len(shown)
    return {
        "path": path,
        "entries": shown,
        "total": total,
        "next": after if after < total else None,
    }


def _row(name: str, node: FileNode | DirNode) -> Row:
    if isinstance(node, FileNode):
        row: Row = {"name": name, "type": "file", "size": node.entry.size}
        if node.entry.error:
            row["error"] = node.entry.error
        return row
    return {"name": name, "type": "directory"}


def _window(query: dict[str, str], page: int) -> tuple[int, int]:
    try:
        offset = int(query.get("offset", "0"))
        limit = int(query.get("limit", str(page)))
    except ValueError:
        raise UsageError("offset and limit must be integers") from None
    if offset < 0 or limit < 1:
        raise UsageError("offset must be >= 0 and limit >= 1")
    return offset, min(limit, page)
