"""An outage longer than the listing TTL: what was loaded keeps serving (stale-if-error),
bytes never fetched fail with EIO within the request deadline, and the mount recovers by
itself when the store returns."""

from __future__ import annotations

import errno
import os
import time
from pathlib import Path
from typing import Any

from tests.support.builders import build_deshead1
from tests.support.moto_server import MotoServer
from tests.support.mounting import Mounted, needs_fuse, root_stats
from tests.support.s3proxy import S3Proxy

pytestmark = needs_fuse()

BUCKET = "outage"
DAY = "2024-12-03"
TTL = 1.0
DEADLINE = 3.0
FILES = {f"f{i:02d}.txt": f"file {i}\n".encode() * 4000 for i in range(10)}
ARGS = [
    "--listing-ttl", str(TTL), "--connect-timeout", "1", "--read-timeout", "1",
    "--max-attempts", "2", "--request-deadline", str(DEADLINE), "--tail-window", "4KiB",
]  # fmt: skip


def _errno(call: Any) -> int | None:
    try:
        call()
    except OSError as exc:
        return exc.errno
    return None


def test_loaded_shards_keep_serving_through_an_outage(
    moto_server: MotoServer, s3_client: Any, tmp_path: Path
) -> None:
    s3_client.create_bucket(Bucket=BUCKET)
    body = build_deshead1([(name, data, None) for name, data in FILES.items()])
    s3_client.put_object(Bucket=BUCKET, Key=f"{DAY}/a.des", Body=body)
    with S3Proxy(moto_server.port) as proxy:
        env = {**moto_server.env(), "AWS_ENDPOINT_URL": proxy.url}
        mnt = tmp_path / "mnt"
        with Mounted(f"s3://{BUCKET}", mnt, tmp_path / "log", ARGS, env) as mount:
            shard = mnt / DAY / "a"
            assert sorted(os.listdir(shard)) == sorted(FILES)
            assert (shard / "f00.txt").read_bytes() == FILES["f00.txt"]
            proxy.stop()
            time.sleep(TTL * 8)  # the outage outlasts every TTL many times over
            assert sorted(os.listdir(shard)) == sorted(FILES)
            assert (shard / "f00.txt").read_bytes() == FILES["f00.txt"]
            assert sorted(os.listdir(mnt)) == [DAY]
            began = time.monotonic()
            assert _errno(lambda: (shard / "f05.txt").read_bytes()) == errno.EIO
            assert time.monotonic() - began < DEADLINE + 3, "EIO within the request deadline"
            stale = root_stats(mnt)["stale_listings"]
            assert stale >= 1
            warnings = [line for line in mount.log().splitlines() if "does not answer" in line]
            assert len(warnings) == 1, warnings
            proxy.start()
            s3_client.put_object(Bucket=BUCKET, Key=f"{DAY}/b.des", Body=body)
            deadline = time.monotonic() + 20
            while sorted(os.listdir(mnt / DAY)) != ["a", "b"]:
                assert time.monotonic() < deadline, "the mount did not recover"
                time.sleep(0.5)
            assert (shard / "f05.txt").read_bytes() == FILES["f05.txt"]
            assert "answers again" in mount.log()
