"""Fixtures shared by every test tier: a clean AWS environment, one moto S3 server (for the
faults only an emulator lets us inject) and one Ceph RGW (the store users run)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings as hypothesis_settings

from tests.support.moto_server import MotoServer
from tests.support.rgw import RgwServer, rgw_missing

# Property tests draw the same examples in every run, so a red CI is the change's own;
# DESFS_FUZZ_EXAMPLES=N explores afresh (tests/unit/test_fuzz_parsers.py).
hypothesis_settings.register_profile(
    "desfs", derandomize="DESFS_FUZZ_EXAMPLES" not in os.environ, database=None
)
hypothesis_settings.load_profile("desfs")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--soak", action="store_true", help="also run the long soak variants")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--soak"):
        return
    skip = pytest.mark.skip(reason="soak variant: run with --soak")
    for item in items:
        if "soak" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _clean_aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Tests see no AWS or desfs settings of the machine they run on."""
    for name in list(os.environ):
        if name.startswith("AWS_") or (name.startswith("DESFS_") and "FUZZ" not in name):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    server = MotoServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def s3_client(moto_server: MotoServer) -> Any:
    return moto_server.client()


@pytest.fixture(scope="session")
def rgw_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RgwServer]:
    """Ceph RGW on 127.0.0.1. Missing packages are an error, not a skip: the bootstrap
    installs them, and the tests that use RGW are the ones that say desfs works on it."""
    reason = rgw_missing()
    if reason is not None:
        raise RuntimeError(reason)
    server = RgwServer(tmp_path_factory.mktemp("rgw")).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def rgw_client(rgw_server: RgwServer) -> Any:
    return rgw_server.client()
