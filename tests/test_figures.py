"""Figure helpers that decide what a reader sees (the figures themselves are drawn in test_reproduce.py)."""

import math

import matplotlib.pyplot as plt
import pytest

from ocp.figures import _log_limits


def test_log_axis_limits_follow_the_means_not_a_band_reaching_zero():
    # Few, spread seeds give a t-interval whose lower edge is <= 0 or tiny; the axis must not stretch to it.
    fig, ax = plt.subplots()
    ax.set_yscale("log")
    points = [
        {"x": 0, "mean": 2.0, "ci_low": -1.0, "ci_high": 8.0, "n": 3},
        {"x": 1, "mean": 1.0, "ci_low": 0.001, "ci_high": 3.0, "n": 3},
        {"x": 2, "mean": 1.5, "ci_low": math.nan, "ci_high": math.nan, "n": 1},
    ]
    _log_limits(ax, points)
    assert ax.get_ylim() == pytest.approx((0.5, 12.0))  # min mean / 2, max band top * 1.5
    plt.close(fig)


def test_log_axis_limits_leave_an_axis_without_positive_values_alone():
    fig, ax = plt.subplots()
    before = ax.get_ylim()
    _log_limits(ax, [{"x": 0, "mean": 0.0, "ci_low": 0.0, "ci_high": 0.0, "n": 2}])
    assert ax.get_ylim() == before
    plt.close(fig)
