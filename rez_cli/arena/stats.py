"""The arena's statistics: daily returns, Sharpe with a block-bootstrap interval, paired p-values, Brier.

Every function is pure and seeded, so a rerun over the same walks gives the same numbers to the last
digit, and the tests check them against direct numpy implementations and hand-made series.

- Daily returns: the equity at the last curve point of each UTC day, against the day before (the
  first day against the curve's first point). A day is the unit because an hourly curve's returns
  are strongly autocorrelated while a position is open; days are still not independent, hence blocks.
- Sharpe: mean / sample standard deviation (ddof 1) of the daily returns × √365 (crypto trades every
  day), risk-free rate 0; None for fewer than two days or a flat curve.
- Bootstrap: the circular block bootstrap (Politis and Romano): resamples of ``n`` days made of
  blocks of ``block_days`` consecutive days, each starting anywhere and wrapping around the end.
  The default block is ⌈n^(1/3)⌉ days, the usual rate for variance-type statistics. The interval is
  the 2.5th–97.5th percentile of the statistic over the resamples.
- Beating a baseline: on the days both walked, ``d`` = the contestant's daily return minus the
  baseline's. The one-sided p-value of "no better" is the share of bootstrap resamples of ``d``
  recentred to mean 0 whose mean reaches the observed mean, counted as ``(1 + hits) / (1 + B)`` so
  it is never 0. The same resample indices serve both series, which keeps their pairing. The mean
  return is compared, not the Sharpe: always-hold's Sharpe does not exist, its returns are all 0.
- Brier: mean of (confidence − won)² over the trades that came from a decision with a confidence,
  ``won`` 1 when the trade's P&L (net of fees) was above 0.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

DAY_MS = 86_400_000
DAYS_PER_YEAR = 365
RESAMPLES = 2_000
SEED = 20_240_611
LEVEL = 0.95
# A p-value under this says the contestant beats the baseline.
SIGNIFICANCE = 0.05

Series = np.ndarray[Any, np.dtype[np.float64]]


def daily_equity(curve_ms: Sequence[int], curve: Sequence[float]) -> tuple[list[int], list[float]]:
    """The day (ms of its midnight, UTC) and the last equity of each day the curve has a point in."""
    days: list[int] = []
    values: list[float] = []
    for ts, value in zip(curve_ms, curve, strict=True):
        day = int(ts) // DAY_MS * DAY_MS
        if days and days[-1] == day:
            values[-1] = float(value)
        else:
            days.append(day)
            values.append(float(value))
    return days, values


def daily_returns(curve_ms: Sequence[int], curve: Sequence[float]) -> tuple[list[int], Series]:
    """Each day's simple return (see the module docstring), with the days they belong to."""
    if not curve:
        return [], np.empty(0)
    days, values = daily_equity(curve_ms, curve)
    before = np.asarray([float(curve[0]), *values[:-1]], dtype=np.float64)
    after = np.asarray(values, dtype=np.float64)
    with np.errstate(all="ignore"):
        found = after / before - 1.0
    # An equity at 0 (a liquidated account) has no return after it: that day counts as flat.
    return days, np.where(np.isfinite(found), found, 0.0)


def sharpe(daily: Series) -> float | None:
    """The annualised Sharpe ratio of daily returns; None when it does not exist."""
    if len(daily) < 2:
        return None
    # An equity from outside can jump by 1e300: its square overflows, and that Sharpe does not exist.
    with np.errstate(all="ignore"):
        deviation = float(np.std(daily, ddof=1))
        mean = float(np.mean(daily))
    if not math.isfinite(deviation) or deviation <= 1e-15:
        return None
    value = mean / deviation * math.sqrt(DAYS_PER_YEAR)
    return value if math.isfinite(value) else None


def default_block(days: int) -> int:
    """⌈n^(1/3)⌉ days, at least one."""
    root: float = float(days) ** (1 / 3)
    return max(1, math.ceil(root - 1e-9))


