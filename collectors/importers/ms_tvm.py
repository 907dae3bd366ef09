"""TVM decoding of MetaSchedule database workloads, run in a child process.

TVM can crash the whole process (segmentation fault, floating-point exception) on a database
line that is valid JSON but not a valid IRModule. So decoding runs in a worker process
(``WORKER_COMMAND``, which runs ``serve``) that speaks JSON lines over its stdin/stdout;
``TvmDecoder`` in the importer's process restarts it after a crash and reports the workload it
could not decode, which keeps its plain description.

Requests: ``{"op": "workload", "key": k, "line": [hash, base64]}`` ->
``{"ok": true, "script": str|null, "flops": float|null}``; failures answer
``{"ok": false, "error": str}``. The worker first writes ``{"ready": true}`` (or ``false`` with
the error when TVM does not import).
"""

from __future__ import annotations

import json
import math
import os
import select
import subprocess
import sys
from pathlib import Path
from typing import Any

from collectors.importers._common import stop_worker

REPO_ROOT = Path(__file__).resolve().parents[2]
# Not ``-m``: importing the package already imports this module (through the importer), so
# running it as ``__main__`` would load a second copy.
WORKER_COMMAND = [sys.executable, "-c", "from collectors.importers.ms_tvm import serve; serve()"]


class DecoderCrashed(RuntimeError):
    """The worker died or stopped answering while decoding one request."""


class TvmDecoder:
    """Client of the decoding worker: starts it lazily, restarts it after a crash.

    ``notes`` collects what went wrong (TVM missing, a crash on some record), for the summary.
    After ``max_restarts`` crashes decoding is switched off for the rest of the import.
    """

    def __init__(
        self,
        *,
        timeout_s: float = 120.0,
        max_restarts: int = 3,
        command: list[str] | None = None,
    ) -> None:
        self.command = command or WORKER_COMMAND
        self.timeout_s = timeout_s
        self.max_restarts = max_restarts
        self.notes: list[str] = []
        self.crashes = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._buffer = b""
        self._disabled = False

    @property
    def enabled(self) -> bool:
        """False once TVM proved missing or the worker crashed too often."""
        return not self._disabled

    def workload(self, key: int, line: list[Any]) -> dict[str, Any] | None:
        """Decode and remember a workload: ``{"script", "flops"}``, or None if TVM cannot."""
        answer = self._ask({"op": "workload", "key": key, "line": line}, what=f"workload {key}")
        if answer is None or not answer.get("ok"):
            return None
        flops = answer.get("flops")
        if type(flops) is not float or not math.isfinite(flops) or flops <= 0:
            answer["flops"] = None
        return answer

    def close(self) -> None:
        """Stop the worker."""
        proc, self._proc = self._proc, None
        stop_worker(proc)

    # --- worker management -------------------------------------------------------------

    def _ask(self, request: dict[str, Any], *, what: str) -> dict[str, Any] | None:
        if self._disabled:
            return None
        try:
            if self._proc is None and not self._start():
                return None
            return self._call(request)
        except DecoderCrashed as exc:
            self.crashes += 1
            self.close()
            self.notes.append(f"TVM crashed decoding {what} ({exc}); kept its plain description")
            if self.crashes > self.max_restarts:
                self._disabled = True
                self.notes.append("TVM decoding switched off after repeated crashes")
            return None

    def _start(self) -> bool:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p
        )
        self._buffer = b""
        try:
            self._proc = subprocess.Popen(
                self.command,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                env=env,
            )
        except OSError as exc:
            hello: dict[str, Any] = {"ready": False, "error": f"cannot start a worker: {exc}"}
        else:
            hello = self._read()
        if not hello.get("ready"):
            self.close()
            self._disabled = True
            self.notes.append(
                f"TVM is not available ({hello.get('error', 'unknown')}): workloads without "
                "TVMScript and FLOPs"
            )
            return False
        return True

    def _call(self, request: dict[str, Any]) -> dict[str, Any]:
        proc = self._proc
        assert proc is not None and proc.stdin is not None
        try:
            proc.stdin.write(json.dumps(request).encode() + b"\n")
            proc.stdin.flush()
        except OSError as exc:
            raise DecoderCrashed(f"worker gone: {exc}") from None
        return self._read()

    def _read(self) -> dict[str, Any]:
        proc = self._proc
        assert proc is not None and proc.stdout is not None
        fd = proc.stdout.fileno()
        while True:
            while b"\n" not in self._buffer:
                ready, _, _ = select.select([fd], [], [], self.timeout_s)
                if not ready:
                    proc.kill()
                    raise DecoderCrashed(f"no answer in {self.timeout_s:g} s")
                chunk = os.read(fd, 1 << 16)
                if not chunk:
                    code = proc.wait()
                    raise DecoderCrashed(f"worker exited with status {code}")
                self._buffer += chunk
            line, _, self._buffer = self._buffer.partition(b"\n")
            try:
                answer = json.loads(line)
            except ValueError:
                continue  # not an answer (stray output); keep reading
            if isinstance(answer, dict):
                return answer


# --- the worker ------------------------------------------------------------------------


def serve() -> None:
    """The worker: answers decoding requests on stdin until it closes."""
    # Answers go to the original stdout; anything TVM prints goes to stderr instead.
    out = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    sys.stdout = sys.stderr

    def reply(obj: dict[str, Any]) -> None:
        out.write(json.dumps(obj).encode() + b"\n")
        out.flush()

    try:
        from tvm.s_tir import meta_schedule as ms
        from tvm.s_tir.analysis import estimate_tir_flops
    except Exception as exc:  # TVM missing or broken: say so and stop
        reply({"ready": False, "error": f"{type(exc).__name__}: {exc}"[:300]})
        return
    reply({"ready": True})
    for raw in sys.stdin.buffer:
        try:
            request = json.loads(raw)
            if request["op"] != "workload":
                raise ValueError(f"unknown op {request['op']!r}")
            workload = ms.database.Workload.from_json(request["line"])
            reply({"ok": True, **_describe(workload, estimate_tir_flops)})
        except Exception as exc:  # one bad request; the worker goes on
            reply({"ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]})


def _describe(workload: Any, estimate_tir_flops: Any) -> dict[str, Any]:
    try:
        script = workload.mod.script()
    except Exception:  # printing is best effort
        script = None
    try:
        flops = float(estimate_tir_flops(workload.mod))
    except Exception:  # not every workload has a countable loop nest
        flops = None
    if flops is None or not math.isfinite(flops) or flops <= 0:
        flops = None
    return {"script": script, "flops": flops}
