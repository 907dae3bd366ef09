"""What a new job or a job control may carry, checked alike on the Jobs page and in the HTTP
API: priorities, trial budgets, zoo model names (from the tuner's catalog)."""

from __future__ import annotations

from typing import Any

from collectors.jobs import Catalog
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
