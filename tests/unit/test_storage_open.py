"""SOURCE parsing: s3:// URLs, S3 settings validation and `open_storage` dispatch."""

from __future__ import annotations

from pathlib import Path

import pytest

from desfs.errors import NotFound, UsageError
from desfs.settings.sections import S3Settings
from desfs.storage.local import LocalStorage
from desfs.storage.open import open_storage
from desfs.storage.s3 import S3Storage
from desfs.storage.s3_url import parse_s3_url


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("s3://bucket", ("bucket", "")),
        ("s3://bucket/", ("bucket", "")),
        ("s3://bucket/day", ("bucket", "day/")),
        ("s3://bucket/a/b/", ("bucket", "a/b/")),
        ("s3://my.bucket-1//a//", ("my.bucket-1", "a/")),
    ],
)
def test_parse_s3_url(url: str, expected: tuple[str, str]) -> None:
    assert parse_s3_url(url) == expected


@pytest.mark.parametrize(
    "url", ["s3://", "s3:///prefix", "gs://bucket", "s3://user@bucket/x", "s3://b/x?y=1"]
)
def test_parse_s3_url_rejects(url: str) -> None:
    with pytest.raises(UsageError):
        parse_s3_url(url)


@pytest.mark.parametrize(
    "bad",
    [
        {"addressing_style": "sideways"},
        {"prefix": "no-slash"},
        {"connect_timeout": 0},
        {"read_timeout": -1.0},
        {"max_attempts": 0},
        {"max_connections": 0},
        {"backoff_cap": -1.0},
        {"access_key_id": "only-the-id"},
    ],
)
def test_s3_settings_validation(bad: dict[str, object]) -> None:
    with pytest.raises(UsageError):
        S3Settings(bucket="b", **bad)  # type: ignore[arg-type]


def test_worst_case_is_documented_bound() -> None:
    settings = S3Settings(connect_timeout=1, read_timeout=2, backoff_cap=3, max_attempts=4)
    assert settings.worst_case_seconds == 4 * (1 + 2 + 3)


def test_open_local_directory(tmp_path: Path) -> None:
    storage = open_storage(str(tmp_path), None)
    assert isinstance(storage, LocalStorage)


def test_open_s3_takes_bucket_and_prefix_from_the_url() -> None:
    base = S3Settings(bucket="ignored", endpoint_url="http://127.0.0.1:9", region="us-east-1")
    storage = open_storage("s3://real-bucket/2024/", base)
    assert isinstance(storage, S3Storage)
    assert (storage.settings.bucket, storage.settings.prefix) == ("real-bucket", "2024/")
    assert storage.describe() == "s3://real-bucket/2024/ at http://127.0.0.1:9"


@pytest.mark.parametrize("source", ["http://host/x", "file.des"])
def test_open_rejects_other_sources(tmp_path: Path, source: str) -> None:
    (tmp_path / "file.des").write_bytes(b"x")
    with pytest.raises(UsageError):
        open_storage(str(tmp_path / source) if "://" not in source else source, None)


def test_a_missing_directory_is_not_found_exit_3(tmp_path: Path) -> None:
    with pytest.raises(NotFound) as caught:
        open_storage(str(tmp_path / "missing-dir"), None)
    assert caught.value.exit_code == 3


def test_unknown_profile_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="no-such-profile"):
        S3Storage(S3Settings(bucket="b", profile="no-such-profile"))


def test_an_unknown_profile_from_the_environment_is_named_with_its_origin(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_PROFILE", "nope")
    with pytest.raises(UsageError, match=r"'nope', from the environment \(AWS_PROFILE\)"):
        S3Storage(S3Settings(bucket="b"))
