"""The evolutionary search's population follows the client cores unless a job sets it."""

from __future__ import annotations

import pytest

from tuner.metaschedule.settings import SearchConfig, population_for_cores


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
