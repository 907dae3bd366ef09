"""Events, stores, live fan-out and JSON lines: everything tuneloom records.

``open_store(path)`` opens the SQLite store (or ``":memory:"``); producers write through an
``EventSink``; live readers subscribe to a ``Hub``; ``export_jsonl``/``import_jsonl`` move
events between stores and files.
"""

from collectors._base import (
    JOB_COLUMNS,
    RECORD_COLUMNS,
    STAGE_COLUMNS,
    TASK_COLUMNS,
    BaseStore,
    Stored,
    StoreError,
)
from collectors.events import (
    EVENT_TYPES,
    SCHEMA_VERSION,
    Event,
    EventError,
    GraphEvent,
    JobEvent,
    MemoryEvent,
    ProfileEvent,
    RecordEvent,
    ResourceEvent,
    StageEvent,
    TaskEvent,
    from_dict,
    from_json,
    read_jsonl,
    write_jsonl,
)
from collectors.hub import Batch, Gap, Hub, Subscription
from collectors.jsonl import ImportSummary, JsonlImportError, export_jsonl, import_jsonl
from collectors.memory_store import MemoryStore
from collectors.sink import EventSink
from collectors.sqlite_store import SQLiteStore
from collectors.stores import open_store

__all__ = [
    "EVENT_TYPES",
    "JOB_COLUMNS",
    "RECORD_COLUMNS",
    "SCHEMA_VERSION",
    "STAGE_COLUMNS",
    "TASK_COLUMNS",
    "BaseStore",
    "Batch",
    "Event",
    "EventError",
    "EventSink",
    "Gap",
    "GraphEvent",
    "Hub",
    "ImportSummary",
    "JobEvent",
    "JsonlImportError",
    "MemoryEvent",
    "MemoryStore",
    "ProfileEvent",
    "RecordEvent",
    "ResourceEvent",
    "SQLiteStore",
    "StageEvent",
    "StoreError",
    "Stored",
    "Subscription",
    "TaskEvent",
    "export_jsonl",
    "from_dict",
    "from_json",
    "import_jsonl",
    "open_store",
    "read_jsonl",
    "write_jsonl",
]
