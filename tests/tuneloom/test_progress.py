"""Terminal progress (rich): drawn on a terminal, silent when piped or with --json."""

from __future__ import annotations

import io
import json
import re
import time
from pathlib import Path

import pytest
from rich.console import Console

from tests.tuner.scheduling_helpers import ScriptedDriver
from tuneloom import progress
from tuneloom.cli import main
from tuneloom.progress import StepsProgress, TrialsProgress, terminal
from tuner.clock import SimClock
from tuner.scheduler import Scheduler

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "sample_logs" / "tune-4-jobs.jsonl"


class Tty(io.StringIO):
    """A text stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def plain(text: str) -> str:
    """``text`` without terminal control sequences (colours, cursor moves)."""
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)


def forced() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, force_terminal=True, width=120), out


def two_running_jobs() -> tuple[Scheduler, int]:
    """A scheduler with two jobs of 8 trials each, part-way through; (it, trials done)."""
    scheduler = Scheduler(["client:0", "device:llvm:0"], "interleaved", clock=SimClock())
    for label in ("a", "b"):
        scheduler.submit_job(
            ScriptedDriver(label, iterations=2, candidates=4), name=label, target="llvm",
            device_pool="device:llvm", tasks=["t"], trials_total=8,
        )  # fmt: skip
    scheduler.run(until=12.0)  # some candidates are measured, both jobs run
    jobs = scheduler.list()
    done = sum(j.trials_done for j in jobs)
    assert 0 < done < 16 and all(str(j.state) == "running" for j in jobs)
    return scheduler, done


def test_a_forced_terminal_shows_trials_of_the_total_and_who_runs() -> None:
    scheduler, done = two_running_jobs()
    console, out = forced()
    with TrialsProgress(scheduler.list, "tune", console=console, period_s=0.01):
        deadline = time.monotonic() + 10
        while "running" not in out.getvalue() and time.monotonic() < deadline:
            time.sleep(0.01)
    shown = plain(out.getvalue())
    assert "tune" in shown and f"{done}/16" in shown and "trials · 2 running" in shown


def test_steps_show_the_count_and_what_is_being_done() -> None:
    console, out = forced()
    with StepsProgress("import", 2, console=console, unit="files") as steps:
        steps.doing("first.jsonl: 10 new events stored")
        steps.advance()
    shown = plain(out.getvalue())  # the last frame is drawn when the block ends
    assert "import" in shown and "1/2" in shown and "files" in shown
    assert "first.jsonl: 10 new events stored" in shown


@pytest.mark.parametrize("bar", ["trials", "steps"])
def test_nothing_is_written_off_a_terminal(bar: str, monkeypatch: pytest.MonkeyPatch) -> None:
    scheduler, _ = two_running_jobs()
    plain = io.StringIO()  # a Console on a file that is not a terminal
    streams = io.StringIO(), io.StringIO()
    monkeypatch.setattr("sys.stdout", streams[0])
    monkeypatch.setattr("sys.stderr", streams[1])
    for console in (terminal(), Console(file=plain)):
        if bar == "trials":
            shown = TrialsProgress(scheduler.list, "tune", console=console, period_s=0.01)
            with shown:
                time.sleep(0.05)  # several periods pass: still nothing drawn
        else:
            with StepsProgress("import", 3, console=console) as steps:
                steps.doing("a file")
                steps.advance()
    assert [s.getvalue() for s in streams] == ["", ""] and plain.getvalue() == ""


def test_progress_needs_both_streams_on_a_terminal_and_no_json(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("sys.stdout", Tty())
    monkeypatch.setattr("sys.stderr", Tty())
    found = terminal()
    assert found is not None and found.file is progress.sys.stderr
    assert terminal(json_output=True) is None
    monkeypatch.setattr("sys.stdout", io.StringIO())  # output piped
    assert terminal() is None


def test_import_draws_its_progress_on_a_terminal_but_not_with_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(progress, "_isatty", lambda stream: True)
    monkeypatch.setenv("FORCE_COLOR", "1")  # rich draws on the captured stderr
    assert main(["import", str(SAMPLE), "--db", str(tmp_path / "a.db"), "--json"]) == 0
    quiet = capsys.readouterr()
    assert quiet.err == ""
    stored = json.loads(quiet.out)["files"][0]["stored"]
    assert stored > 0
    assert main(["import", str(SAMPLE), "--db", str(tmp_path / "b.db")]) == 0
    drawn = capsys.readouterr()
    assert "import" in drawn.err and "1/1 files" in plain(drawn.err)
    assert f"{SAMPLE.name}: {stored:,} new events stored" in plain(drawn.err)
    assert drawn.out.startswith(f"{SAMPLE}: tuneloom")  # the result, apart from the bar
