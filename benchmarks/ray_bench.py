"""Client stages on a two-node Ray cluster on loopback vs on one node, real TVM.

Starts a Ray head pinned to core 0 (``taskset``, one CPU) on 127.0.0.1 and runs 4 small
real jobs through ``tuneloom``'s engine with ``ray=HEAD``: builds run on the head's one core
(``one_node``). Then starts a worker node pinned to core 1 and runs the same 4 jobs again on
a fresh store (``two_nodes``): builds now run on either node. The tuning process keeps select
and update on its own client core (core 0, beside the head: this machine has 2 cores) and
profiles on the local device (core 1), so the worker node's builds share the device's core
and the head's builds the client's.

Prints, side by side from one run: each configuration's wall time (the run, start-up apart)
and the ratio, where the build stages ran, and the Ray overhead per build stage: dispatch
(the call until the node starts the batch) and transfer (the node's last build until the
artifacts are written here), against the median build stage. ``--json`` prints one JSON
object instead. Both nodes are stopped by process group at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RAY = str(Path(sys.executable).with_name("ray"))
WORKLOADS = ("matmul:64", "dense:1x64x64", "matmul:96", "dense:1x128x64")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def node_env() -> dict[str, str]:
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.pop("RAY_ADDRESS", None)
    return env


def start_node(folder: Path, core: int, args: list[str]) -> subprocess.Popen[bytes]:
    """``ray start --block`` pinned to ``core``, in its own process group."""
    folder.mkdir(parents=True)
    command = [
        "taskset", "-c", str(core), RAY, "start", "--block", *args,
        "--node-ip-address=127.0.0.1", "--num-cpus=1", "--object-store-memory=100000000",
        f"--temp-dir={folder}", "--disable-usage-stats",
    ]  # fmt: skip
    with open(folder / "ray.log", "wb") as log:
        return subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env=node_env(), start_new_session=True
        )


def stop_node(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=10)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def alive_nodes(address: str) -> int:
    code = (
        "import ray,logging;"
        f"ray.init(address='{address}',logging_level=logging.ERROR,log_to_driver=False);"
        "print(sum(1 for n in ray.nodes() if n['Alive']))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=node_env(), capture_output=True, text=True, timeout=60
    )
    return int(out.stdout.split()[-1]) if out.returncode == 0 and out.stdout.strip() else 0


def wait_for(nodes: int, address: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("ray start exited early")
        if alive_nodes(address) >= nodes:
            return
        time.sleep(1)
    raise RuntimeError(f"the cluster did not reach {nodes} node(s)")


def run_jobs(address: str, folder: Path, args: argparse.Namespace) -> dict[str, Any]:
    """The 4 jobs on the cluster: wall time, where builds ran, Ray overhead per build."""
    from collectors.jobs import JobSpec
    from tuner.engine import Engine, EngineSettings

    folder.mkdir(parents=True)
    settings = EngineSettings(runs_dir=folder / "runs", ray=address, profile_models=False)
    with Engine(settings, store=folder / "runs.db") as engine:
        for workload in WORKLOADS:
            engine.submit(
                JobSpec(
                    workloads=(workload,), trials=args.trials, batch=args.batch,
                    population=args.population, seed=0,
                )
            )  # fmt: skip
        report = engine.run()
        timings = engine.workers.ray_build_timings()
        stages = [s.event for s in engine.store.read(kinds=["stage"])]
    builds = [s for s in stages if s.stage == "build" and s.status == "ok"]
    build_s = statistics.median(s.end - s.start for s in builds)
    overhead = [t.overhead_s for t in timings]
    by_resource: dict[str, int] = {}
    for stage in builds:
        by_resource[stage.resource] = by_resource.get(stage.resource, 0) + 1
    return {
        "wall_s": round(report.wall_s, 3),
        "setup_s": round(report.setup_s, 3),
        "jobs_finished": sum(job.state == "finished" for job in report.jobs),
        "build_stages_by_resource": by_resource,
        "median_build_stage_s": round(build_s, 4),
        "median_dispatch_s": round(statistics.median(t.dispatch_s for t in timings), 4),
        "median_transfer_s": round(statistics.median(t.transfer_s for t in timings), 4),
        "median_overhead_s": round(statistics.median(overhead), 4),
        "overhead_share_of_build": round(statistics.median(overhead) / build_s, 4),
        "median_artifact_kb_per_stage": round(
            statistics.median(t.artifact_bytes for t in timings) / 1024, 1
        ),
        "busy_s": {n: t["busy_s"] for n, t in report.resources.items()},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=32, help="trials per job (default 32)")
    parser.add_argument("--batch", type=int, default=8, help="candidates per batch (default 8)")
    parser.add_argument("--population", type=int, default=64, help="search population")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    if len(os.sched_getaffinity(0)) < 2:
        print("needs 2 cores (one per node)", file=sys.stderr)
        return 2
    folder = Path(tempfile.mkdtemp(prefix="tlbench", dir="/tmp"))
    port = free_port()
    address = f"127.0.0.1:{port}"
    nodes: list[subprocess.Popen[bytes]] = []
    try:
        head_args = [
            "--head", f"--port={port}", "--include-dashboard=false",
            f"--ray-client-server-port={free_port()}",
        ]  # fmt: skip
        nodes.append(start_node(folder / "head", 0, head_args))
        wait_for(1, address, nodes[0])
        one = run_jobs(address, folder / "one", args)
        nodes.append(start_node(folder / "worker", 1, ["--address", address]))
        wait_for(2, address, nodes[1])
        two = run_jobs(address, folder / "two", args)
    finally:
        for node in reversed(nodes):
            stop_node(node)
        shutil.rmtree(folder, ignore_errors=True)
    result = {
        "jobs": list(WORKLOADS),
        "trials": args.trials,
        "batch": args.batch,
        "one_node": one,
        "two_nodes": two,
        "speedup_two_vs_one": round(one["wall_s"] / two["wall_s"], 3),
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"4 jobs x {args.trials} trials (batch {args.batch}), Ray on loopback")
    for name in ("one_node", "two_nodes"):
        r = result[name]
        print(
            f"  {name:<9} wall {r['wall_s']:7.2f} s  builds {r['build_stages_by_resource']}\n"
            f"            median build stage {r['median_build_stage_s'] * 1e3:.1f} ms, Ray "
            f"overhead {r['median_overhead_s'] * 1e3:.1f} ms (dispatch "
            f"{r['median_dispatch_s'] * 1e3:.1f} + transfer {r['median_transfer_s'] * 1e3:.1f}) "
            f"= {r['overhead_share_of_build']:.1%}"
        )
    print(f"  two nodes vs one: {result['speedup_two_vs_one']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
