"""Sample logs shipped in ``sample_logs/``: tuneloom JSONL files, explorable out of the box."""

from __future__ import annotations

from pathlib import Path

from collectors._base import BaseStore
from collectors.jsonl import import_jsonl
from tuneloom.cli import UserError

SAMPLE_DIR = Path(__file__).resolve().parents[1] / "sample_logs"
# The MetaSchedule database shipped beside a sample run, for the inspector's code views.
SAMPLE_DATABASES = {
    "tune-4-jobs": "metaschedule-matmul-128",
    "tune-cnn-model": "metaschedule-cnn-model",
}


def sample_names(folder: Path = SAMPLE_DIR) -> list[str]:
    """Names of the shipped samples (file stems of ``*.jsonl``), sorted."""
    return sorted(p.stem for p in folder.glob("*.jsonl"))


def sample_databases(name: str, folder: Path = SAMPLE_DIR) -> list[Path]:
    """The MetaSchedule database folders shipped with the sample ``name`` (maybe none)."""
    database = SAMPLE_DATABASES.get(name)
    return [folder / database] if database and (folder / database).is_dir() else []


def load_sample(name: str, store: BaseStore, folder: Path = SAMPLE_DIR) -> int:
    """Import the sample ``name`` into ``store``; returns how many events it holds."""
    names = sample_names(folder)
    if name not in names:
        known = ", ".join(names) or "none"
        raise UserError(f"no sample named {name!r} (samples: {known})")
    return import_jsonl(folder / f"{name}.jsonl", store).read


def importable_samples(folder: Path = SAMPLE_DIR) -> dict[str, Path]:
    """The samples the Import page offers: tuneloom JSONL files and MetaSchedule databases
    in ``folder`` (default: the shipped ``sample_logs/``)."""
    if not folder.is_dir():
        return {}
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.is_file() and path.suffix == ".jsonl":
            found[path.stem] = path
        elif path.is_dir() and (path / "database_tuning_record.json").is_file():
            found[path.name] = path
    return found
