"""The trend that benchmarks/training_curve.py fits to BD-rate against CPU-hours."""

import math
from pathlib import Path

import pytest
from _helpers import load_module
from hypothesis import given, settings
from hypothesis import strategies as st

training_curve = load_module("training_curve", Path(__file__).resolve().parents[1] / "benchmarks" / "training_curve.py")


def _rows(hours, intercept, slope):
    return [{"cpu_hours": h, "bd_rate_vs_jpeg": intercept + slope * math.log2(h)} for h in hours]


@settings(max_examples=50, deadline=None)
@given(intercept=st.floats(-50, 50), slope=st.floats(-10, -0.5), goal_below=st.floats(1, 30))
def test_trend_recovers_an_exact_line_and_its_goal(intercept, slope, goal_below):
    hours = [1.0, 2.0, 3.0, 5.0, 8.0, 13.0]
    rows = _rows(hours, intercept, slope) + [{"cpu_hours": 0.5, "bd_rate_vs_jpeg": 99.0}]   # before the window
    last = intercept + slope * math.log2(13.0)
    goal = last - goal_below
    trend = training_curve._trend(rows, 1.0, goal)
    assert trend["snapshots"] == len(hours)
    assert trend["per_doubling"] == pytest.approx(slope, abs=1e-9)
    # the goal lies goal_below points past the last snapshot: goal_below / |slope| more doublings
    assert math.log2(trend["goal_hours"]) == pytest.approx(math.log2(13.0) + goal_below / -slope, rel=1e-6)


def test_trend_that_does_not_fall_never_reaches_the_goal():
    trend = training_curve._trend(_rows([1.0, 2.0, 4.0, 8.0], -20.0, 1.5), 1.0, -40.0)
    assert trend["per_doubling"] == pytest.approx(1.5)
    assert trend["goal_hours"] is None


def test_trend_needs_three_snapshots_and_is_optional():
    assert training_curve._trend(_rows([1.0, 2.0], 0.0, -1.0), None, None) is None
    with pytest.raises(SystemExit, match="fewer than 3"):
        training_curve._trend(_rows([1.0, 2.0], 0.0, -1.0), 1.0, None)
