"""Running the HTTP front end: hypercorn's trio worker on the archive app, until a signal.

SIGTERM or SIGINT stop accepting connections and give requests in flight the grace
period hypercorn is told; `ready` is called once the socket listens (systemd READY=1).
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable

import trio
from hypercorn.config import Config
from hypercorn.trio import serve as hypercorn_serve

from desfs.http.app import ArchiveApp

log = logging.getLogger(__name__)

GRACE_SECONDS = 10.0


def run(app: ArchiveApp, listen: str, ready: Callable[[list[str]], None]) -> None:
    config = Config()
    config.bind = [listen]
    config.graceful_timeout = GRACE_SECONDS
    config.accesslog = None  # one line per request would drown the log; metrics count them
    config.errorlog = logging.getLogger("desfs.http.hypercorn")
    trio.run(_serve, app, config, ready)


async def _serve(app: ArchiveApp, config: Config, ready: Callable[[list[str]], None]) -> None:
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_watch_signals, stop)
        bound = await nursery.start(
            lambda task_status=trio.TASK_STATUS_IGNORED: hypercorn_serve(
                app,  # type: ignore[arg-type]
                config,
                shutdown_trigger=stop.wait,
                task_status=task_status,
            )
        )
        ready(list(bound))
        await stop.wait()
        log.info("stopping: requests in flight get %.0f s", GRACE_SECONDS)
    log.info("stopped")


async def _watch_signals(stop: trio.Event) -> None:
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for signum in signals:
            log.info("%s received", signal.Signals(signum).name)
            stop.set()
            return
