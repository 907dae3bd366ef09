"""The server's log file: native standard error (this process's and its children's) goes
there, each kind of line once with its repeats counted; Python's stderr stays on the
terminal."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tuneloom.server_log import ServerLog, line_kind


def test_lines_of_one_kind_differ_only_in_numbers_and_addresses() -> None:
    a = '[12:01:02] /src/rules.cc:58: Warning: Unknown schedule rule "meta_schedule.pool_max"'
    b = '[12:09:59] /src/rules.cc:58: Warning: Unknown schedule rule "meta_schedule.pool_max"'
    assert line_kind(a) == line_kind(b)
    assert line_kind("object at 0x7f3a10") == line_kind("object at 0x55ee01")
    assert line_kind("cannot tensorize") != line_kind("cannot vectorize")


def test_native_stderr_goes_to_the_log_once_per_kind(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "server.log"
    with ServerLog(path) as log:
        child = (
            "import os\n"
            "for i in range(50):\n"
            "    os.write(2, f'[10:00:{i:02d}] rules.cc:58: Unknown schedule rule {i}\\n'"
            ".encode())\n"
            "os.write(2, b'a different warning\\n')\n"
        )
        subprocess.run([sys.executable, "-c", child], check=True)
        os.write(2, b"[10:01:00] rules.cc:58: Unknown schedule rule 99\n")
        logging.getLogger("tuneloom.test").addHandler(log.handler())
        logging.getLogger("tuneloom.test").warning("stage of task %d failed", 1)
        logging.getLogger("tuneloom.test").warning("stage of task %d failed", 2)
        print("for the terminal", file=sys.stderr)
    lines = path.read_text().splitlines()
    body = [line for line in lines if not line.startswith("---")]
    assert body[0] == "[10:00:00] rules.cc:58: Unknown schedule rule 0"
    assert "a different warning" in body
    assert sum("stage of task" in line and "more like" not in line for line in body) == 1
    assert "(50 more like) [10:00:00] rules.cc:58: Unknown schedule rule 0" in body
    assert any(line.startswith("(1 more like)") and "stage of task 1" in line for line in body)
    assert "for the terminal" in capfd.readouterr().err
