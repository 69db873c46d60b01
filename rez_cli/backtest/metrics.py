"""What a backtest scored: returns, risk and trade statistics from an equity curve and its trades.

Conventions (every function is pure, so the tests check them against numbers worked out by hand):

- ``*_pct`` are percentages (12.5 = 12.5%); ``win_rate`` and ``hold_rate`` are fractions in [0, 1].
- Returns are simple returns of the equity curve, one per candle of the primary timeframe (the
  curve is marked to market at every close). Crypto trades all year round, so a year has
  ``365 × 24 h / timeframe`` periods: 8,760 for 1h.
- Sharpe: mean / sample standard deviation (ddof 1) × √periods, with a risk-free rate of 0.
- Sortino: mean / downside deviation × √periods, where the downside deviation is
  √(mean(min(r, 0)²)) over every period (Sortino and Price's target semi-deviation, target 0).
- ``profit_factor``: gross profit / gross loss of the trades, net of fees.
- ``liquidations``: how many trades ended liquidated (each lost its whole margin and both fees).
- ``invalidation_exits``: how many trades the position's own invalidation condition closed.
- A statistic with nothing to measure (no trade, a flat curve, no losing trade for the profit
  factor) is None, never infinity or NaN: the JSON output has no such numbers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from rez_cli.account.fills import INVALIDATION, LIQUIDATION, Trade
from rez_cli.formatting import share, signed_pct

YEAR_MS = 365 * 86_400_000


@dataclass(frozen=True)
class Metrics:
    """The scores of one strategy over one span (see the module docstring for definitions)."""

    total_return_pct: float
    max_drawdown_pct: float
    sharpe: float | None
    sortino: float | None
    win_rate: float | None
    profit_factor: float | None
    avg_r_multiple: float | None
    exposure_pct: float
    trades: int
    liquidations: int
    invalidation_exits: int
    hold_rate: float | None
    final_equity: float
    cycles: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _finite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def periods_per_year(timeframe_ms: int) -> float:
    """How many candles of ``timeframe_ms`` a (365-day, round-the-clock) year holds."""
    return YEAR_MS / timeframe_ms


def returns(curve: Sequence[float]) -> np.ndarray[Any, np.dtype[np.float64]]:
    """Simple returns between consecutive points of an equity curve."""
    values = np.asarray(curve, dtype=np.float64)
    if len(values) < 2:
        return np.empty(0)
    return np.asarray(values[1:] / values[:-1] - 1.0, dtype=np.float64)


def total_return_pct(curve: Sequence[float]) -> float:
    """The change from the first to the last point, in percent."""
    return (curve[-1] / curve[0] - 1.0) * 100 if len(curve) > 1 else 0.0


def max_drawdown_pct(curve: Sequence[float]) -> float:
    """The deepest fall from a running peak, as a positive percentage of that peak."""
    values = np.asarray(curve, dtype=np.float64)
    if len(values) == 0:
        return 0.0
    peaks = np.maximum.accumulate(values)
    return float(np.max(1.0 - values / peaks) * 100)


def sharpe(period_returns: np.ndarray[Any, np.dtype[np.float64]], periods: float) -> float | None:
    """Annualised Sharpe ratio (risk-free rate 0); None with fewer than two returns or no variation."""
    if len(period_returns) < 2:
        return None
    deviation = float(np.std(period_returns, ddof=1))
    if deviation == 0 or not math.isfinite(deviation):
        return None
    return _finite(float(np.mean(period_returns)) / deviation * math.sqrt(periods))


def sortino(period_returns: np.ndarray[Any, np.dtype[np.float64]], periods: float) -> float | None:
    """Annualised Sortino ratio (target 0); None without returns or without a losing period."""
    if len(period_returns) < 1:
        return None
    downside = math.sqrt(float(np.mean(np.minimum(period_returns, 0.0) ** 2)))
    if downside == 0 or not math.isfinite(downside):
        return None
    return _finite(float(np.mean(period_returns)) / downside * math.sqrt(periods))


def win_rate(trades: Sequence[Trade]) -> float | None:
    """The share of trades that made money after fees."""
    return sum(trade.pnl > 0 for trade in trades) / len(trades) if trades else None


def profit_factor(trades: Sequence[Trade]) -> float | None:
    """Gross profit over gross loss; None without trades or without a losing trade."""
    profit = sum(trade.pnl for trade in trades if trade.pnl > 0)
    loss = -sum(trade.pnl for trade in trades if trade.pnl < 0)
    if not trades or loss == 0:
        return None
    return profit / loss


def avg_r_multiple(trades: Sequence[Trade]) -> float | None:
    """The mean R multiple over trades that had a stop (R is the loss the stop would have taken)."""
    values = [trade.r_multiple for trade in trades if trade.r_multiple is not None]
    return sum(values) / len(values) if values else None


def compute_metrics(
    curve: Sequence[float],
    trades: Sequence[Trade],
    *,
    timeframe_ms: int,
    exposed_candles: int,
    actions: Sequence[str] | None,
) -> Metrics:
    """Every score of one strategy.

    Args:
        curve: equity at the start, then at the close of every candle of the span.
        trades: the closed trades.
        timeframe_ms: the candle interval of ``curve``, for annualising.
        exposed_candles: how many candles a position was open in (at any moment of the candle).
        actions: one action per decision cycle, for the hold rate; None for a strategy that makes
            no decisions (buy-and-hold).
    """
    period_returns = returns(curve)
    periods = periods_per_year(timeframe_ms)
    candles = max(len(curve) - 1, 0)
    return Metrics(
        total_return_pct=total_return_pct(curve),
        max_drawdown_pct=max_drawdown_pct(curve),
        sharpe=sharpe(period_returns, periods),
        sortino=sortino(period_returns, periods),
        win_rate=win_rate(trades),
        profit_factor=profit_factor(trades),
        avg_r_multiple=avg_r_multiple(trades),
        exposure_pct=exposed_candles / candles * 100 if candles else 0.0,
        trades=len(trades),
        liquidations=sum(trade.reason == LIQUIDATION for trade in trades),
        invalidation_exits=sum(trade.reason == INVALIDATION for trade in trades),
        hold_rate=(sum(action == "hold" for action in actions) / len(actions) if actions else None)
        if actions is not None
        else None,
        final_equity=float(curve[-1]) if len(curve) else 0.0,
        cycles=len(actions) if actions is not None else 0,
    )


# The metrics a summary shows, in order: label, key, how to format it.
METRIC_ROWS = (
    ("total return", "total_return_pct", "signed_pct"),
    ("max drawdown", "max_drawdown_pct", "pct"),
    ("Sharpe (annualised)", "sharpe", "ratio"),
    ("Sortino (annualised)", "sortino", "ratio"),
    ("win rate", "win_rate", "share"),
    ("profit factor", "profit_factor", "ratio"),
    ("avg R multiple", "avg_r_multiple", "ratio"),
    ("exposure", "exposure_pct", "pct"),
    ("trades", "trades", "count"),
    ("liquidations", "liquidations", "count"),
    ("invalidation exits", "invalidation_exits", "count"),
    ("hold rate", "hold_rate", "share"),
    ("final equity", "final_equity", "money"),
)


def format_metric(value: Any, kind: str) -> str:
    """One metric as the summary table and the HTML report show it (``kind`` from ``METRIC_ROWS``)."""
    if value is None:
        return "n/a"
    if kind == "signed_pct":
        return signed_pct(value)
    if kind == "pct":
        return f"{value:.2f}%"
    if kind == "share":
        return share(value)
    if kind == "count":
        return str(value)
    if kind == "money":
        return f"{value:,.2f}"
    return f"{value:.2f}"
