"""`tuneloom server` for real: a server process on a free loopback port with real TVM jobs,
steered with the client commands, killed with SIGKILL at random moments and restarted.

Invariants after every restart: every record stored before the kill is still there,
unchanged; at the end no record is stored twice, every job has all its trials, and each
task's MetaSchedule database holds exactly the records the store holds.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from collectors.sqlite_store import SQLiteStore
from tests.tuneloom.server_process import ROOT, ServerProcess, free_port
from tuneloom.cli import main
from tuneloom.client import ServerClient, ServerUnavailable
from tuneloom.server_log import line_kind
from tuner.metaschedule.resume import records_by_workload

WORKLOADS = ("matmul:16,dense:1x16x16", "matmul:24x16x8,dense:1x32x16")
TRIALS = 16  # per task


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ServerProcess]:
    monkeypatch.delenv("TUNELOOM_TOKEN", raising=False)
    running = ServerProcess(tmp_path / "jobs.db", "--number", "2", "--min-repeat-ms", "5")
    monkeypatch.setenv("TUNELOOM_SERVER", running.url)
    try:
        yield running
    finally:
        running.stop()


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    """Run a client command; (exit status, its standard output, or its error on failure)."""
    capsys.readouterr()
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out if code == 0 else captured.out + captured.err


def stored(db: Path) -> dict[tuple[str, str, int], float]:
    store = SQLiteStore(db, read_only=True)
    try:
        frame = store.records()
    finally:
        store.close()
    return {(r.job, r.task, int(r.candidate)): r.mean_secs for r in frame.itertuples()}


@pytest.mark.slow
def test_jobs_survive_kill_9_at_random_moments_with_nothing_lost_or_doubled(
    server: ServerProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    assert server.start() < 30
    ids = []
    for workload in WORKLOADS:
        code, out = cli(capsys, "submit", "--workload", workload, "--trials-per-task",
                        str(TRIALS), "--batch", "4", "--json")  # fmt: skip
        assert code == 0
        ids.append(json.loads(out)["id"])
    rng = random.Random(7)
    before: dict[tuple[str, str, int], float] = {}
    for _ in range(3):  # each kill at a random moment after new records were stored
        deadline = time.monotonic() + 120
        while len(stored(server.db)) <= len(before):
            assert time.monotonic() < deadline, "no progress since the last restart"
            time.sleep(0.1)
        time.sleep(rng.uniform(0.0, 3.0))
        server.kill()
        now = stored(server.db)
        for key, secs in before.items():  # nothing stored before an earlier kill went away
            assert key in now and (now[key] == secs or secs != secs), f"{key} lost or changed"
        before = now
        server.start()
    assert before, "no record was stored before a kill"
    code, out = cli(capsys, "wait", *ids, "--timeout", "600")
    assert code == 0, out
    final = stored(server.db)
    assert all(final[key] == secs or secs != secs for key, secs in before.items())
    store = SQLiteStore(server.db, read_only=True)
    try:
        records = store.records()
        tasks = store.tasks()
        job_events = [s.event for s in store.read(kinds=["job"])]
    finally:
        store.close()
    assert not records.duplicated(["job", "task", "candidate"]).any(), "a record stored twice"
    for job in ids:
        mine = tasks[tasks["job"] == job]
        by_hash = records_by_workload(server.db.parent / "jobs-runs" / job)
        for row in mine.itertuples():
            in_store = int(((records["job"] == job) & (records["task"] == row.task)).sum())
            assert in_store == TRIALS == len(by_hash[row.workload_hash]), (job, row.task)
    code, out = cli(capsys, "jobs", "--json")
    assert {j["id"]: (j["state"], j["trials_done"]) for j in json.loads(out)} == {
        job: ("finished", 2 * TRIALS) for job in ids
    }
    resumed = [e for e in job_events if e.change == "resumed"]
    assert resumed and all(e.detail == "resumed after restart" for e in resumed)


@pytest.mark.slow
def test_the_client_commands_steer_a_real_server_and_fetch_what_it_tuned(
    server: ServerProcess, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    server.start()
    code, quick = cli(capsys, "submit", "--workload", "matmul:16", "--trials", "8",
                      "--batch", "4", "--name", "quick")  # fmt: skip
    quick = quick.strip()
    code, slow = cli(capsys, "submit", "--workload", "dense:1x32x32", "--trials", "400",
                     "--batch", "4", "--priority", "2")  # fmt: skip
    slow = slow.strip()
    assert code == 0 and quick != slow
    code, out = cli(capsys, "pause", slow)
    assert code == 0, out
    code, out = cli(capsys, "priority", slow, "5", "--json")
    assert code == 0, out
    code, out = cli(capsys, "jobs", "--json")
    jobs = {j["id"]: j for j in json.loads(out)}
    assert jobs[slow]["state"] == "paused" and jobs[slow]["priority"] == 5
    assert jobs[quick]["name"] == "quick" and jobs[quick]["trials_total"] == 8
    # Paused jobs stay paused across a restart (here a clean one: SIGTERM).
    server.stop()
    server.start()
    code, out = cli(capsys, "jobs", "--json")
    assert {j["id"]: j["state"] for j in json.loads(out)}[slow] == "paused"
    assert cli(capsys, "resume", slow)[0] == 0
    assert cli(capsys, "cancel", slow)[0] == 0
    assert cli(capsys, "wait", quick, "--timeout", "300")[0] == 0
    assert cli(capsys, "wait", slow, "--timeout", "60")[0] == 1  # cancelled
    code, out = cli(capsys, "fetch", quick, "--out", str(tmp_path / "got"))
    assert code == 0
    files = {p.relative_to(tmp_path / "got").as_posix() for p in (tmp_path / "got").rglob("*")}
    assert any(f.endswith("database_tuning_record.json") for f in files), files
    records = [
        line for p in (tmp_path / "got").rglob("database_tuning_record.json")
        for line in p.read_text().splitlines() if line.strip()
    ]  # fmt: skip
    assert len(records) == 8


def test_a_client_without_a_server_says_so_in_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    port = free_port()
    monkeypatch.setenv("TUNELOOM_SERVER", f"http://127.0.0.1:{port}")
    assert main(["jobs"]) == 2
    err = capsys.readouterr().err.strip()
    assert (
        err.endswith(
            f"no tuneloom server at http://127.0.0.1:{port}: start one with "
            "`tuneloom server --db PATH`"
        )
        and "\n" not in err
    )


def test_a_second_server_on_the_same_store_is_refused(server: ServerProcess) -> None:
    server.start()
    second = subprocess.run(
        [sys.executable, "-m", "tuneloom", "server", "--db", str(server.db), "--port", "0"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert second.returncode == 2
    assert f"in use by another tuneloom tuner (pid {server.proc.pid})" in second.stderr  # type: ignore[union-attr]


@pytest.mark.slow
def test_the_demo_answers_at_once_and_its_terminal_stays_clean(tmp_path: Path) -> None:
    db = tmp_path / "demo.db"
    port = free_port()
    started = time.monotonic()
    demo = subprocess.Popen(
        [sys.executable, "-m", "tuneloom", "demo", "--db", str(db), "--port", str(port),
         "--no-library", "--trials-per-task", "8"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)}, start_new_session=True,
    )  # fmt: skip
    client = ServerClient(f"http://127.0.0.1:{port}", timeout=5)
    try:
        while True:
            try:
                client.health()
                break
            except ServerUnavailable:
                assert demo.poll() is None, "the demo exited"
                assert time.monotonic() - started < 30, "the demo did not answer in 30 s"
                time.sleep(0.05)
        names = set()
        deadline = time.monotonic() + 120
        while len(names) < 4 or any(j.detail and j.detail.startswith("preparing")
                                    for j in client.jobs()):  # fmt: skip
            names = {job.name for job in client.jobs()}
            assert time.monotonic() < deadline, names
            time.sleep(0.2)
        assert "cnn (zoo model)" in names
        time.sleep(5)  # some tuning, with whatever TVM prints
    finally:
        demo.send_signal(signal.SIGTERM)
        output, _ = demo.communicate(timeout=60)
    lines = [line for line in output.splitlines() if line.strip()]
    assert lines[0].startswith(f"tuneloom demo on http://127.0.0.1:{port}/")
    assert "Unknown schedule rule" not in output and "Warning" not in output, output
    assert lines[-1].startswith("tuneloom demo: stopped")
    logged = [
        line_kind(line)
        for line in (tmp_path / "demo-server.log").read_text().splitlines()
        if line.strip() and not line.startswith(("(", "---"))  # repeat counts, start marks
    ]
    assert len(logged) == len(set(logged)), "a kind of line logged twice"
