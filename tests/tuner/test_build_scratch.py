"""Build scratch directories of pools killed before ``close`` are removed by the next pool."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from tuner.metaschedule.build import (
    ABANDONED_AFTER_S,
    SCRATCH_PREFIX,
    BuildPool,
    sweep_abandoned_scratch,
)


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _scratch(parent: Path, name: str, *, age_s: float, artifact: bool = True) -> Path:
    path = parent / name
    path.mkdir()
    if artifact:
        (path / "cand-x").mkdir()
        (path / "cand-x" / "mod.so").write_bytes(b"\0" * 16)
    stamp = time.time() - age_s
    os.utime(path, (stamp, stamp))
    return path


def test_only_old_scratch_of_a_gone_process_is_removed(tmp_path: Path) -> None:
    dead, old = _dead_pid(), ABANDONED_AFTER_S + 60
    abandoned = _scratch(tmp_path, f"{SCRATCH_PREFIX}{dead}-a1", age_s=old)
    recent = _scratch(tmp_path, f"{SCRATCH_PREFIX}{dead}-b2", age_s=1)
    alive = _scratch(tmp_path, f"{SCRATCH_PREFIX}{os.getpid()}-c3", age_s=old)
    unowned = _scratch(tmp_path, f"{SCRATCH_PREFIX}d4e5f6", age_s=old)
    other = _scratch(tmp_path, f"other-{dead}-g7", age_s=old)
    no_pid = _scratch(tmp_path, f"{SCRATCH_PREFIX}{'9' * 30}-h8", age_s=old)
    a_file = tmp_path / f"{SCRATCH_PREFIX}{dead}-file"
    a_file.write_text("not a directory")

    removed = sweep_abandoned_scratch(str(tmp_path))

    assert removed == [str(abandoned)]
    assert not abandoned.exists()
    for kept in (recent, alive, unowned, other, no_pid, a_file):
        assert kept.exists(), kept


def test_a_pool_names_its_scratch_after_its_process_and_sweeps_before_it_starts(
    tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    abandoned = _scratch(tmp_path, f"{SCRATCH_PREFIX}{_dead_pid()}-x", age_s=ABANDONED_AFTER_S * 2)
    pool = BuildPool(None, workers=1)
    try:
        scratch = Path(pool.scratch_dir)
        assert scratch.parent == tmp_path
        assert scratch.name.startswith(f"{SCRATCH_PREFIX}{os.getpid()}-")
        assert not abandoned.exists()
    finally:
        pool.close()
    assert not scratch.exists()