def block_indices(days: int, *, block_days: int, resamples: int, seed: int) -> np.ndarray[Any, Any]:
    """``resamples`` rows of ``days`` indices, each made of circular blocks of ``block_days`` days."""
    rng = np.random.default_rng(seed)
    blocks = -(-days // block_days)
    starts = rng.integers(0, days, size=(resamples, blocks))
    offsets = np.arange(block_days)
    rows = (starts[:, :, None] + offsets[None, None, :]).reshape(resamples, blocks * block_days)
    return np.asarray(rows[:, :days] % days)


def _sharpes(samples: np.ndarray[Any, Any]) -> Series:
    with np.errstate(all="ignore"):
        deviation = np.std(samples, axis=1, ddof=1)
        mean = np.mean(samples, axis=1)
        found = mean / deviation * math.sqrt(DAYS_PER_YEAR)
    return np.asarray(np.where(deviation > 1e-15, found, np.nan), dtype=np.float64)


def sharpe_interval(
    daily: Series,
    *,
    block_days: int | None = None,
    resamples: int = RESAMPLES,
    seed: int = SEED,
    level: float = LEVEL,
) -> tuple[float, float] | None:
    """The bootstrap percentile interval of the Sharpe ratio; None when it cannot be had."""
    days = len(daily)
    if days < 2 or sharpe(daily) is None:
        return None
    rows = block_indices(days, block_days=block_days or default_block(days), resamples=resamples, seed=seed)
    values = _sharpes(np.asarray(daily)[rows])
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return None
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


def beats_p_value(
    contestant: Series,
    baseline: Series,
    *,
    block_days: int | None = None,
    resamples: int = RESAMPLES,
    seed: int = SEED,
) -> float | None:
    """The one-sided p-value of "the contestant's mean daily return is no higher than the baseline's".

    The two series are of the same days (paired). None for fewer than two days.
    """
    if len(contestant) != len(baseline):
        raise ValueError(f"paired series differ in length: {len(contestant)} and {len(baseline)}")
    days = len(contestant)
    if days < 2:
        return None
    rows = block_indices(days, block_days=block_days or default_block(days), resamples=resamples, seed=seed)
    with np.errstate(all="ignore"):
        difference = np.asarray(contestant, dtype=np.float64) - np.asarray(baseline, dtype=np.float64)
        observed = float(np.mean(difference))
        means = np.mean((difference - observed)[rows], axis=1)
    if not math.isfinite(observed):
        return None
    # A tolerance so that a difference of exactly nothing is not a "win" by rounding.
    hits = int(np.count_nonzero(means >= observed - 1e-15))
    return (1 + hits) / (1 + resamples)


def paired_days(
    days_a: Sequence[int], returns_a: Series, days_b: Sequence[int], returns_b: Series
) -> tuple[Series, Series]:
    """The two series restricted to the days both have, in day order."""
    index_b = {day: position for position, day in enumerate(days_b)}
    keep_a = [position for position, day in enumerate(days_a) if day in index_b]
    keep_b = [index_b[days_a[position]] for position in keep_a]
    return np.asarray(returns_a)[keep_a], np.asarray(returns_b)[keep_b]


def brier(pairs: Sequence[tuple[float, bool]]) -> float | None:
    """Mean squared gap between confidence and outcome; confidences outside [0, 1] or not finite
    are left out (a model's number is data). None without any pair."""
    usable = [(c, won) for c, won in pairs if math.isfinite(c) and 0.0 <= c <= 1.0]
    if not usable:
        return None
    return sum((c - (1.0 if won else 0.0)) ** 2 for c, won in usable) / len(usable)


def median(values: Sequence[float]) -> float | None:
    """The median of the finite values; None without any."""
    finite = [v for v in values if math.isfinite(v)]
    return float(np.median(finite)) if finite else None
