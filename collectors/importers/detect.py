"""Which format a log is, decided from its content (never from its name).

The first line (of up to ``PROBE_LINES``, skipping blank lines and ``#`` comments) whose JSON
has a known shape decides:
AutoTVM lines have ``input``/``config``/``result`` keys, Ansor lines ``i``/``r``, tuneloom events
``v`` and ``kind``, and MetaSchedule tuning records are ``[int, [trace, run_secs, ...]]``
(workload lines ``["<digits>", "<base64>"]``). A directory is a MetaSchedule database.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from collectors.importers import ansor, autotvm, ms_database, tuneloom_jsonl
from collectors.importers._common import (
    FORMATS,
    BadLine,
    LogFormatError,
    numbered_lines,
    parse_json,
)

# Lines tried before giving up; a few corrupt lines at the top do not hide the format.
PROBE_LINES = 20


@dataclass(frozen=True)
class Detected:
    """A path and its format; ``database`` is set for a MetaSchedule database."""

    path: Path
    format: str
    database: ms_database.DatabasePaths | None = None

    @property
    def files(self) -> tuple[Path, ...]:
        """The files read when importing (what the source fingerprint covers)."""
        if self.database is not None:
            return (self.database.record, self.database.workload)
        return (self.path,)


def classify(obj: object) -> str | None:
    """The format of one decoded line, or None."""
    if tuneloom_jsonl.looks_like(obj):
        return "tuneloom"
    if autotvm.looks_like(obj):
        return "autotvm"
    if ansor.looks_like(obj):
        return "ansor"
    if ms_database.looks_like_record(obj) or ms_database.looks_like_workload(obj):
        return "metaschedule"
    return None


def detect(path: str | Path, fmt: str | None = None) -> Detected:
    """Detect (or, with ``fmt``, take) the format of ``path``.

    Raises FileNotFoundError for a missing path and LogFormatError, naming the file, for an
    unknown format, an empty file or an incomplete MetaSchedule database.
    """
    path = Path(path)
    if fmt is not None and fmt not in FORMATS:
        raise LogFormatError(f"unknown format {fmt!r} (expected one of {list(FORMATS)})")
    if not path.exists():
        raise FileNotFoundError(2, "No such file or directory", str(path))
    if path.is_dir():
        if fmt not in (None, "metaschedule"):
            raise LogFormatError(f"{path}: a directory can only be a MetaSchedule database")
        if not (path / ms_database.RECORD_FILE).is_file():
            raise LogFormatError(
                f"{path}: directory holds no MetaSchedule database (no {ms_database.RECORD_FILE})"
            )
        return Detected(path, "metaschedule", ms_database.database_paths(path))
    found = fmt or _probe(path)
    if found == "metaschedule":
        return Detected(path, found, ms_database.database_paths(path))
    return Detected(path, found)


def _probe(path: Path) -> str:
    tried = 0
    saw_json = False
    with open(path, encoding="utf-8", errors="replace") as stream:
        for _, text in numbered_lines(stream):  # an enormous line is skipped, not read whole
            tried += 1
            try:
                found = classify(parse_json(text))
                saw_json = True
            except BadLine:
                found = None
            if found is not None:
                return found
            if tried >= PROBE_LINES:
                break
    if tried == 0:
        raise LogFormatError(f"{path}: file is empty (no lines to detect a format from)")
    what = "JSON of no known format" if saw_json else "not JSON lines"
    raise LogFormatError(
        f"{path}: unknown log format ({what}; expected a MetaSchedule database, "
        "an AutoTVM or Ansor log, or tuneloom JSONL)"
    )
