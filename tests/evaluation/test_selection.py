import pytest

from promptyard.errors import UserError
from promptyard.evaluation import Objectives, pareto_front, pareto_plot, select

POINTS = [
    Objectives(0.80, 0.002, 0.30),  # 0: best quality, expensive, slow
    Objectives(0.75, 0.001, 0.10),  # 1: cheaper and faster
    Objectives(0.70, 0.001, 0.20),  # 2: dominated by 1
    Objectives(0.60, 0.0005, 0.05),  # 3: cheapest and fastest
]


def test_pareto_front():
    assert pareto_front(POINTS) == [0, 1, 3]
    assert pareto_front([Objectives(1, 0, 0), Objectives(1, 0, 0)]) == [0, 1]  # equal points do not dominate


def test_best_quality_by_default_and_under_budgets():
    assert select(POINTS) == 0
    assert select(POINTS, max_latency_s=0.2) == 1
    assert select(POINTS, max_cost=0.0005) == 3
    assert select(POINTS, max_cost=0.0001) is None


def test_weighted():
    assert select(POINTS, policy="weighted", weights={"latency": 0.0}) == 0
    assert select(POINTS, policy="weighted", weights={"latency": 0.5}) == 1
    with pytest.raises(UserError, match="take 'cost' and 'latency', not tokens"):
        select(POINTS, policy="weighted", weights={"tokens": 1})
    with pytest.raises(UserError, match="Unknown selection policy 'fastest'"):
        select(POINTS, policy="fastest")


def test_plot_is_a_figure(tmp_path):
    fig = pareto_plot(POINTS, ["a", "b", "c", "d"], baseline=Objectives(0.5, 0.001, 0.2), chosen=0)
    fig.savefig(tmp_path / "p.png")
    assert (tmp_path / "p.png").stat().st_size > 10_000
