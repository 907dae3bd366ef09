"""Importers: other tools' tuning logs (and tuneloom JSONL) as event-contract events.

Each importer streams (constant memory in the file size) and the format is detected from the
content. ``import_paths(paths, store)`` detects every path first, then appends each file's
events in batches and returns one ``FileSummary`` per file. Imported traces keep the tool's
own form; ``readable_trace(record)`` renders one for a viewer.
"""

from collectors.importers._common import FORMATS, LogFormatError
from collectors.importers.detect import Detected, detect
from collectors.importers.driver import (
    FileSummary,
    WorkloadSummary,
    import_file,
    import_paths,
    iter_events,
)
from collectors.importers.traces import readable_trace

__all__ = [
    "FORMATS",
    "Detected",
    "FileSummary",
    "LogFormatError",
    "WorkloadSummary",
    "detect",
    "import_file",
    "import_paths",
    "iter_events",
    "readable_trace",
]
