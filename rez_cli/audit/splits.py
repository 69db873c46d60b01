"""A stored backtest cut in two at the training cutoff, and into bull, bear and sideways windows.

Both read only the stored report: the strategy's equity curve (marked at every close), its trades
and decisions, and the buy-and-hold curve, which is the market's own trend.

Regimes, simply: the span is cut into consecutive windows of ``REGIME_WINDOW_MS`` (7 days; the last
window may be shorter); a window whose buy-and-hold return is above ``+REGIME_THRESHOLD_PCT`` (3%)
is bull, below ``-REGIME_THRESHOLD_PCT`` bear, anything between sideways.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rez_cli.backtest.metrics import periods_per_year, returns, sharpe, total_return_pct
from rez_cli.clock import iso

REGIME_WINDOW_MS = 7 * 86_400_000
REGIME_THRESHOLD_PCT = 3.0
REGIMES = ("bull", "bear", "sideways")


@dataclass(frozen=True)
class Curve:
    ms: list[int]
    equity: list[float]

    @classmethod
    def of(cls, stored: Any) -> Curve | None:
        if not isinstance(stored, Mapping):
            return None
        ms, equity = stored.get("ms"), stored.get("equity")
        if not isinstance(ms, list) or not isinstance(equity, list) or len(ms) != len(equity) or not ms:
            return None
        return cls([int(value) for value in ms], [float(value or 0.0) for value in equity])

    def between(self, start_ms: int, end_ms: int) -> list[float]:
        """The points from the last one at or before ``start_ms`` to the last at or before ``end_ms``."""
        first = max((i for i, ms in enumerate(self.ms) if ms <= start_ms), default=0)
        return [value for ms, value in zip(self.ms[first:], self.equity[first:], strict=True) if ms <= end_ms]


def _side(
    curve: Curve,
    hodl: Curve | None,
    report: Mapping[str, Any],
    start_ms: int,
    end_ms: int,
    timeframe_ms: int,
) -> dict[str, Any] | None:
    points = curve.between(start_ms, end_ms)
    if len(points) < 2:
        return None
    trades = [t for t in report.get("trades") or [] if start_ms <= int(t.get("entry_ms") or 0) < end_ms]
    decisions = [
        d for d in report.get("decisions") or [] if start_ms <= int(d.get("timestamp") or 0) < end_ms
    ]
    pnls = [float(t.get("pnl") or 0.0) for t in trades]
    hodl_points = hodl.between(start_ms, end_ms) if hodl is not None else []
    return {
        "from": iso(start_ms),
        "to": iso(end_ms),
        "cycles": len(decisions),
        "trades": len(trades),
        "total_return_pct": total_return_pct(points),
        "buy_and_hold_return_pct": total_return_pct(hodl_points) if len(hodl_points) > 1 else None,
        "sharpe": sharpe(returns(points), periods_per_year(timeframe_ms)),
        "win_rate": sum(pnl > 0 for pnl in pnls) / len(pnls) if pnls else None,
    }


def decay_pct(before: float | None, after: float | None) -> float | None:
    """How much of ``before`` is lost after, in percent (100: all of it; more: it turned negative).

    None when there was nothing to lose: no value on either side, or ``before`` not positive.
    """
    if before is None or after is None or before <= 0:
        return None
    return (before - after) / before * 100


def cutoff_split(report: Mapping[str, Any], cutoff_ms: int | None, timeframe_ms: int) -> dict[str, Any]:
    """The strategy's scores before and after ``cutoff_ms``, and how much Sharpe and return decay."""
    curve = Curve.of(report.get("curve"))
    hodl = Curve.of(report.get("buy_and_hold_curve"))
    start, end = int(report["start_ms"]), int(report["end_ms"])
    result: dict[str, Any] = {
        "cutoff": iso(cutoff_ms) if cutoff_ms is not None else None,
        "before": None,
        "after": None,
        "sharpe_decay_pct": None,
        "return_per_day_decay_pct": None,
    }
    if curve is None or cutoff_ms is None:
        return result
    before = (
        _side(curve, hodl, report, start, min(end, cutoff_ms), timeframe_ms) if start < cutoff_ms else None
    )
    after = _side(curve, hodl, report, max(start, cutoff_ms), end, timeframe_ms) if end > cutoff_ms else None
    result["before"], result["after"] = before, after
    if before is not None and after is not None:
        result["sharpe_decay_pct"] = decay_pct(before["sharpe"], after["sharpe"])
        result["return_per_day_decay_pct"] = decay_pct(
            _per_day(before["total_return_pct"], start, min(end, cutoff_ms)),
            _per_day(after["total_return_pct"], max(start, cutoff_ms), end),
        )
    return result


def _per_day(total_pct: float, start_ms: int, end_ms: int) -> float | None:
    days = (end_ms - start_ms) / 86_400_000
    if days <= 0 or total_pct <= -100:
        return None
    # Compounded to a day, so that sides of different lengths compare.
    return float(((1 + total_pct / 100) ** (1 / days) - 1) * 100)


def _compound(window_returns: Sequence[float]) -> float:
    product = 1.0
    for value in window_returns:
        product *= 1 + value / 100
    return (product - 1) * 100


def regime_split(report: Mapping[str, Any]) -> dict[str, Any] | None:
    """The strategy against buy-and-hold in bull, bear and sideways windows; None without the
    buy-and-hold curve (a backtest run with ``--no-baselines``)."""
    curve = Curve.of(report.get("curve"))
    hodl = Curve.of(report.get("buy_and_hold_curve"))
    if curve is None or hodl is None:
        return None
    start, end = int(report["start_ms"]), int(report["end_ms"])
    windows: dict[str, list[tuple[float, float]]] = {regime: [] for regime in REGIMES}
    moment = start
    while moment < end:
        stop = min(end, moment + REGIME_WINDOW_MS)
        market = hodl.between(moment, stop)
        mine = curve.between(moment, stop)
        if len(market) > 1 and len(mine) > 1:
            trend = total_return_pct(market)
            regime = (
                "bull"
                if trend > REGIME_THRESHOLD_PCT
                else "bear"
                if trend < -REGIME_THRESHOLD_PCT
                else "sideways"
            )
            windows[regime].append((total_return_pct(mine), trend))
        moment = stop
    split: dict[str, Any] = {
        "window_days": REGIME_WINDOW_MS // 86_400_000,
        "threshold_pct": REGIME_THRESHOLD_PCT,
    }
    for regime, found in windows.items():
        if not found:
            split[regime] = None
            continue
        mine_pct = _compound([mine for mine, _ in found])
        market_pct = _compound([trend for _, trend in found])
        split[regime] = {
            "windows": len(found),
            "total_return_pct": mine_pct,
            "buy_and_hold_return_pct": market_pct,
            "excess_pct": mine_pct - market_pct if math.isfinite(mine_pct - market_pct) else None,
        }
    return split
