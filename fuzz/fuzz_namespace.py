"""atheris harness: tombstone sidecars, raw entry names and external payload keys.

Input layout: byte 0 picks the target, the rest is its input. Target 0 reads the rest as a
`.meta` sidecar (a set of uids or FormatError); target 1 splits it at newlines into raw
entry names and builds a shard tree (every exposed path safe, every raw name reaching its
winning entry); target 2 splits it into a container key, a name, a recorded external key
and a hash, and requires any external key desfs makes to stay under `_bigFiles/`.

    python fuzz/seeds.py fuzz/corpus
    python fuzz/fuzz_namespace.py fuzz/corpus/namespace -max_total_time=600
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports():
    from desfs.errors import FormatError
    from desfs.format.model import Entry, External, Format
    from desfs.namespace.layout import external_key
    from desfs.namespace.tombstones import tombstoned_uids
    from desfs.namespace.tree import FileNode, build_tree

BIGFILES = "_bigFiles"


def sidecar(data: bytes) -> None:
    try:
        uids = tombstoned_uids(data)
    except FormatError:
        return
    assert all(isinstance(uid, str) for uid in uids)


def tree(data: bytes) -> None:
    names = data.split(b"\n")
    entries = [
        Entry(name, i, 1, 8, 1, deleted=name.endswith(b"\x08")) for i, name in enumerate(names)
    ]
    shard = build_tree(entries)
    exposed = set()
    for path, node in shard.walk():
        parts = path.split("/")
        assert all(p not in ("", ".", "..") and "\x00" not in p for p in parts), path
        assert all(len(p.encode()) <= 255 for p in parts), path
        assert shard.resolve(path) == node
        if isinstance(node, FileNode):
            exposed.add(node.position)
    hidden = {h.position for h in shard.hidden}
    assert exposed.isdisjoint(hidden) and exposed | hidden == set(range(len(entries)))
    for raw, entry in {e.name: e for e in entries}.items():
        assert shard.by_raw_name(raw) is entry


def external(data: bytes) -> None:
    fields = data.decode("utf-8", "surrogateescape").split("\n")
    container, name, hint, sha = [*fields, "", "", "", ""][:4]
    for fmt in (Format.DESHEAD1, Format.DES2):
        entry = Entry(name.encode("utf-8", "surrogateescape"), 0, 1, 0, 0,
                      external=External(sha256=sha, key_hint=hint))  # fmt: skip
        key = external_key(container, entry, fmt, BIGFILES, "")
        if key is None:
            continue
        parts = key.split("/")
        unsafe = [p for p in parts if p in ("", ".", "..") or "\x00" in p or "\\" in p]
        assert not unsafe, key
        assert BIGFILES in parts[:-1], key


def test_one_input(raw: bytes) -> None:
    if not raw:
        return
    target, data = raw[0] % 3, raw[1:]
    (sidecar, tree, external)[target](data)


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
