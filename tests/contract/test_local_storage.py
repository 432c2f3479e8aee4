"""LocalStorage beyond the shared contract: nothing outside the root is ever read or
listed, and directory-tree quirks (empty dirs, FIFOs, symlinks) look like S3 would."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from desfs.errors import ObjectChanged, ObjectMissing, UsageError
from desfs.storage.local import LocalStorage


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_bytes(b"not yours")
    root = tmp_path / "root"
    (root / "day").mkdir(parents=True)
    (root / "day" / "a.des").write_bytes(b"AAAA")
    (root / "day" / ".b.des.tmp").write_bytes(b"partial")
    (root / "empty" / "deeper").mkdir(parents=True)
    (root / "escape.txt").symlink_to(outside / "secret.txt")
    (root / "escape-dir").symlink_to(outside)
    (root / "inside-link").symlink_to(root / "day" / "a.des")
    os.mkfifo(root / "fifo")
    return root


@pytest.mark.parametrize(
    "key",
    [
        "../outside/secret.txt",
        "day/../../outside/secret.txt",
        "./day/a.des",
        "day//a.des",
        "escape.txt",
        "escape-dir/secret.txt",
        str(Path("/etc/hostname")),
        "fifo",
        "day",
        "empty",
    ],
)
def test_keys_outside_or_not_files_are_missing(tree: Path, key: str) -> None:
    storage = LocalStorage(tree)
    with pytest.raises(ObjectMissing):
        storage.read_object(key)
    with pytest.raises(ObjectMissing):
        storage.read_suffix(key, 10)
    with pytest.raises(ObjectMissing):
        storage.read_range(key, 0, 1, None)


def test_listing_hides_what_reads_refuse(tree: Path) -> None:
    page = LocalStorage(tree).list_page("", "/", None)

    assert [o.key for o in page.objects] == ["inside-link"]
    assert page.prefixes == ("day/",)  # no empty dirs, no symlinked dirs


def test_hidden_temp_files_are_listed(tree: Path) -> None:
    page = LocalStorage(tree).list_page("day/", "/", None)
    assert [o.key for o in page.objects] == ["day/.b.des.tmp", "day/a.des"]


def test_symlink_inside_root_reads_its_target(tree: Path) -> None:
    assert LocalStorage(tree).read_object("inside-link").data == b"AAAA"


def test_listing_with_a_non_slash_delimiter(tmp_path: Path) -> None:
    for name in ("20241203_AB_0001.des", "20241203_AB_0002.des", "20241204_CD_0001.des", "x"):
        (tmp_path / name).write_bytes(b".")
    (tmp_path / "20241203_dir").mkdir()
    (tmp_path / "20241203_dir" / "f").write_bytes(b".")

    page = LocalStorage(tmp_path).list_page("2024120", "_", None)

    assert page.objects == ()
    assert page.prefixes == ("20241203_", "20241204_")


def test_pagination_with_a_non_slash_delimiter_hands_out_each_prefix_once(tmp_path: Path) -> None:
    for name in ("a_1", "a_2", "b_1", "b_2", "c"):
        (tmp_path / name).write_bytes(b".")
    storage = LocalStorage(tmp_path, page_size=1)
    seen: list[str] = []
    token = None
    while True:
        page = storage.list_page("", "_", token)
        seen += [o.key for o in page.objects] + list(page.prefixes)
        token = page.next_token
        if token is None:
            break
    assert seen == ["a_", "b_", "c"]


def test_bad_continuation_token_is_a_usage_error(tree: Path) -> None:
    with pytest.raises(UsageError):
        LocalStorage(tree).list_page("", "/", "%%%not-a-token")


def test_root_must_be_a_directory(tmp_path: Path) -> None:
    with pytest.raises(UsageError):
        LocalStorage(tmp_path / "missing")


def test_listing_prefix_through_a_symlinked_dir_is_empty(tree: Path) -> None:
    page = LocalStorage(tree).list_page("escape-dir/", "/", None)
    assert (page.objects, page.prefixes, page.next_token) == ((), (), None)


def test_if_match_uses_size_and_mtime(tree: Path) -> None:
    storage = LocalStorage(tree)
    blob = storage.read_suffix("day/a.des", 2)
    st = (tree / "day" / "a.des").stat()
    assert blob.etag == f"{st.st_size}-{st.st_mtime_ns}-{st.st_ctime_ns}-{st.st_ino}"
    assert storage.read_range("day/a.des", 1, 3, blob.etag) == b"AA"


def test_a_rewrite_in_place_with_size_and_mtime_kept_is_a_change(tree: Path) -> None:
    """`rsync --inplace -t` or `cp -p` over a container: same size, same mtime, new bytes."""
    storage = LocalStorage(tree)
    path = tree / "day" / "a.des"
    blob = storage.read_suffix("day/a.des", 2)
    before = path.stat()
    with open(path, "r+b") as out:
        out.write(b"Z" * before.st_size)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert path.stat().st_size == before.st_size
    assert path.stat().st_mtime_ns == before.st_mtime_ns
    with pytest.raises(ObjectChanged):
        storage.read_range("day/a.des", 1, 3, blob.etag)
