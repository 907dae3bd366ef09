"""Settings of a MetaSchedule job, in one record: its budget, batch, search, seed, target and
device pool, and where reuse starts it from."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tvm.s_tir import meta_schedule as ms

from tuner._base import TunerError

if TYPE_CHECKING:
    from tuner.metaschedule.reuse import ReuseSettings

LOCAL_POOL = "device:llvm"


@dataclass(frozen=True, slots=True)
class SearchConfig:
    """Evolutionary search and cost model settings (MetaSchedule's defaults, except the
    XGBoost warm-up, which is lowered so small jobs get predictions)."""

    population_size: int = 512
    init_measured_ratio: float = 0.2
    init_min_unmeasured: int = 50
    genetic_num_iters: int = 4
    genetic_mutate_prob: float = 0.85
    max_fail_count: int = 5
    eps_greedy: float = 0.05
    xgb_warmup_samples: int = 32

    def strategy(self) -> ms.search_strategy.EvolutionarySearch:
        return ms.search_strategy.EvolutionarySearch(
            population_size=self.population_size,
            init_measured_ratio=self.init_measured_ratio,
            init_min_unmeasured=self.init_min_unmeasured,
            genetic_num_iters=self.genetic_num_iters,
            genetic_mutate_prob=self.genetic_mutate_prob,
            max_fail_count=self.max_fail_count,
            eps_greedy=self.eps_greedy,
        )


# A test and demo sized search: ~0.4 s per select of 8 candidates on one core.
SMALL_SEARCH = SearchConfig(population_size=64, init_min_unmeasured=16)



@dataclass(frozen=True)
class DriverSettings:
    """How one job tunes: ``trials`` per task, ``batch_size`` candidates per iteration, the
    ``search`` settings, the ``seed``, the codegen ``target`` (a config ``target_config``
    checked, or a name it accepts), the ``device_pool`` its profiles need (``device:llvm`` or
    ``device:rpc:KEY``), how many times a failed profile is retried before the job stalls,
    and ``reuse`` (a schedule library each task starts from, or None)."""

    trials: int
    batch_size: int = 16
    search: SearchConfig = field(default_factory=SearchConfig)
    seed: int = 0
    target: str | Mapping[str, Any] = "llvm"
    device_pool: str = LOCAL_POOL
    profile_retries: int = 2
    reuse: ReuseSettings | None = None

    def __post_init__(self) -> None:
        for name in ("trials", "batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                what = "trials" if name == "trials" else "batch size"
                raise TunerError(f"{what} must be a positive integer, got {value!r}")
