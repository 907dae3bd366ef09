"""Timing code runs on a thread of its own (``tuner.threads``)."""

from __future__ import annotations

import argparse
import json
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tuner.models import measure
from tuner.threads import on_new_thread


def test_on_new_thread_returns_the_result_of_another_thread() -> None:
    here = threading.get_ident()
    assert on_new_thread(threading.get_ident) != here
    assert on_new_thread(lambda: threading.current_thread().name, name="probe") == "probe"


def test_on_new_thread_raises_the_error_of_the_call() -> None:
    def fails() -> None:
        raise KeyError("no such argument")

    with pytest.raises(KeyError, match="no such argument"):
        on_new_thread(fails)


def test_a_model_is_timed_off_the_main_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    seen: list[tuple[str, dict[str, Any]]] = []

    def recording_timer(
        args: argparse.Namespace, inputs: dict[str, np.ndarray]
    ) -> tuple[list, dict]:
        seen.append((threading.current_thread().name, inputs))
        return [inputs["x"] * 2], {"median_ms": 1.5, "repeats_ms": [1.5]}

    monkeypatch.setattr(measure, "_time_tvm", recording_timer)
    np.savez(tmp_path / "in.npz", x=np.arange(4, dtype="float32"))
    out = tmp_path / "out.npz"
    argv = ["tvm", str(tmp_path), "--inputs", str(tmp_path / "in.npz"), "--outputs", str(out)]
    assert measure.main([*argv, "--threads", "1"]) == 0
    ((thread, inputs),) = seen
    assert thread == "tuneloom-timing" and thread != threading.current_thread().name
    assert inputs["x"].tolist() == [0, 1, 2, 3]
    with np.load(out) as outputs:
        assert outputs["output_0"].tolist() == [0, 2, 4, 6]
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["median_ms"] == 1.5
