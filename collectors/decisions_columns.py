"""The decisions of many candidates of one MetaSchedule instruction list, read at once.

Candidates that share their instructions (``decisions.MsPlan``) usually share the shape of
their decisions too: the same sampling instructions in the same order, tiles of the same
lengths, integers only. Their compact decisions texts then all match one pattern, whose
integers are the decisions; the named features come out as whole columns. A candidate
whose text does not match, or whose choice is not one of its options, is left to
``MsPlan.decisions`` (which names the reason), so the result is the same either way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from itertools import compress
from typing import Any

import numpy as np

from collectors.decisions import MsPlan, level_names, location_text

# A JSON integer that fits in int64 (at most 18 digits).
_INT = r"-?(?:0|[1-9][0-9]{0,17})"
_NO_BRACKETS = str.maketrans("", "", "[]")


@dataclass(frozen=True)
class ColumnReader:
    """Reads the decisions texts of candidates whose decisions have one shape."""

    plan: MsPlan
    pattern: re.Pattern[str]
    slots: dict[int, tuple[int, int]]  # sampling index -> (its first integer, how many)
    stride: int  # integers per candidate, the sampling indices included

    def read(self, texts: list[str]) -> tuple[dict[str, Any], np.ndarray]:
        """Features of the candidates whose text (``[[index,decision],...]``) has this shape,
        as columns, and which candidates those are (a mask over ``texts``)."""
        match = self.pattern.fullmatch
        ok = np.fromiter((match(text) is not None for text in texts), dtype=bool, count=len(texts))
        if not ok.any():
            return {}, ok
        # Matching texts hold only integers, brackets and commas: without the brackets, one
        # comma-separated list of ``stride`` integers per candidate (indices and decisions).
        joined = ",".join(compress(texts, ok)).translate(_NO_BRACKETS)
        ints = np.fromstring(joined, dtype=np.int64, sep=",")
        if ints.size != int(ok.sum()) * self.stride:
            return {}, np.zeros(len(texts), dtype=bool)
        ints = ints.reshape(-1, self.stride)
        values: dict[int, Any] = {}
        good = np.ones(len(ints), dtype=bool)
        for index, _, role, options in self.plan.samples:
            first, count = self.slots[index]
            if role == "tile":
                values[index] = ints[:, first : first + count]
                continue
            codes = ints[:, first]
            if role == "categorical":
                good &= (codes >= 0) & (codes < len(options or ()))
            values[index] = codes
        if not good.all():
            ok[np.flatnonzero(ok)[~good]] = False
            values = {i: v[good] for i, v in values.items()}
        return self._features(values), ok

    def _features(self, values: dict[int, Any]) -> dict[str, Any]:
        plan = self.plan
        out: dict[str, Any] = {}
        tiles = [index for index, _, role, _ in plan.samples if role == "tile"]
        for loop, index in zip(plan.tile_loops, tiles, strict=True):
            block = values[index]
            for k, level in enumerate(level_names(block.shape[1])):
                out[f"tile {loop}[{level}]"] = block[:, k]
        roles = {index: (role, options) for index, _, role, options in plan.samples}
        for name, index in plan.named:
            role, options = roles[index]
            codes = values[index]
            if role == "categorical":
                out[name] = [options[c] for c in codes.tolist()]
            else:
                text = {c: location_text(c) for c in set(codes.tolist())}
                out[name] = [text[c] for c in codes.tolist()]
        if all(k < self.slots[index][1] for index, k in plan.order_factors):
            for name, refs in plan.derived_factors:
                product = np.ones(len(next(iter(values.values()))), dtype=np.int64)
                for index, k in refs:
                    product = product * values[index][:, k]
                out[name] = product
        return out


def column_reader(plan: MsPlan, decisions: Any) -> ColumnReader | None:
    """The reader of candidates whose decisions have the shape of ``decisions`` (one
    candidate's, as JSON), or None when the plan's decisions are not all tiles, choices and
    compute locations or ``decisions`` is not of that shape."""
    if plan.error is not None or not isinstance(decisions, list):
        return None
    roles = {index: role for index, _, role, _ in plan.samples}
    if any(role not in ("tile", "categorical", "location") for role in roles.values()):
        return None
    parts: list[str] = []
    slots: dict[int, tuple[int, int]] = {}
    first = 0
    for item in decisions:
        if not (isinstance(item, list) and len(item) == 2 and type(item[0]) is int):
            return None
        index, value = item
        if index not in roles or index in slots:
            return None
        if roles[index] == "tile":
            if not (isinstance(value, list) and value and all(type(v) is int for v in value)):
                return None
            count = len(value)
            parts.append(rf"\[{index},\[{','.join([_INT] * count)}\]\]")
        else:
            if type(value) is not int:
                return None
            count = 1
            parts.append(rf"\[{index},{_INT}\]")
        slots[index] = (first + 1, count)  # after the sampling index
        first += 1 + count
    if set(slots) != set(roles):
        return None
    return ColumnReader(plan, re.compile(r"\[" + ",".join(parts) + r"\]"), slots, first)
