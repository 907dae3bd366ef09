"""One model job, started two ways: from the dashboard's Jobs page (headless chromium, the
engine as its ``Control``) and with `tuneloom tune`. Both go through the engine, so both end
with the same stored job fields and a compiled model that `tuneloom evaluate --db` times."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from collectors.events import JobEvent
from collectors.sqlite_store import SQLiteStore
from dashboard.app import create_app
from tests.dashboard.browser import served
from tuner.engine import Engine, EngineSettings
from tuner.metaschedule.run import EvalConfig
from tuner.metaschedule.settings import SMALL_SEARCH

pytestmark = [pytest.mark.slow, pytest.mark.browser]

MODEL = "zoo:mlp"
TRIALS = 2
# Stored fields of a job that do not depend on which run it was (ids and times do).
FIELDS = ("change", "name", "model", "target", "policy", "trials", "tasks", "priority")


def tuneloom(*argv: str, timeout: float = 900) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "tuneloom", *argv],
        capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def job_events(db: Path) -> list[JobEvent]:
    store = SQLiteStore(db, read_only=True)
    try:
        return [s.event for s in store.read(kinds=("job",))]  # type: ignore[misc]
    finally:
        store.close()


def stored_fields(events: list[JobEvent]) -> list[tuple[Any, ...]]:
    return [tuple(getattr(e, name) for name in FIELDS) for e in events]


def submit_from_the_jobs_page(tab: Any, url: str) -> str:
    tab.goto(url + "/jobs")
    tab.click("#submit-zoo")
    tab.get_by_role("option", name=MODEL).click()
    tab.wait_for_selector(f"#submit-zoo-value >> text={MODEL}")
    tab.fill("#submit-trials", str(TRIALS))
    tab.click("#submit-job")
    tab.wait_for_selector("#submit-message.tl-ok")
    message = tab.inner_text("#submit-message")
    assert message.startswith("Submitted "), message
    return message.removeprefix("Submitted ").rstrip(".")


def test_a_model_job_from_the_jobs_page_and_from_tune_ends_the_same(tmp_path: Path, page) -> None:
    cli_db = tmp_path / "cli.db"
    tuned = tuneloom(
        "tune", MODEL, "--trials", str(TRIALS), "--population", "64", "--number", "2",
        "--min-repeat-ms", "5", "--db", str(cli_db), "--no-library", "--json",
    )  # fmt: skip
    (cli_job,) = tuned["jobs"]
    assert cli_job["state"] == "finished"

    tab, console = page
    dash_db = tmp_path / "dash.db"
    settings = EngineSettings(
        runs_dir=tmp_path / "dash-runs", search=SMALL_SEARCH,
        measure=EvalConfig(number=2, repeat=1, min_repeat_ms=5),
    )  # fmt: skip
    store = SQLiteStore(dash_db)
    with Engine(settings, store=store) as engine:
        engine.serve()
        with served(create_app(store, engine, live=False)) as running:
            job = submit_from_the_jobs_page(tab, running.url)
            deadline = time.monotonic() + 900
            while engine.list()[0].state not in ("finished", "failed", "cancelled"):
                assert time.monotonic() < deadline, "the submitted job did not finish"
                time.sleep(0.5)
            tab.reload()  # the table shows what the engine says now
            tab.wait_for_selector(f"#jobs-table .ag-row:has-text('{job}') >> text=finished")
        report = engine.report()
    store.close()
    assert console.errors == []
    (dash_job,) = report.jobs
    assert dash_job.state == "finished"

    # The same stored job fields, change by change, and a compiled model either way.
    assert stored_fields(job_events(dash_db)) == stored_fields(job_events(cli_db))
    for compiled in (cli_job["compiled"], dash_job.compiled):
        assert compiled is not None and (Path(compiled) / "model.so").is_file()
    assert Path(dash_job.compiled) == tmp_path / "dash-runs" / job / "compiled"  # type: ignore[arg-type]
    for db in (cli_db, dash_db):
        timed = tuneloom(
            "evaluate", MODEL, "--db", str(db), "--baseline", "none", "--repeat", "2", "--json"
        )
        assert timed["tvm_tuned_ms"] > 0 and timed["outputs_match"]
