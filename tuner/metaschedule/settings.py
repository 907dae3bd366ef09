"""Settings of a MetaSchedule job, in one record: its budget, batch, search, seed, target and
device pool, and where reuse starts it from."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tvm.s_tir import meta_schedule as ms

from tuner._base import SIBLING_SCOPES, TunerError
from tuner.allocation import ALLOCATORS
from tuner.quiet import check_retime

if TYPE_CHECKING:
    from tuner.metaschedule.reuse import ReuseSettings

LOCAL_POOL = "device:llvm"  # this host's CPU cores set aside for profiles
GPU_POOL = "device:cuda"  # this host's CUDA GPUs


METASCHEDULE_POPULATION = 512  # MetaSchedule's default, sized for a machine of many cores
POPULATION_PER_CORE = 128


def population_for_cores(client_cores: int) -> int:
    """The default population for a search on ``client_cores`` cores: 128 per core, at most
    MetaSchedule's 512. Every select evolves the whole population for 4 generations, so its
    cost grows with the population and shrinks with the cores that share it; on one core a
    population of 128 selects ~2x faster than 512 and found schedules as fast
    (``benchmarks/population_bench.py``)."""
    return min(METASCHEDULE_POPULATION, POPULATION_PER_CORE * max(1, client_cores))


STALL_GAIN = 0.01  # a batch that improves a task's best by less than this has stalled


def stalled(history: Sequence[float], *, batches: int = 2, gain: float = STALL_GAIN) -> bool:
    """Whether a task's search stalled: after at least ``batches`` batches, its last batch
    improved its best latency (``history``: the best after each batch) by less than ``gain``."""
    if len(history) < batches or not math.isfinite(history[-1]):
        return False
    return history[-1] > history[-2] * (1 - gain)


def first_stall(history: Sequence[float]) -> int | None:
    """After how many batches a task's search first ``stalled`` (``history``: the best after
    each batch), or None if it never did: how a restarted job knows which of its searches
    had grown."""
    for batches in range(1, len(history) + 1):
        if stalled(history[:batches]):
            return batches
    return None


def search_batch(batch: int, spare: int, *, filtered: bool) -> int:
    """Candidates a select asks its search for: ``batch``, and ``spare`` more where the driver
    drops some of what the search proposes (``filtered``: a grown search must not propose
    what the first one measured, nor a search started again after a restart), so that the
    batch stays full instead of leaving a remainder that costs a select of its own."""
    return batch + spare if filtered else batch


@dataclass(frozen=True, slots=True)
class SearchConfig:
    """Evolutionary search and cost model settings: MetaSchedule's defaults, except the
    population, sized to the client cores unless given (``population_for_cores``), and the
    XGBoost warm-up, lowered so small jobs get predictions.

    ``grow_when_stalled``: a task searching with the population sized to few cores (fast
    selects while the easy gains come) switches to MetaSchedule's population once its search
    stalls (``stalled``), where finding a faster schedule takes a wider search.

    ``siblings``: schedules a select takes, ahead of the search's candidates, from the best
    schedules of other tasks of the same op class (``tuner.metaschedule.siblings``; 0: none,
    and none offered); ``siblings_from``: whose tasks, the job's own (``"job"``) or those of
    every job running in the same engine on the same target (``"all-jobs"``).

    ``spare_share``: a search whose candidates the driver filters is asked for this share of
    the batch more than the batch (``spare``, ``search_batch``), to keep its batches full;
    the search never proposes the ones left over again. 0 (the default): exactly the batch.
    Measured, the spare saved the short batch's extra select but the searches ended slower:
    that select is the one with the best-trained cost model
    (``benchmarks/batch_fill_bench.py``)."""

    population_size: int | None = None
    init_measured_ratio: float = 0.2
    init_min_unmeasured: int = 50
    genetic_num_iters: int = 4
    genetic_mutate_prob: float = 0.85
    max_fail_count: int = 5
    eps_greedy: float = 0.05
    xgb_warmup_samples: int = 32
    grow_when_stalled: bool = True
    siblings: int = 1
    siblings_from: str = "all-jobs"
    spare_share: float = 0.0

    def __post_init__(self) -> None:
        share = self.spare_share
        if not isinstance(share, int | float) or isinstance(share, bool) or not 0 <= share <= 1:
            raise TunerError(f"spare_share must be a number from 0 to 1, got {share!r}")
        value = self.siblings
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise TunerError(f"siblings must be a whole number >= 0, got {value!r}")
        if self.siblings_from not in SIBLING_SCOPES:
            raise TunerError(
                f"unknown siblings_from {self.siblings_from!r} "
                f"(one of: {', '.join(SIBLING_SCOPES)})"
            )

    def population(self, client_cores: int, *, grown: bool = False) -> int:
        """The population a search on ``client_cores`` cores evolves (``grown``: after it
        stalled, if it may grow)."""
        if self.population_size is not None:
            return self.population_size
        if grown and self.grow_when_stalled:
            return METASCHEDULE_POPULATION
        return population_for_cores(client_cores)

    def spare(self, batch: int) -> int:
        """Candidates a select asks for beyond a ``batch`` (``spare_share`` of it, rounded up)."""
        return math.ceil(batch * self.spare_share)

    def can_grow(self, client_cores: int) -> bool:
        """Whether a stalled search on ``client_cores`` cores gets a larger population."""
        grown = self.population(client_cores, grown=True)
        return grown > self.population(client_cores)

    def strategy(
        self, client_cores: int = 1, *, grown: bool = False
    ) -> ms.search_strategy.EvolutionarySearch:
        """MetaSchedule's evolutionary search with these settings, on ``client_cores``."""
        return ms.search_strategy.EvolutionarySearch(
            population_size=self.population(client_cores, grown=grown),
            init_measured_ratio=self.init_measured_ratio,
            init_min_unmeasured=self.init_min_unmeasured,
            genetic_num_iters=self.genetic_num_iters,
            genetic_mutate_prob=self.genetic_mutate_prob,
            max_fail_count=self.max_fail_count,
            eps_greedy=self.eps_greedy,
        )


