"""A reduced `bench/ab_validity.py`: the analysis' false-positive rate stays within alpha under real traffic
(repeated outcomes per unit, reallocation with a drifting base rate, a lognormal guardrail metric, a small
canary at a low base rate, where an arm with no event yet must not look certain)."""

import importlib.util
import math
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "ab_validity.py"
spec = importlib.util.spec_from_file_location("ab_validity", BENCH)
validity = sys.modules.setdefault("ab_validity", importlib.util.module_from_spec(spec))
spec.loader.exec_module(validity)

RUNS = 600
LIMIT = validity.ALPHA + 3 * math.sqrt(validity.ALPHA * (1 - validity.ALPHA) / RUNS)  # alpha + 3 standard errors
SCALE = {"12 outcomes per unit": 0.25, "5 outcomes per unit": 0.5, "lognormal latency at tolerance (+20%)": 0.5,
         "5% canary at a 3% base rate": 0.5}


@pytest.mark.parametrize("scenario", validity.SCENARIOS, ids=lambda s: s.name)
def test_false_positive_rate_is_within_alpha(scenario):
    rate = validity.false_positives(scenario, RUNS, seed=11, scale=SCALE.get(scenario.name, 1.0))
    assert rate.rate <= LIMIT, f"{scenario.name}: {rate.text()} > {LIMIT:.3f}"


@pytest.mark.parametrize("index", [2, 3], ids=["12 outcomes per unit", "reallocation with drift"])
def test_the_check_has_teeth_outcomes_as_independent_units_in_one_epoch_fail_it(index):
    scenario = validity.SCENARIOS[index]
    rate = validity.false_positives(scenario, RUNS, seed=11, scale=SCALE.get(scenario.name, 1.0), unit_level=False)
    assert rate.rate > LIMIT, f"naive {scenario.name}: {rate.text()}"


def test_power_at_a_five_point_lift_is_reported_and_real():
    scenario = validity.SCENARIOS[1]  # 5 outcomes per unit, 2,000 units
    found = validity.power(scenario, 100, seed=5, scale=0.5)
    assert found.rate >= 0.8, found.text()
