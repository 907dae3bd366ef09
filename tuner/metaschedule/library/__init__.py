"""The schedule library: the best schedules of finished jobs and imported MetaSchedule
databases, indexed by what their workloads compute (see ``index``)."""

from tuner.metaschedule.library.index import (
    MARKER,
    OP_CLASSES,
    AddSummary,
    LibraryEntry,
    LibraryError,
    ScheduleLibrary,
    SourceInfo,
    WorkloadInfo,
    classify_block,
    describe_workload,
    load_workload,
    target_cores,
    target_dict,
    target_key,
)

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
