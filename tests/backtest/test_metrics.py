"""Metrics against values worked out by hand (the arithmetic is in the comments)."""

from __future__ import annotations

import math

import pytest

from rez_cli.account.fills import Trade
from rez_cli.backtest.metrics import compute_metrics, max_drawdown_pct, periods_per_year

DAY = 86_400_000


def trade(pnl: float, r: float | None) -> Trade:
    return Trade("t", 1, 0, 100.0, 1, 100.0, "target", 1.0, pnl, 0.0, r, pnl / 100)


def test_every_metric_of_a_small_curve() -> None:
    curve = [100.0, 110.0, 99.0, 108.9]
    trades = [trade(30, 1.5), trade(-10, -1.0), trade(20, 2.0), trade(-5, None)]
    metrics = compute_metrics(
        curve, trades, timeframe_ms=DAY, exposed_candles=2, actions=["hold", "buy", "hold", "hold"]
    )
    # Returns +10%, -10%, +10%: mean 1/30, sample variance (2 × (1/15)² + (2/15)²) / 2 = 1/75.
    # Sharpe = (1/30) × √75 × √365 = √27375 / 30.
    assert metrics.sharpe == pytest.approx(math.sqrt(27_375) / 30)
    # Downside deviation √(0.1² / 3): Sortino = (1/30) / (0.1/√3) × √365 = √3/3 × √365.
    assert metrics.sortino == pytest.approx(math.sqrt(3) / 3 * math.sqrt(365))
    assert metrics.total_return_pct == pytest.approx(8.9)
    # Peak 110, trough 99: 10%.
    assert metrics.max_drawdown_pct == pytest.approx(10.0)
    assert metrics.win_rate == 0.5
    # Gross profit 50, gross loss 15.
    assert metrics.profit_factor == pytest.approx(50 / 15)
    # The trade without a stop has no R: (1.5 - 1 + 2) / 3.
    assert metrics.avg_r_multiple == pytest.approx(2.5 / 3)
    assert metrics.exposure_pct == pytest.approx(200 / 3)
    assert metrics.trades == 4
    assert metrics.hold_rate == 0.75
    assert metrics.final_equity == 108.9
    assert metrics.cycles == 4


def test_undefined_statistics_are_none_not_infinite() -> None:
    metrics = compute_metrics(
        [100.0, 100.0, 100.0], [trade(5, 1.0)], timeframe_ms=DAY, exposed_candles=0, actions=[]
    )
    assert metrics.sharpe is None  # a flat curve has no variation
    assert metrics.sortino is None  # nor a losing period
    assert metrics.profit_factor is None  # no losing trade
    assert metrics.hold_rate is None


def test_buy_and_hold_has_no_hold_rate() -> None:
    metrics = compute_metrics(
        [100.0, 90.0], [trade(-10, None)], timeframe_ms=DAY, exposed_candles=1, actions=None
    )
    assert metrics.hold_rate is None
    assert metrics.profit_factor == 0.0
    assert metrics.exposure_pct == 100.0


def test_drawdown_is_measured_from_the_running_peak() -> None:
    # Peaks 100 then 120; the fall from 120 to 90 (25%) is deeper than from 100 to 80 (20%).
    assert max_drawdown_pct([100, 80, 120, 90, 130]) == pytest.approx(25.0)


def test_a_year_of_hourly_candles() -> None:
    assert periods_per_year(3_600_000) == 8_760
