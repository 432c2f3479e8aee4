"""What a new user's mistakes get from the command line: the truth, in one line, with the
documented exit code (README, "Exit codes")."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from desfs.errors import ExitCode
from tests.support.builders import build_deshead1
from tests.support.moto_server import MotoServer

DAY = "2024-12-03"


def desfs(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "desfs", *args],
        capture_output=True, text=True, timeout=60, check=False, env={**os.environ, **(env or {})},
    )  # fmt: skip


def test_verify_of_a_folder_without_containers_says_what_it_looked_for(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not a container")
    done = desfs("verify", str(tmp_path))
    assert done.returncode == ExitCode.NOT_FOUND, done
    assert "no DES containers" in done.stderr and "YYYY-MM-DD/*.des" in done.stderr


def test_a_day_written_into_the_source_gets_a_hint(tmp_path: Path) -> None:
    (tmp_path / DAY).mkdir()
    (tmp_path / DAY / "a.des").write_bytes(build_deshead1([("f", b"x", None)]))
    done = desfs("ls", str(tmp_path / DAY))
    assert done.returncode == 0
    assert done.stderr.startswith("desfs: warning: no DES containers")
    assert f"'{DAY}' looks like a day" in done.stderr


def test_an_empty_bucket_and_a_mistyped_prefix_are_named(
    moto_server: MotoServer, s3_client: Any
) -> None:
    s3_client.create_bucket(Bucket="empty-one")
    for source in ("s3://empty-one", "s3://empty-one/typo"):
        listed = desfs("ls", source, env=moto_server.env())
        assert listed.returncode == 0 and "no DES containers" in listed.stderr, listed
        verified = desfs("verify", source, env=moto_server.env())
        assert verified.returncode == ExitCode.NOT_FOUND, verified


def test_log_level_goes_before_or_after_the_command_in_any_case() -> None:
    for words in (
        ["--log-level", "DEBUG", "ls", "@sample"],
        ["ls", "@sample", "--log-level", "Debug"],
        ["ls", "-d", "@sample"],
    ):
        done = desfs(*words)
        assert done.returncode == 0, (words, done.stderr)
        assert "desfs: debug:" in done.stderr, words


def test_verify_reports_each_problem_once(tmp_path: Path) -> None:
    (tmp_path / DAY).mkdir()
    (tmp_path / DAY / "bad.des").write_bytes(b"DESHEAD1\x01" + bytes(200))
    done = desfs("verify", str(tmp_path))
    assert done.returncode == ExitCode.PROBLEMS
    lines = [line for line in done.stderr.splitlines() if "bad.des" in line]
    assert len(lines) == 1 and lines[0].startswith("BAD"), done.stderr


def test_cat_of_one_container_file_reads_its_external_payload() -> None:
    """The key recorded for an external file is relative to the layout root, above the
    day folder that holds the container."""
    case = Path(__file__).resolve().parents[1] / "fixtures/upstream/datavision/dv_external"
    container = case / "bucket/2024-12-06/shard_00.des"
    done = subprocess.run(
        [sys.executable, "-m", "desfs", "cat", str(container), "large.bin"],
        capture_output=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout == (case / "bucket/2024-12-06/_bigFiles/large.bin").read_bytes()


def test_ls_and_verify_speak_json_and_stat_one_schema(tmp_path: Path) -> None:
    import json

    listed = json.loads(desfs("ls", "@sample", f"/{DAY}/0", "--json").stdout)
    assert {row["type"] for row in listed} == {"directory"}
    files = json.loads(desfs("ls", "@sample", f"/{DAY}/0/invoices", "--json", "--all").stdout)
    assert all(row["type"] == "file" and isinstance(row["size"], int) for row in files)
    shard = json.loads(desfs("stat", "@sample", f"/{DAY}/0").stdout)
    assert isinstance(shard["entries"], int) and isinstance(shard["size"], int)
    (tmp_path / DAY).mkdir()
    (tmp_path / DAY / "bad.des").write_bytes(b"DESHEAD1\x01" + bytes(200))
    done = desfs("verify", str(tmp_path), "--json")
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert lines[0]["problem"]["container"] == f"{DAY}/bad.des"
    assert lines[-1]["summary"]["problems"] == 1
    assert done.returncode == ExitCode.PROBLEMS


def test_pack_reports_what_it_leaves_out_and_can_keep_mtimes(tmp_path: Path) -> None:
    import json

    src = tmp_path / "src"
    (src / "empty").mkdir(parents=True)
    (src / "a.txt").write_text("a")
    os.utime(src / "a.txt", (1_600_000_000, 1_600_000_000))
    (src / "link").symlink_to(src / "a.txt")
    done = desfs("pack", str(src), str(tmp_path / "out"), "--day", DAY, "--keep-mtime")
    assert done.returncode == 0, done.stderr
    assert "left out 1 not regular files (links are not followed): link" in done.stderr
    assert "left out 1 empty directories (a container holds files only): empty" in done.stderr
    (path,) = [
        row["name"] for row in json.loads(desfs("ls", str(tmp_path / "out"), "--json").stdout)
    ]
    shard = json.loads(desfs("ls", str(tmp_path / "out"), f"/{path}", "--json").stdout)[0]["name"]
    meta = json.loads(desfs("stat", str(tmp_path / "out"), f"/{path}/{shard}/a.txt").stdout)["meta"]
    assert meta["mtime"].startswith("2020-09-13T12:26:40")
    again = desfs("pack", str(src), str(tmp_path / "out"), "--day", DAY)
    assert again.returncode == ExitCode.USAGE
    assert "use --overwrite to replace it" in again.stderr
