"""Search-space figures: every candidate's decisions against latency (parallel coordinates,
drawn by ``assets/tuneloom_parcoords.js``) and the decisions' importance. Pure: data in,
figure data out."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from dashboard.figures.style import FONT

MAX_LINES = 100_000  # lines drawn (the canvas draws 50,000 in ~0.1 s); above, a sample
MAX_AXES = 8  # decision axes drawn (the most important first), besides latency
MISSING = "none"


@dataclass(frozen=True)
class LineSample:
    """Which candidates the figure draws, and whether that is all of them."""

    rows: np.ndarray
    total: int

    @property
    def sampled(self) -> bool:
        return len(self.rows) < self.total


def sample_lines(latency: np.ndarray, fast_total: int, limit: int = MAX_LINES) -> LineSample:
    """All candidates up to ``limit``; above, every one of the fastest ``fast_total`` when
    they fill at most half the lines (else a random half-sample of them) and a random
    sample of the rest, seeded, in candidate order."""
    n = len(latency)
    if n <= limit:
        return LineSample(np.arange(n), n)
    rng = np.random.default_rng(0)
    order = np.argsort(latency, kind="stable")
    fast, rest = order[:fast_total], order[fast_total:]
    if len(fast) > limit // 2:
        fast = rng.choice(fast, limit // 2, replace=False)
    picked = rng.choice(rest, min(len(rest), limit - len(fast)), replace=False)
    return LineSample(np.sort(np.concatenate([fast, picked]).astype(np.int64)), n)


def axis_order(columns: Sequence[str], ranked: Sequence[str], limit: int = MAX_AXES) -> list[str]:
    """Decision axes to draw: the most important first, then the rest in their order."""
    ranked_here = [name for name in ranked if name in columns]
    rest = [name for name in columns if name not in ranked_here]
    return (ranked_here + rest)[:limit]


def _categories(column: pd.Series) -> tuple[np.ndarray, list[str]]:
    """Codes and labels of a decision's values: numbers in numeric order, text sorted, a
    missing decision as ``none`` first."""
    present = column.dropna()
    numeric = pd.to_numeric(present, errors="coerce")
    if len(present) and numeric.notna().all():
        values = sorted(set(numeric.tolist()))
        labels = [str(int(v)) if float(v).is_integer() else f"{v:g}" for v in values]
        keyed = pd.to_numeric(column, errors="coerce")
    else:
        values = sorted({str(v) for v in present})
        labels = list(values)
        keyed = column.map(lambda v: None if v is None or v != v else str(v))
    has_missing = bool(column.isna().any())
    offset = 1 if has_missing else 0
    code = {v: i + offset for i, v in enumerate(values)}
    codes = keyed.map(code).fillna(0 if has_missing else -1).to_numpy(dtype=float)
    return codes, ([MISSING] if has_missing else []) + labels


def _packed(values: np.ndarray) -> str:
    """Base64 of an array's little-endian bytes (what the browser reads as a typed array)."""
    return base64.b64encode(np.ascontiguousarray(values).tobytes()).decode("ascii")


def parcoords_data(
    features: pd.DataFrame,
    latency_ms: np.ndarray,
    axes: Sequence[str],
    *,
    fast_ms: float | None = None,
    title: str = "",
    key: Sequence[Any] = (),
) -> dict[str, Any]:
    """Parallel-coordinates data for ``assets/tuneloom_parcoords.js``: one axis per decision
    (category codes, one byte each up to 256 categories) and a last axis for latency (log10
    ms, float32) that colours the lines. ``fast_ms`` brushes the latency axis up to it (the
    fastest share) to start with; ``key`` names what the data stands for (a refresh of the
    same job and task keeps the browser's brushes)."""
    packed: list[dict[str, Any]] = []
    for name in axes:
        codes, labels = _categories(features[name])
        dtype = "<u1" if len(labels) <= 256 else "<u2"
        packed.append(
            {
                "name": name,
                "label": _short(name),
                "dtype": "u1" if dtype == "<u1" else "u2",
                "data": _packed(np.maximum(codes, 0).astype(dtype)),
                "tickvals": list(range(len(labels))),
                "ticktext": [_short(t, 12) for t in labels],
                "range": [-0.3, max(len(labels) - 1, 0) + 0.3],
            }
        )
    log_ms = np.log10(np.maximum(np.asarray(latency_ms, dtype=float), 1e-9)).astype("<f4")
    lo, hi = (float(log_ms.min()), float(log_ms.max())) if len(log_ms) else (0.0, 1.0)
    ticks = np.arange(np.floor(lo), np.ceil(hi) + 1)
    ticks = ticks[(ticks >= lo - 0.02) & (ticks <= hi + 0.02)]
    if len(ticks) < 2:  # less than a decade: the ends and the middle
        ticks = np.array([lo, (lo + hi) / 2, hi])
    packed.append(
        {
            "name": "latency",
            "label": "latency (ms, log)",
            "dtype": "f4",
            "data": _packed(log_ms),
            "tickvals": ticks.tolist(),
            "ticktext": [f"{10**t:.3g}" for t in ticks],
            "range": [lo - 0.02, hi + 0.02],
        }
    )
    brush = {}
    if fast_ms is not None and len(log_ms):
        brush[str(len(packed) - 1)] = [lo - 0.01, float(np.log10(fast_ms)) + 1e-6]
    return {"key": list(key), "title": title, "n": len(log_ms), "axes": packed,
            "brush": brush}  # fmt: skip


def importance_figure(
    names: Sequence[str], scores: Sequence[float], spreads: Sequence[float], *, note: str = ""
) -> dict[str, Any]:
    """Horizontal bars: each decision's drop in held-out R² when shuffled, largest on top."""
    shown = list(zip(names, scores, spreads, strict=True))[:MAX_AXES][::-1]
    return {
        "data": [
            {
                "type": "bar",
                "orientation": "h",
                "y": [_short(n) for n, _, _ in shown],
                "x": [max(s, 0.0) for _, s, _ in shown],
                "error_x": {"type": "data", "array": [sp for _, _, sp in shown], "visible": True},
                "marker": {"color": "#4c78a8"},
                "hovertemplate": "%{y}: %{x:.3f}<extra></extra>",
            }
        ],
        "layout": {
            "height": max(180, 26 * len(shown) + 80),
            "margin": {"l": 190, "r": 20, "t": 30, "b": 40},
            "font": {"family": FONT, "size": 12},
            "xaxis": {
                "title": {"text": "drop in held-out R² when shuffled"},
                "rangemode": "tozero",
            },
            "title": {"text": note, "x": 0.01, "font": {"size": 12}},
            "plot_bgcolor": "white",
            "paper_bgcolor": "white",
        },
    }


def _short(name: str, limit: int = 28) -> str:
    return name if len(name) <= limit else name[: limit - 1] + "…"
