"""What the fastest candidates of a task have in common, and which decisions matter.

Two measurements, both on the decoded candidates (``decisions_table.Candidates``):

- **Importance**: gradient-boosted trees (xgboost, ``hist``) fitted on 75 % of the
  candidates to predict log latency from the decisions; each decision's importance is the
  drop in R² on the held-out 25 % when that decision's values are shuffled among them
  (permutation importance, mean over repeats). When the trees do not predict held-out
  latency (R² below ``MEANINGFUL_R2``), the importances are reported as not meaningful.
  Above ``MAX_FIT`` candidates, a seeded random sample of that many is fitted.
- **Fastest share**: for each decision value, its share among the fastest ``FAST_FRACTION``
  against its share overall; a value counts only when it is markedly more common among the
  fastest (at least ``MIN_LIFT`` more, and a one-sided hypergeometric test below
  ``ALPHA`` after a Bonferroni correction over every value tested).

When neither finds anything, the summary says that no decision decides latency.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import hypergeom

from collectors.decisions import Value
from collectors.decisions_table import Candidates, encoded

FAST_FRACTION = 0.10
MIN_FIT = 30  # fewer candidates: no model is fitted
MIN_SHARE = 20  # fewer candidates: no fastest-share findings
MAX_FIT = 3_000
MEANINGFUL_R2 = 0.2
MIN_LIFT = 0.15
ALPHA = 0.01
REPEATS = 4
MAX_FINDINGS = 5


@dataclass(frozen=True)
class Importance:
    """One decision's permutation importance: the mean drop in held-out R² when its values
    are shuffled (``score``) and the spread of that drop over repeats."""

    name: str
    score: float
    spread: float


@dataclass(frozen=True)
class Finding:
    """A decision value markedly more common among the fastest candidates."""

    name: str
    value: Value
    fast_count: int
    fast_total: int
    overall_count: int
    overall_total: int
    p_value: float

    @property
    def fast_share(self) -> float:
        return self.fast_count / self.fast_total

    @property
    def overall_share(self) -> float:
        return self.overall_count / self.overall_total

    def sentence(self, fraction: float = FAST_FRACTION) -> str:
        """``tile j[inner] = 16 in 92 % of the fastest 10 % (23 of 25) vs 20 % overall``."""
        return (
            f"{self.name} = {value_text(self.value)} in {_pct(self.fast_share)} of the fastest "
            f"{_pct(fraction)} ({self.fast_count} of {self.fast_total}) vs "
            f"{_pct(self.overall_share)} overall"
        )


@dataclass(frozen=True)
class Analysis:
    """Importance, findings and the plain-words summary of one task's candidates."""

    candidates: int
    fast_total: int
    importances: tuple[Importance, ...]  # most important first
    held_out_r2: float | None  # None: no model was fitted
    method: str
    findings: tuple[Finding, ...]
    summary: tuple[str, ...]
    decides: bool  # whether some decision was found to decide latency

    @property
    def meaningful(self) -> bool:
        """Whether the fitted model predicts held-out latency well enough to rank decisions."""
        return self.held_out_r2 is not None and self.held_out_r2 >= MEANINGFUL_R2

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form (for ``tuneloom explain --json``)."""
        return {
            "candidates": self.candidates,
            "held_out_r2": self.held_out_r2,
            "method": self.method,
            "decides": self.decides,
            "importance": [
                {"decision": i.name, "score": round(i.score, 4), "spread": round(i.spread, 4)}
                for i in self.importances
            ],
            "findings": [
                {
                    "decision": f.name,
                    "value": f.value,
                    "fast_share": round(f.fast_share, 4),
                    "overall_share": round(f.overall_share, 4),
                    "p_value": f.p_value,
                }
                for f in self.findings
            ],
            "summary": list(self.summary),
        }


def analyze(cands: Candidates, *, fraction: float = FAST_FRACTION, seed: int = 0) -> Analysis:
    """Importance and fastest-share findings of ``cands``, with the summary sentences."""
    n = len(cands)
    fast_total = max(1, round(fraction * n)) if n else 0
    varying = [c for c in cands.features.columns if _varies(cands.features[c])]
    importances, r2, method = _importance(cands, varying, seed)
    findings = _findings(cands, varying, fast_total) if n >= MIN_SHARE else ()
    meaningful = r2 is not None and r2 >= MEANINGFUL_R2
    summary = _summary(n, fraction, findings, importances, r2, meaningful, varying)
    return Analysis(
        candidates=n,
        fast_total=fast_total,
        importances=importances,
        held_out_r2=r2,
        method=method,
        findings=findings,
        summary=summary,
        decides=bool(findings) or meaningful,
    )


def value_text(value: Value) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _pct(share: float) -> str:
    return f"{round(share * 100)} %"


def _varies(column) -> bool:
    values = column.dropna()
    return values.nunique() > 1 or (0 < len(values) < len(column))


def _importance(
    cands: Candidates, varying: list[str], seed: int
) -> tuple[tuple[Importance, ...], float | None, str]:
    n = len(cands)
    if n < MIN_FIT:
        return (), None, f"no model fitted: {n} candidates, at least {MIN_FIT} are needed"
    if not varying:
        return (), None, "no model fitted: every candidate made the same decisions"
    import xgboost  # imported here: only an analysis that fits a model pays for it

    rng = np.random.default_rng(seed)
    matrix, _ = encoded(cands.features[varying])
    target = np.log(np.maximum(cands.latency_secs, 1e-12))
    rows = np.arange(n)
    sampled = n > MAX_FIT
    if sampled:
        rows = rng.choice(n, MAX_FIT, replace=False)
    rows = rng.permutation(rows)
    test_count = max(10, len(rows) // 4)
    test, train = rows[:test_count], rows[test_count:]
    model = xgboost.XGBRegressor(
        n_estimators=120, max_depth=4, learning_rate=0.1, subsample=0.9,
        tree_method="hist", n_jobs=1, random_state=seed,
    )  # fmt: skip
    model.fit(matrix[train], target[train])
    x_test, y_test = matrix[test], target[test]
    r2 = _r2(y_test, model.predict(x_test))
    # Every shuffled copy of the held-out rows, predicted in one call.
    shuffled = np.repeat(x_test[None], len(varying) * REPEATS, axis=0)
    for j in range(len(varying)):
        for r in range(REPEATS):
            shuffled[j * REPEATS + r, :, j] = rng.permutation(x_test[:, j])
    predicted = model.predict(shuffled.reshape(-1, x_test.shape[1])).reshape(len(shuffled), -1)
    drops = np.array([r2 - _r2(y_test, p) for p in predicted]).reshape(len(varying), REPEATS)
    importances = sorted(
        (
            Importance(name, float(drops[j].mean()), float(drops[j].std()))
            for j, name in enumerate(varying)
        ),
        key=lambda i: -i.score,
    )
    method = (
        f"gradient-boosted trees (xgboost) fitted on {len(train):,} candidates to predict log "
        f"latency; importance = drop in R² on {len(test):,} held-out candidates when a "
        f"decision's values are shuffled (mean of {REPEATS}); held-out R² {r2:.2f}"
    )
    if sampled:
        method += f"; a random sample of {MAX_FIT:,} of the {n:,} candidates was fitted"
    return tuple(importances), r2, method


def _r2(actual: np.ndarray, predicted: np.ndarray) -> float:
    total = float(np.sum((actual - actual.mean()) ** 2))
    if total == 0.0:
        return 0.0
    return 1.0 - float(np.sum((actual - predicted) ** 2)) / total


def _findings(cands: Candidates, varying: list[str], fast_total: int) -> tuple[Finding, ...]:
    n = len(cands)
    fast = np.zeros(n, dtype=bool)
    fast[np.argsort(cands.latency_secs, kind="stable")[:fast_total]] = True
    candidates: list[Finding] = []
    tested = 0
    for name in varying:
        # Values grouped by their text, as the findings name them; missing ones left out.
        codes, uniques = pd.factorize(cands.features[name])
        present = codes >= 0
        originals = uniques.tolist()
        groups, texts = pd.factorize(np.array([str(v) for v in originals], dtype=object))
        keyed = groups[codes[present]]
        counts = np.bincount(keyed, minlength=len(texts))
        fast_counts = np.bincount(keyed, weights=fast[present], minlength=len(texts))
        tested += len(texts)
        first = {texts[g]: originals[i] for i, g in reversed(list(enumerate(groups)))}
        for i in sorted(range(len(texts)), key=lambda i: texts[i]):
            k, total = int(fast_counts[i]), int(counts[i])
            if k / fast_total - total / n < MIN_LIFT:
                continue
            p = float(hypergeom.sf(k - 1, n, total, fast_total))
            candidates.append(Finding(name, first[texts[i]], k, fast_total, total, n, p))
    threshold = ALPHA / max(tested, 1)
    kept = [f for f in candidates if f.p_value < threshold]
    kept.sort(key=lambda f: (f.p_value, -(f.fast_share - f.overall_share)))
    best: dict[str, Finding] = {}
    for finding in kept:
        best.setdefault(finding.name, finding)
    return tuple(list(best.values())[:MAX_FINDINGS])


def _summary(
    n: int,
    fraction: float,
    findings: tuple[Finding, ...],
    importances: tuple[Importance, ...],
    r2: float | None,
    meaningful: bool,
    varying: list[str],
) -> tuple[str, ...]:
    if n == 0:
        return ("No measured candidate with decoded decisions yet.",)
    if n < MIN_SHARE:
        return (
            f"Too few measured candidates ({n}) to say what the fastest {_pct(fraction)} "
            f"share: at least {MIN_SHARE} are needed.",
        )
    if not varying:
        return (f"All {n:,} candidates made the same decisions: nothing to compare.",)
    lines = []
    if findings:
        shared = "; ".join(f.sentence(fraction) for f in findings)
        lines.append(f"The fastest {_pct(fraction)} share: {shared}.")
    top = [i for i in importances if i.score > 0][:3]
    if meaningful and top:
        named = ", ".join(f"{i.name} ({i.score:.2f})" for i in top)
        lines.append(
            f"Decisions that matter most for latency (drop in held-out R² when shuffled; the "
            f"model explains held-out latency with R² {r2:.2f}): {named}."
        )
    if not findings and meaningful:
        lines.append(
            f"No single decision value is markedly more common among the fastest "
            f"{_pct(fraction)}: latency depends on the decisions together."
        )
    if not findings and not meaningful:
        model = (
            f"a model fitted on the decisions does not predict held-out latency (R² {r2:.2f})"
            if r2 is not None
            else "too few candidates to fit a model"
        )
        lines.append(
            f"No decision decides latency here: no decision value is markedly more common "
            f"among the fastest {_pct(fraction)} than overall, and {model}."
        )
    elif findings and r2 is not None and not meaningful:
        lines.append(
            f"The model fitted on the decisions predicts held-out latency poorly "
            f"(R² {r2:.2f}), so its importance ranking is not meaningful."
        )
    return tuple(lines)