# A test and demo sized search: ~0.4 s per select of 8 candidates on one core.
SMALL_SEARCH = SearchConfig(population_size=64, init_min_unmeasured=16)


DEFAULT_TRIALS_PER_TASK = 32


@dataclass(frozen=True)
class DriverSettings:
    """How one job tunes, in one record.

    Budget: ``trials`` is the job's whole budget, spread over its tasks by ``allocator``
    (``tuner.allocation``: ``gain``, ``gradient`` or ``uniform``), each task taking at most
    ``trials_per_task`` when that is given too; ``trials_per_task`` alone gives every task
    that many (uniform); neither gives ``DEFAULT_TRIALS_PER_TASK`` per tunable task as the
    budget. ``time_budget_s`` stops new batches once that much wall time has passed since the
    job's first stage (batches under way finish).

    ``batch_size`` candidates per iteration, ``parallel_tasks`` tasks searching at once (each
    task's stages run in order; different tasks' stages overlap on the resources), the
    ``search`` settings, the ``seed``, the codegen ``target`` (a config ``target_config``
    checked, or a name it accepts), the ``device_pool`` its profiles need (``device:llvm``,
    ``device:cuda`` or ``device:rpc:KEY``), how many times a failed profile is retried
    before the job stalls, ``reuse`` (a schedule library each task starts from, or None), and
    how would-be bests are timed again (``retime``, one of ``tuner.quiet.RETIME_MODES``).
    """

    trials: int | None = None
    trials_per_task: int | None = None
    allocator: str = "gain"
    time_budget_s: float | None = None
    batch_size: int = 16
    parallel_tasks: int = 2
    search: SearchConfig = field(default_factory=SearchConfig)
    seed: int = 0
    target: str | Mapping[str, Any] = "llvm"
    device_pool: str = LOCAL_POOL
    profile_retries: int = 2
    reuse: ReuseSettings | None = None
    retime: str = "quiet"

    def __post_init__(self) -> None:
        for name in ("trials", "trials_per_task", "batch_size", "parallel_tasks"):
            value = getattr(self, name)
            if value is None and name in ("trials", "trials_per_task"):
                continue
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                what = name.replace("_", " ")
                raise TunerError(f"{what} must be a positive integer, got {value!r}")
        if self.allocator not in ALLOCATORS:
            raise TunerError(
                f"unknown allocator {self.allocator!r} (allocators: {', '.join(ALLOCATORS)})"
            )
        budget = self.time_budget_s
        if budget is not None and not (isinstance(budget, int | float) and budget > 0):
            raise TunerError(f"time budget must be a positive number of seconds, got {budget!r}")
        check_retime(self.retime)

    def budgets(self, tunable: int) -> tuple[int, int]:
        """(the job's trial budget, each task's cap) for ``tunable`` tasks."""
        if self.trials is not None:
            return self.trials, self.trials_per_task or self.trials
        per_task = self.trials_per_task or DEFAULT_TRIALS_PER_TASK
        return per_task * tunable, (self.trials_per_task or per_task * tunable)
