"""Exporters: a store's stages as a Chrome trace, and the best record per workload and target
as a MetaSchedule database. (JSON lines export lives in ``collectors.jsonl``.)"""

from collectors.exporters.best_db import BestDbSummary, databases_in_store, export_best_db
from collectors.exporters.chrome_trace import TraceSummary, export_chrome_trace

__all__ = [
    "BestDbSummary",
    "TraceSummary",
    "databases_in_store",
    "export_best_db",
    "export_chrome_trace",
]
