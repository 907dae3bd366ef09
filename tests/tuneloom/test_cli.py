"""The command line: help lists every subcommand; user mistakes are one line, exit 2."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from tuneloom import cli
from tuneloom.cli import UserError, main

SUBCOMMANDS = (
    "demo", "serve", "server", "tune", "evaluate", "simulate", "memory", "import", "export",
    "bench", "submit", "jobs", "wait", "pause", "resume", "cancel", "priority", "fetch",
)  # fmt: skip


def test_help_lists_every_subcommand() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tuneloom", "--help"], capture_output=True, text=True, check=True
    )
    for name in SUBCOMMANDS:
        assert f"    {name}" in done.stdout


def test_each_subcommand_has_its_own_help() -> None:
    parser = cli.build_parser()
    for name in SUBCOMMANDS:
        with pytest.raises(SystemExit) as exit_info:
            parser.parse_args([name, "--help"])
        assert exit_info.value.code == 0


@pytest.mark.parametrize(
    "error",
    [UserError("bad spec 'matmul:x'"), FileNotFoundError(2, "No such file", "/nope/db")],
)
def test_user_error_is_one_line_and_exit_2(
    error: Exception, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def failing(args: argparse.Namespace) -> int:
        raise error

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", _parse_as_failing(failing))
    assert main(["export"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("tuneloom export: error: ")
    assert "Traceback" not in err


def test_bug_is_not_swallowed(monkeypatch: pytest.MonkeyPatch) -> None:
    def buggy(args: argparse.Namespace) -> int:
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", _parse_as_failing(buggy))
    with pytest.raises(ZeroDivisionError):
        main(["export"])


def _parse_as_failing(func):  # type: ignore[no-untyped-def]
    def parse_args(self: argparse.ArgumentParser, args=None, namespace=None):  # type: ignore[no-untyped-def]
        return argparse.Namespace(command="export", func=func, json=False)

    return parse_args


def test_serve_names_the_upgrade_for_a_store_an_older_tuneloom_wrote(
    tmp_path, capsys: pytest.CaptureFixture[str]
) -> None:
    import shutil
    from pathlib import Path

    fixture = Path(__file__).resolve().parents[1] / "collectors" / "data" / "store_v1.db"
    store = tmp_path / "old.db"
    shutil.copy(fixture, store)
    before = store.read_bytes()
    assert main(["serve", "--db", str(store), "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert "older tuneloom" in err and "--allow-import" in err
    assert store.read_bytes() == before
