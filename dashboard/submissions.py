"""What a new job or a job control may carry, checked alike on the Jobs page and in the HTTP
API: priorities, trial budgets, stop rules, zoo model names (from the tuner's catalog)."""

from __future__ import annotations

from typing import Any

from collectors.jobs import ALLOCATORS, Catalog, JobSpecError, parse_duration
from dashboard.context import AppContext

MAX_TRIALS = 1_000_000
MAX_PRIORITY = 1_000_000


class FormError(ValueError):
    """A field holds something the tuner cannot take; the message says which."""


def parse_priority(value: Any) -> int:
    """A priority: a whole number within +-1,000,000."""
    if value is None or value == "":
        raise FormError("Give a priority (a whole number; higher runs first).")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
        raise FormError(f"The priority must be a whole number, got {value!r}.")
    if abs(value) > MAX_PRIORITY:
        raise FormError(f"The priority must be between -{MAX_PRIORITY:,} and {MAX_PRIORITY:,}.")
    return int(value)


def check_allocator(value: Any) -> str:
    """How the budget spreads over a job's tasks (empty: ``gain``)."""
    allocator = (value or "gain") if isinstance(value, str | type(None)) else value
    if allocator not in ALLOCATORS:
        raise FormError(f"Unknown allocator {allocator!r} (choices: {', '.join(ALLOCATORS)}).")
    return allocator


def check_time_budget(value: Any) -> float | None:
    """A time budget such as ``90s``, ``10m`` or ``1h30m`` (empty: none)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        return parse_duration(str(value))
    except JobSpecError as exc:
        raise FormError(f"Time budget: {exc}.") from None


def check_target_latency(value: Any) -> float | None:
    """A target latency in milliseconds, a positive number (empty: none)."""
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1e9:
        raise FormError(f"The target latency must be a positive number of ms, got {value!r}.")
    return float(value)


def check_trials(trials: Any) -> int | None:
    """A trial budget: None (the tuner's default) or a whole number from 1 to 1,000,000."""
    if trials is None:
        return None
    if isinstance(trials, bool) or not isinstance(trials, (int, float)) or trials != int(trials):
        raise FormError(f"Trials must be a whole number, got {trials!r}.")
    if not 1 <= trials <= MAX_TRIALS:
        raise FormError(f"Trials must be between 1 and {MAX_TRIALS:,}, got {int(trials)}.")
    return int(trials)


def catalog(ctx: AppContext) -> Catalog:
    """What the attached tuner takes (zoo models, devices); empty without a tuner."""
    if ctx.control is None:
        return Catalog()
    try:
        return ctx.control.catalog()
    except Exception:  # the form still works with workload specs and the default device
        return Catalog()


def check_zoo(ctx: AppContext, zoo: str) -> str:
    """``zoo`` when it is one of the tuner's zoo models, else FormError listing them."""
    models = catalog(ctx).models
    if zoo not in models:
        raise FormError(f"Unknown zoo model {zoo!r} (zoo: {', '.join(models) or 'none'}).")
    return zoo
