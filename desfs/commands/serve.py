"""`desfs serve SOURCE`: the archive over HTTP, on the same engine, settings and caches as
the mount, for hosts and tools without FUSE (desfs.http)."""

from __future__ import annotations

import argparse
import ipaddress
import logging
from collections.abc import Callable

import trio
from prometheus_client import generate_latest

from desfs import logs
from desfs.archive.engine import Archive
from desfs.archive.sources import open_archive
from desfs.commands.metrics import MetricsExporter, Snapshot
from desfs.errors import ExitCode, UsageError
from desfs.fuse.notify import sd_notify
from desfs.http.app import ArchiveApp
from desfs.settings.flags import add_key_flag, add_source_options, load_settings
from desfs.settings.keys import KEYS

log = logging.getLogger(__name__)


def add_serve_command(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = sub.add_parser(
        "serve",
        help="serve SOURCE over HTTP (no FUSE needed)",
        description="Serve SOURCE read-only over HTTP: files by path with ranges and "
        "conditionals, directories as JSON, DES's /files/UID?created_at=..., /health and "
        "/metrics. It listens on 127.0.0.1:8080 unless --listen says otherwise.",
    )
    add_source_options(serve, tuning=True)
    group = serve.add_argument_group("serving")
    for key in KEYS:
        if key.scope == "serve" and key.flag:
            add_key_flag(group, key)
    serve.set_defaults(handler=run_serve)


def run_serve(args: argparse.Namespace) -> int:
    settings = load_settings(args)
    logs.setup(settings.log_level("mount"), daemon=True)
    assert settings.source is not None  # load_settings insists on one
    host = _check_listen(settings.serve.listen)
    archive = open_archive(settings.source, settings.archive, settings.s3, settings.zones)
    if archive.single is not None:
        raise UsageError(f"{settings.source}: serve a directory or s3:// prefix, not one file")
    trio.run(archive.days)  # a missing or unreachable source fails here, with its reason
    if not ipaddress.ip_address(host).is_loopback:
        log.warning(
            "serving %s beyond loopback: put a reverse proxy with TLS and authentication "
            "in front (docs/OPERATIONS.md)",
            settings.serve.listen,
        )
    app = ArchiveApp(archive, settings.serve, _metrics(archive))
    # hypercorn costs ~60 ms to import: only `desfs serve` pays it, not every mount.
    from desfs.http.server import run

    def ready(bound: list[str]) -> None:
        log.info("serving %s on %s", settings.source, ", ".join(bound))
        sd_notify("READY=1")

    run(app, settings.serve.listen, ready)
    return ExitCode.OK


def _check_listen(listen: str) -> str:
    host, _, port = listen.rpartition(":")
    host = host.strip("[]")
    try:
        ipaddress.ip_address(host)
        number = int(port)
    except ValueError:
        raise UsageError(f"serve.listen: {listen!r} is not HOST:PORT (an IP address)") from None
    if not 0 <= number <= 65535:
        raise UsageError(f"serve.listen: port {number} is out of range")
    return host


def _metrics(archive: Archive) -> Callable[[], bytes]:
    """/metrics: the mount's collector over the engine's counters (no inodes here)."""
    exporter = MetricsExporter("127.0.0.1", 0)  # never started: its registry renders

    def render() -> bytes:
        exporter.publish(Snapshot(archive.statistics(), inodes=0))
        return bytes(generate_latest(exporter.registry))

    return render
