"""The schedule library: the best schedules of finished jobs and imported MetaSchedule
databases, indexed by what their workloads compute.

``index`` holds the entries and the folder (no TVM), ``sources`` reads a database being added
(no TVM), ``workloads`` describes workloads from their TIR (TVM) and ``schedule_library`` the
``ScheduleLibrary`` itself. Importing this package does not import TVM: ``describe_workload``,
``classify_block`` and ``load_workload`` load ``workloads`` when first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from collectors.importers.ms_targets import target_cores, target_dict, target_key
from tuner.metaschedule.library.index import (
    MARKER,
    OP_CLASSES,
    AddSummary,
    LibraryEntry,
    LibraryError,
    SourceInfo,
    WorkloadInfo,
)
from tuner.metaschedule.library.schedule_library import ScheduleLibrary

if TYPE_CHECKING:
    from tuner.metaschedule.library.workloads import (
        classify_block,
        describe_workload,
        load_workload,
    )

_WITH_TVM = ("classify_block", "describe_workload", "load_workload")

__all__ = [
    "MARKER",
    "OP_CLASSES",
    "AddSummary",
    "LibraryEntry",
    "LibraryError",
    "ScheduleLibrary",
    "SourceInfo",
    "WorkloadInfo",
    "classify_block",
    "describe_workload",
    "load_workload",
    "target_cores",
    "target_dict",
    "target_key",
]


def __getattr__(name: str) -> Any:
    if name in _WITH_TVM:
        from tuner.metaschedule.library import workloads

        return getattr(workloads, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
