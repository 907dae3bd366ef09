"""What every page's callbacks share: the store view, job control, code views, access,
uploads."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from collectors._base import BaseStore
from collectors.jobs import Control
from dashboard.access import Access
from dashboard.codeviews import CodeViews
from dashboard.data import StoreView
from dashboard.uploads import UploadFolder

BARS_LIMIT = 5_000  # exact Gantt bars up to this many visible stages, occupancy raster above
RASTER_BINS = 600


@dataclass
class AppContext:
    """Shared state of one dashboard app."""

    store: BaseStore
    view: StoreView
    codes: CodeViews
    control: Control | None = None
    access: Access = field(default_factory=Access)
    live: bool = True
    title: str = "tuneloom"
    bars_limit: int = BARS_LIMIT
    raster_bins: int = RASTER_BINS
    uploads: UploadFolder = field(default_factory=UploadFolder)
    samples: Mapping[str, Path] = field(default_factory=dict)
    hub: Any = None  # a collectors.hub.Hub the live push follows; imports publish to it
    library: str | None = None  # the schedule library submitted jobs may start from
    # Called with the folder of each MetaSchedule database imported; returns a note to show.
    on_database_imported: Callable[[Path], str] | None = None
    _revision: Any = field(default_factory=itertools.count)

    @property
    def writable(self) -> bool:
        """Whether the store takes new events (a store opened read-only does not)."""
        return not getattr(self.store, "read_only", False)

    def revision(self) -> int:
        """A fresh number for each figure the server builds (tells the client it changed)."""
        return next(self._revision)


Window = tuple[float, float]


def read_filter(data: dict[str, Any] | None) -> tuple[list[str], list[str], Window | None]:
    """(jobs, tasks, window) from the shared filter store; empty lists mean all."""
    data = data or {}
    window = data.get("window")
    return (
        list(data.get("jobs") or []),
        list(data.get("tasks") or []),
        (float(window[0]), float(window[1])) if window else None,
    )
