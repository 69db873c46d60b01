"""The arena's statistics against direct numpy implementations and series whose answer is obvious."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from rez_cli.arena import stats

DAY = stats.DAY_MS
HOUR = 3_600_000


def test_daily_returns_take_the_last_point_of_each_day() -> None:
    # Day 0: 100 → 110 (last 110); day 1: 99 (last); day 2: 108.9.
    curve_ms = [0, 12 * HOUR, DAY, DAY + HOUR, 2 * DAY]
    curve = [100.0, 110.0, 105.0, 99.0, 108.9]
    days, daily = stats.daily_returns(curve_ms, curve)
    assert days == [0, DAY, 2 * DAY]
    assert daily == pytest.approx([0.10, -0.10, 0.10])


def test_sharpe_by_hand() -> None:
    daily = np.array([0.01, -0.01, 0.02, 0.0])
    # mean 0.005, sample sd sqrt(((.005)²+(.015)²+(.015)²+(.005)²)/3) = 0.0129099
    assert stats.sharpe(daily) == pytest.approx(0.005 / 0.012909944 * math.sqrt(365), rel=1e-6)
    assert stats.sharpe(np.zeros(10)) is None
    assert stats.sharpe(np.array([0.01])) is None


def direct_block_bootstrap(daily: np.ndarray, block: int, resamples: int, seed: int) -> np.ndarray:
    """The circular block bootstrap written out with loops: the reference the module must match."""
    rng = np.random.default_rng(seed)
    n = len(daily)
    blocks = -(-n // block)
    starts = rng.integers(0, n, size=(resamples, blocks))
    values = []
    for row in starts:
        sample = []
        for start in row:
            for offset in range(block):
                sample.append(daily[(start + offset) % n])
        sample = np.array(sample[:n])
        sd = sample.std(ddof=1)
        values.append(sample.mean() / sd * math.sqrt(365) if sd > 1e-15 else np.nan)
    return np.array(values)


def test_sharpe_interval_matches_a_direct_implementation() -> None:
    daily = np.random.default_rng(3).normal(0.002, 0.02, size=40)
    low, high = stats.sharpe_interval(daily, block_days=4, resamples=500, seed=9)  # type: ignore[misc]
    reference = direct_block_bootstrap(daily, 4, 500, 9)
    reference = reference[np.isfinite(reference)]
    assert low == pytest.approx(np.percentile(reference, 2.5))
    assert high == pytest.approx(np.percentile(reference, 97.5))
    assert low < stats.sharpe(daily) < high  # type: ignore[operator]


def test_the_same_seed_gives_the_same_interval() -> None:
    daily = np.random.default_rng(4).normal(0.0, 0.01, size=30)
    assert stats.sharpe_interval(daily) == stats.sharpe_interval(daily)


def test_the_default_block_is_the_cube_root_rounded_up() -> None:
    assert [stats.default_block(n) for n in (1, 8, 9, 27, 28, 100)] == [1, 2, 3, 3, 4, 5]


def test_a_clearly_better_series_has_a_small_p_value_and_a_worse_one_a_large_one() -> None:
    rng = np.random.default_rng(5)
    baseline = rng.normal(0.0, 0.01, size=60)
    better = baseline + 0.01 + rng.normal(0.0, 0.002, size=60)
    worse = baseline - 0.01 + rng.normal(0.0, 0.002, size=60)
    assert stats.beats_p_value(better, baseline) < 0.01  # type: ignore[operator]
    assert stats.beats_p_value(worse, baseline) > 0.99  # type: ignore[operator]
    # The same series is no better than itself.
    assert stats.beats_p_value(baseline, baseline) == 1.0


def test_p_value_matches_a_direct_implementation() -> None:
    rng = np.random.default_rng(6)
    a, b = rng.normal(0.001, 0.01, size=25), rng.normal(0.0, 0.01, size=25)
    d = a - b
    starts = np.random.default_rng(1).integers(0, 25, size=(300, 9))
    hits = 0
    for row in starts:
        sample = [(d - d.mean())[(start + k) % 25] for start in row for k in range(3)][:25]
        hits += np.mean(sample) >= d.mean() - 1e-15
    assert stats.beats_p_value(a, b, block_days=3, resamples=300, seed=1) == pytest.approx((1 + hits) / 301)


def test_paired_days_keep_only_the_days_both_have() -> None:
    a, b = stats.paired_days(
        [0, DAY, 2 * DAY], np.array([1.0, 2.0, 3.0]), [DAY, 2 * DAY, 3 * DAY], np.array([5.0, 6.0, 7.0])
    )
    assert list(a) == [2.0, 3.0]
    assert list(b) == [5.0, 6.0]


def test_brier_by_hand_leaves_out_numbers_that_are_not_probabilities() -> None:
    # (0.8-1)² = 0.04, (0.6-0)² = 0.36 → 0.2; NaN, 1e308 and a percent (60) are left out.
    assert stats.brier(
        [(0.8, True), (0.6, False), (math.nan, True), (1e308, True), (60.0, False)]
    ) == pytest.approx(0.2)
    assert stats.brier([]) is None


@given(st.lists(st.floats(allow_nan=True, allow_infinity=True, width=64), min_size=0, max_size=30))
def test_curves_of_any_numbers_give_finite_returns_or_nothing(values: list[float]) -> None:
    curve_ms = [i * HOUR * 7 for i in range(len(values))]
    _, daily = stats.daily_returns(curve_ms, values)
    assert np.all(np.isfinite(daily))
    found = stats.sharpe(daily)
    assert found is None or math.isfinite(found)
