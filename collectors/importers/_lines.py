"""How a measured-log format (AutoTVM, Ansor) reads one line into a ``Measurement``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

from collectors.importers._common import BadLine, parse_json


class Measurement(NamedTuple):
    """One measured candidate as read from a log line."""

    key: str  # the workload key: measurements of one workload share it
    target: str | None
    # A list as read (checked by ``measured_log_events``: finite numbers when ``error_no``
    # is 0), or a tuple of finite floats already checked (``quick_measurement``, a worker).
    costs: Any
    error_no: int
    all_cost: float | None
    ts: float
    trace: str


@dataclass(frozen=True)
class LineFormat:
    """How a format reads one log line into a ``Measurement``.

    ``quick(text)``, then ``fast(text)``, when given, are tried first on the raw text and
    return None for lines they leave to the next reading: ``quick`` (msgspec) never raises
    and returns the measurement's fields as a plain tuple; ``fast`` may raise BadLine; the
    general path is ``parse_json``, ``looks_like(decoded)`` (else the line is bad with
    ``not_this_format``), then ``measurement(decoded)``. Every function is a module-level
    one, so that worker processes can use the format too.
    """

    name: str  # the format's name (its module in collectors.importers)
    looks_like: Callable[[object], bool]
    measurement: Callable[[Any], Measurement]
    not_this_format: str
    fast: Callable[[str], Measurement | None] | None = None
    quick: Callable[[str], tuple[Any, ...] | None] | None = None

    def measure(self, text: str) -> tuple[Any, ...]:
        """The measurement of one line (a ``Measurement`` or a plain tuple of its fields);
        raises BadLine saying why it has none."""
        if self.quick is not None and (found := self.quick(text)) is not None:
            return found
        try:
            item = None if self.fast is None else self.fast(text)
            if item is None:
                obj = parse_json(text)
                if not self.looks_like(obj):
                    raise BadLine(self.not_this_format)
                item = self.measurement(obj)
        except BadLine:
            raise
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise BadLine(f"unexpected structure ({type(exc).__name__}: {exc})"[:200]) from None
        return item
