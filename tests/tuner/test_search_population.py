"""The evolutionary search's population follows the client cores unless a job sets it."""

from __future__ import annotations

import pytest

from tuner.metaschedule.settings import (
    SearchConfig,
    first_stall,
    population_for_cores,
    stalled,
)


@pytest.mark.parametrize(
    ("cores", "population"), [(0, 128), (1, 128), (2, 256), (4, 512), (16, 512)]
)
def test_the_default_population_grows_with_the_cores_up_to_metaschedules(
    cores: int, population: int
) -> None:
    assert population_for_cores(cores) == population
    assert SearchConfig().population(cores) == population


def test_a_set_population_is_kept_whatever_the_cores() -> None:
    assert SearchConfig(population_size=64).population(1) == 64
    assert SearchConfig(population_size=1024).population(8) == 1024


def test_the_strategy_evolves_the_population_it_was_given() -> None:
    assert SearchConfig().strategy(2).population_size == 256
    assert SearchConfig(population_size=96).strategy(1).population_size == 96


@pytest.mark.parametrize(
    ("history", "expected"),
    [
        ([], False),
        ([1.0], False),  # one batch: too early to tell
        ([1.0, 0.995], True),  # 0.5 % better: stalled
        ([1.0, 1.0], True),
        ([1.0, 0.98], False),  # 2 % better
        ([float("inf"), 1.0], False),  # the first measured best
        ([1.0, float("inf")], False),
        ([2.0, 1.0, 1.0], True),
    ],
)
def test_a_search_stalls_when_its_last_batch_gained_less_than_one_percent(
    history: list[float], expected: bool
) -> None:
    assert stalled(history) is expected


def test_a_stalled_search_grows_to_metaschedules_population_unless_one_was_set() -> None:
    config = SearchConfig()
    assert config.population(1, grown=True) == 512 and config.can_grow(1)
    assert config.strategy(1, grown=True).population_size == 512
    assert not config.can_grow(4)  # already MetaSchedule's
    assert not SearchConfig(population_size=128).can_grow(1)
    assert SearchConfig(population_size=128).population(1, grown=True) == 128
    assert not SearchConfig(grow_when_stalled=False).can_grow(1)


@pytest.mark.parametrize(
    ("history", "batches"),
    [
        ([], None),
        ([1.0, 0.5, 0.2], None),  # improving all along
        ([1.0, 0.995, 0.5], 2),  # stalled once, even if it improved later
        ([float("inf"), 2.0, 1.0, 0.999, 0.998], 4),
    ],
)
def test_a_restarted_job_finds_after_which_batch_a_search_first_stalled(
    history: list[float], batches: int | None
) -> None:
    assert first_stall(history) == batches
