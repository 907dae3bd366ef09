"""MetaSchedule's XGBoost cost model, safe to share between threads.

A job's tasks share one cost model, and with the device lent to client work two selects (and
an update) of one job run at once. ``XGBModel`` is plain Python around an XGBoost ``Booster``,
and XGBoost does not promise that one booster predicts safely from several threads.
``SharedXGBModel`` lets one thread at a time into XGBoost (predict, validate, train) and
learns from one update at a time; feature extraction, most of a prediction's time, stays
outside both locks, so concurrent selects still overlap, and predict with the booster
trained last.
"""

from __future__ import annotations

import threading
from typing import Any

from tvm.ir.utils import derived_object
from tvm.s_tir import meta_schedule as ms


@derived_object
class SharedXGBModel(ms.cost_model.XGBModel._cls):  # type: ignore[name-defined,misc]
    """``XGBModel`` (same arguments) whose XGBoost calls hold ``booster_lock`` and whose
    updates hold ``update_lock``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.booster_lock = threading.Lock()
        self.update_lock = threading.Lock()

    def update(self, context: Any, candidates: list[Any], results: list[Any]) -> None:
        with self.update_lock:
            super().update(context, candidates, results)

    def _predict(self, xs: list[Any]) -> Any:
        with self.booster_lock:
            return super()._predict(xs)

    def _validate(self, xs: list[Any], ys: Any) -> list[tuple[str, float]]:
        with self.booster_lock:
            return super()._validate(xs, ys)

    def _train(self, xs: list[Any], ys: Any) -> None:
        with self.booster_lock:
            super()._train(xs, ys)
