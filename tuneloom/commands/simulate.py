"""`tuneloom simulate`: run simulated jobs on a discrete-event clock (no TVM)."""

from __future__ import annotations

import argparse

from tuneloom.cli import UserError, emit_result


def add_parser(sub: argparse._SubParsersAction) -> None:
    from tuner.policies import DEFAULT_POLICY, POLICIES
    from tuner.simulation import DISTRIBUTIONS

    parser = sub.add_parser(
        "simulate",
        help="Run simulated jobs on a discrete-event clock (no TVM).",
        description=(
            "Run N simulated tuning jobs under the real scheduler on a simulated clock. Stage "
            "times are drawn from seeded distributions around measured means (default: the "
            "thesis means). Prints the makespan, its lower bound, utilization per resource "
            "and the mean job completion time, in simulated seconds, and the scheduler's own "
            "decision time per dispatched stage (measured wall time)."
        ),
    )
    parser.add_argument("--jobs", type=int, default=4, help="number of jobs (default 4)")
    parser.add_argument("--clients", type=int, default=1, help="client resources (default 1)")
    parser.add_argument(
        "--devices", type=int, default=None, help="device resources, all of one kind (default 1)"
    )
    parser.add_argument(
        "--device-kinds",
        metavar="NAME:COUNT:SPEED,...",
        help=(
            "devices of several kinds instead of --devices, e.g. fast:8:1.0,slow:8:2.5: COUNT "
            "devices named device:sim:NAME:i whose profile stages take SPEED times the "
            "distribution's profile time; each job tunes for one kind, jobs spread over the "
            "kinds in proportion to COUNT / SPEED"
        ),
    )
    parser.add_argument(
        "--policy",
        default=DEFAULT_POLICY,
        help=f"scheduling policy: {', '.join(POLICIES)} (default {DEFAULT_POLICY})",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--tasks", type=int, default=4, help="tasks per job (default 4)")
    parser.add_argument(
        "--mixed",
        action="store_true",
        help="draw each job's task count from 1..2*TASKS-1 (mixed-size jobs)",
    )
    parser.add_argument(
        "--iterations", type=int, default=8, help="tuning iterations per task (default 8)"
    )
    parser.add_argument(
        "--candidates", type=int, default=64, help="candidates per iteration (default 64)"
    )
    parser.add_argument(
        "--distribution",
        default="thesis",
        help=f"stage-time distribution: {', '.join(DISTRIBUTIONS)} (default thesis)",
    )
    parser.add_argument(
        "--db", metavar="PATH", help="also store the simulated events in this store (SQLite file)"
    )
    parser.add_argument(
        "--records",
        action="store_true",
        help="with --db, also store invented per-candidate records (labelled simulated)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tuner._base import TunerError
    from tuner.policies import create_policy
    from tuner.simulation import (
        job_sizes,
        new_source,
        parse_device_kinds,
        simulate,
        stage_times,
    )

    # Check everything before anything runs or a store is created.
    kinds = ()
    if args.device_kinds is not None:
        if args.devices is not None:
            raise UserError("give --devices or --device-kinds, not both")
        try:
            kinds = parse_device_kinds(args.device_kinds)
        except TunerError as exc:
            raise UserError(f"--device-kinds: {exc}") from None
    devices = 1 if args.devices is None else args.devices
    for option in ("jobs", "clients", "tasks", "iterations", "candidates"):
        value = getattr(args, option)
        if value <= 0:
            raise UserError(f"--{option} must be a positive integer, got {value}")
    if devices <= 0:
        raise UserError(f"--devices must be a positive integer, got {devices}")
    if args.records and not args.db:
        raise UserError("--records needs --db (records are only stored, never printed)")
    create_policy(args.policy)
    stage_times(args.distribution)

    sizes = job_sizes(args.jobs, args.tasks, mixed=args.mixed, seed=args.seed)
    store = None
    source = new_source()
    if args.db:
        from collectors.stores import open_store

        store = open_store(args.db)
    try:
        result = simulate(
            jobs=args.jobs,
            clients=args.clients,
            devices=devices,
            device_kinds=kinds,
            policy=args.policy,
            seed=args.seed,
            tasks=sizes,
            iterations=args.iterations,
            candidates=args.candidates,
            distribution=args.distribution,
            store=store,
            source=source,
            records=args.records,
        )
    finally:
        if store is not None:
            store.close()
    out = result.to_dict()
    out["tasks"] = sizes
    if args.db:
        out["db"] = args.db
        out["source"] = source
    emit_result(args, out, _human(out, 1e3 * result.per_dispatch_s))
    return 0


def _human(out: dict, decision_ms: float) -> str:
    hours = out["makespan_s"] / 3600
    jobs = out["jobs"]
    lines = [
        f"simulated run (clock: sim, simulated seconds): policy {out['policy']}, "
        f"{jobs} job{'s' if jobs != 1 else ''}, {out['clients']} client(s), "
        f"{out['devices']} device(s), seed {out['seed']}, stage times {out['distribution']}",
        f"  makespan          {out['makespan_s']:12.1f} s  ({hours:.2f} h)",
        f"  lower bound       {out['lower_bound_s']:12.1f} s  "
        f"(makespan / bound {out['makespan_over_lower_bound']:.3f})",
        f"  mean completion   {out['mean_completion_s']:12.1f} s",
        "  utilization       " + _utilization(out["utilization"]),
    ]
    if "device_kinds" in out:
        lines.append(
            "  device kinds      "
            + ", ".join(
                f"{k['name']}: {k['count']} x profile time {k['speed']:g}"
                for k in out["device_kinds"]
            )
        )
    lines.append(
        f"  scheduler         {out['dispatches']} stages dispatched, "
        f"{decision_ms:.3f} ms decision time each (measured, wall)"
    )
    if "db" in out:
        lines.append(f"  events stored in {out['db']} (source {out['source']})")
    return "\n".join(lines)


def _utilization(by_resource: dict[str, float]) -> str:
    """Each resource's utilization, or with many resources each pool's mean, min and max."""
    if len(by_resource) <= 16:
        return ", ".join(f"{r} {u:.1%}" for r, u in by_resource.items())
    pools: dict[str, list[float]] = {}
    for resource, used in by_resource.items():
        pools.setdefault(resource.rpartition(":")[0], []).append(used)
    return "; ".join(
        f"{pool} x{len(u)} mean {sum(u) / len(u):.1%} (min {min(u):.1%}, max {max(u):.1%})"
        for pool, u in pools.items()
    )
