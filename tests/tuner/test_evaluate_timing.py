"""Timing several compiled models alternately, so that they see the same machine."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import tuner.models.evaluate as evaluate


def test_models_are_timed_one_after_another_in_each_round_and_their_medians_kept(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[str] = []
    times = {"a": iter([3.0, 1.0, 2.0]), "b": iter([5.0, 9.0, 4.0])}

    def timed(folder: str | Path, model: Any, **how: Any) -> float:
        assert how == {"threads": 1, "cores": [1], "repeat": 7}
        calls.append(str(folder))
        return next(times[str(folder)])

    monkeypatch.setattr(evaluate, "time_saved_model", timed)
    medians = evaluate.time_saved_models_alternately(
        {"first": "a", "second": "b"}, object(), rounds=3, threads=1, cores=[1], repeat=7
    )
    assert calls == ["a", "b", "a", "b", "a", "b"]
    assert medians == {"first": 2.0, "second": 5.0}
