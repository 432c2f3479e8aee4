"""Ceph RGW on 127.0.0.1: the S3 store desfs users run, for tests and the benchmark.

One monitor, one in-memory OSD and one gateway from Debian's packages (`radosgw`,
`ceph-mon`, `ceph-osd`, `ceph-common`; scripts/bootstrap.sh installs them), every path
under one scratch directory, every port free-chosen, no systemd, no keyrings (auth none).
Up in about 1.5 s; `stop()` kills the three daemons and the data goes with them.

    python -m tests.support.rgw [DIR]   # start one by hand; prints the AWS variables

Settings that matter (docs/real-s3.md in the project's shared notes, measured there):
`ms mon client mode = crc secure` (with auth none the gateway otherwise loops on auth and
exits after 300 s), memstore, one replica, few placement groups, a short paxos propose
interval (2 s per pool otherwise), and `tcp_nodelay=1` on the beast frontend (21 small
GETs per second without it, about 400 with it).
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from tests.support.moto_server import free_port

ACCESS_KEY = "desfs-test"
SECRET_KEY = "desfs-test-secret"
REGION = "us-east-1"
START_TIMEOUT = 60.0
BINARIES = ("monmaptool", "ceph-mon", "ceph-osd", "radosgw", "radosgw-admin", "ceph")


def rgw_missing() -> str | None:
    """Why RGW cannot run here, or None."""
    absent = [name for name in BINARIES if shutil.which(name) is None]
    if absent:
        return f"Ceph RGW is not installed ({', '.join(absent)}); scripts/bootstrap.sh installs it"
    return None


class RgwServer:
    def __init__(self, workdir: Path) -> None:
        self.dir = workdir
        self.port = free_port()
        self._mon_ports = (free_port(), free_port())
        self._procs: list[subprocess.Popen[bytes]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        return {
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_ENDPOINT_URL": self.url,
        }

    def client(self) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.url,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            region_name=REGION,
        )

    def start(self) -> RgwServer:
        self.dir.mkdir(parents=True, exist_ok=True)
        for sub in ("mon", "osd/ceph-0", "run", "log", "rgw"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        fsid = str(uuid.uuid4())
        conf = self.dir / "ceph.conf"
        conf.write_text(self._config(fsid))
        v2, v1 = self._mon_ports
        monmap = self.dir / "monmap"
        addresses = f"[v2:127.0.0.1:{v2},v1:127.0.0.1:{v1}]"
        self._run("monmaptool", "--create", "--addv", "a", addresses, "--fsid", fsid, str(monmap))
        self._run("ceph-mon", "-c", str(conf), "--mkfs", "-i", "a", "--monmap", str(monmap))
        self._daemon("mon", "ceph-mon", "-c", str(conf), "-i", "a", "-f")
        self._run("ceph", "-c", str(conf), "osd", "create")
        self._run("ceph-osd", "-c", str(conf), "-i", "0", "--mkfs")
        self._daemon("osd", "ceph-osd", "-c", str(conf), "-i", "0", "-f")
        self._daemon("rgw", "radosgw", "-c", str(conf), "-n", "client.rgw.a", "-f")
        self._run("radosgw-admin", "-c", str(conf), "user", "create", "--uid=desfs",
                  "--display-name=desfs", f"--access-key={ACCESS_KEY}",
                  f"--secret={SECRET_KEY}")  # fmt: skip
        self._wait_answering()
        return self

    def stop(self) -> None:
        procs, self._procs = self._procs, []
        for proc in reversed(procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
        for proc in procs:
            proc.wait(timeout=30)

    def __enter__(self) -> RgwServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _config(self, fsid: str) -> str:
        v2, v1 = self._mon_ports
        d = self.dir
        return f"""[global]
fsid = {fsid}
mon host = [v2:127.0.0.1:{v2},v1:127.0.0.1:{v1}]
mon initial members = a
auth cluster required = none
auth service required = none
auth client required = none
ms mon client mode = crc secure
osd objectstore = memstore
memstore device bytes = 4G
osd pool default size = 1
osd pool default min size = 1
mon allow pool size one = true
osd crush chooseleaf type = 0
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
mon max pg per osd = 1000
paxos propose interval = 0.01
osd memory target = 1G
mon data avail crit = 1
run dir = {d}/run
admin socket = {d}/run/$name.asok
pid file = {d}/run/$name.pid
log file = {d}/log/$name.log
mon data = {d}/mon/$cluster-$id
osd data = {d}/osd/$cluster-$id
debug rgw = 0
debug ms = 0
[client.rgw.a]
rgw frontends = beast endpoint=127.0.0.1:{self.port} tcp_nodelay=1
rgw data = {d}/rgw
"""

    def _run(self, *command: str) -> None:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=START_TIMEOUT, check=False
        )
        if done.returncode != 0:
            self.stop()
            raise RuntimeError(f"{' '.join(command)}: exit {done.returncode}: {done.stderr}")

    def _daemon(self, name: str, *command: str) -> None:
        with open(self.dir / "log" / f"{name}.out", "wb") as out:
            self._procs.append(
                subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=self.dir)
            )

    def _wait_answering(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                with urllib.request.urlopen(self.url + "/", timeout=2) as reply:
                    if reply.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline or any(p.poll() is not None for p in self._procs):
                self.stop()
                raise RuntimeError(f"RGW did not answer on {self.url}; logs in {self.dir}/log")
            time.sleep(0.05)


def main() -> int:
    where = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="rgw-"))
    with RgwServer(where) as server:
        for name, value in server.env().items():
            print(f"export {name}={value}")
        print(f"# RGW up; data and logs in {where}; Ctrl-C stops it", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            signal.pause()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
