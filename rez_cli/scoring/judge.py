"""Judging one decision on the candles that came after it, with the backtest's fill rules.

The rules are ``backtest.fills``'s, so that a score and a backtest agree on the same candles:

- A buy or sell enters at the open of the first candle after the decision (a market order, without
  slippage: the score judges the plan, not an execution), with the decision's TP and SL resting.
  ``tp_first`` / ``sl_first``: which one the price reached first. When one candle reaches both, the
  stop is assumed first; a candle that opens beyond a level exits at that open. ``neither``: no level
  within the horizon; the trade is closed at the last candle's close. When the first open is already
  beyond a level the order is not placed (as in the backtest): the outcome names that level, R is 0.
- ``r_multiple``: the result after fees (``fee_pct`` of the notional on entry and on exit) over the
  risk, the distance from the fill to the stop. None for a decision without a stop.
- A hold is judged by what a naive trade would have done: a long and a short entered at the next
  open, each with its stop and its target 1 ATR(14) of the primary timeframe away (the ATR the cycle
  saw, so the distance suits the asset and the timeframe; 1% of the open when the context has no
  ATR): ±1R. ``up_first``: the long reached its target first; ``down_first``: the short did;
  ``neither``: both were stopped (one candle spanning both levels stops both) or timed out. The
  hold's ``r_multiple`` is the better leg's R, the "missed R" (negative: the hold avoided a loss);
  the worse leg's is kept in the details.

A judgement needs the horizon's whole window of candles: with fewer, it is None (pending). Each
judgement also has a one-line summary (``trade_summary``, ``hold_summary``), which the memory shows
the model as its decision's outcome.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from rez_cli.account.fills import (
    BEYOND_LEVELS,
    Candle,
    Exit,
    FillConfig,
    Order,
    close,
    enter,
    exit_on,
)
from rez_cli.actions import TRADE_ACTIONS
from rez_cli.errors import UsageError
from rez_cli.formatting import json_ready
from rez_cli.timeframes import timeframe_ms as parse_timeframe_ms

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "DEFAULT_FEE_PCT",
    "DOWN_FIRST",
    "NEITHER",
    "SL_FIRST",
    "TP_FIRST",
    "UP_FIRST",
    "HoldJudgement",
    "Judgement",
    "Score",
    "check_horizon",
    "hold_summary",
    "judge_cycle",
    "judge_hold",
    "judge_trade",
    "to_candles",
    "trade_summary",
]

DEFAULT_FEE_PCT = 0.1
TP_FIRST, SL_FIRST, NEITHER = "tp_first", "sl_first", "neither"
UP_FIRST, DOWN_FIRST = "up_first", "down_first"
# The naive trades of a hold, when the recorded context has no ATR of the primary timeframe.
NAIVE_FALLBACK_PCT = 1.0


@dataclass(frozen=True)
class Judgement:
    """How one trade (a decision's, or a hold's naive one) fared within the horizon.

    ``candles``: how many candles from the decision to the exit (the horizon for ``neither``; 0 when
    the order was not placed). ``reason``: the fill's exit reason (``stop``, ``target``,
    ``stop_gap``, ``target_gap``, ``end``) or ``beyond_levels``. ``exit_ms`` is the close time of the
    candle the trade ended in.
    """

    outcome: str
    r_multiple: float | None
    entry_price: float
    entry_ms: int
    exit_price: float
    exit_ms: int
    candles: int
    reason: str
    tp_price: float | None
    sl_price: float | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class HoldJudgement:
    """A hold against a naive long and a naive short, each with stop and target ``distance`` away."""

    outcome: str
    long: Judgement
    short: Judgement
    distance: float
    basis: str

    @property
    def missed_r(self) -> float | None:
        """The better naive trade's R: what holding passed up (negative: what it avoided)."""
        values = [leg.r_multiple for leg in (self.long, self.short) if leg.r_multiple is not None]
        return max(values) if values else None

    @property
    def worst_r(self) -> float | None:
        """The worse naive trade's R."""
        values = [leg.r_multiple for leg in (self.long, self.short) if leg.r_multiple is not None]
        return min(values) if values else None

    @property
    def best(self) -> Judgement:
        """The leg that did better (the long on a tie)."""
        return self.short if (self.short.r_multiple or 0.0) > (self.long.r_multiple or 0.0) else self.long


def to_candles(frame: pd.DataFrame) -> list[Candle]:
    """The rows of a validated candle frame as ``Candle`` values, oldest first."""
    return [
        Candle(int(ts), float(o), float(h), float(lo), float(c))
        for ts, o, h, lo, c in zip(
            frame["timestamp"], frame["open"], frame["high"], frame["low"], frame["close"], strict=True
        )
    ]


def check_horizon(horizon: int) -> None:
    if horizon < 1:
        raise UsageError(f"the horizon must be at least 1 candle, got {horizon}")


def judge_trade(
    side: int,
    tp_price: float | None,
    sl_price: float | None,
    future: Sequence[Candle],
    *,
    horizon: int,
    timeframe_ms: int,
    fee_pct: float = DEFAULT_FEE_PCT,
) -> Judgement | None:
    """Judge a trade on the candles after its decision, with the backtest's fill rules.

    Args:
        side: +1 for a buy (long), -1 for a sell (short).
        tp_price: the target, or None.
        sl_price: the stop, or None (then there is no R).
        future: the candles that opened at or after the decision's moment, oldest first.
        horizon: how many of them the judgement covers.
        timeframe_ms: their interval.
        fee_pct: the fee per fill in percent of its notional, paid on entry and on exit.

    Returns:
        The judgement, or None while fewer than ``horizon`` candles exist (pending).
    """
    check_horizon(horizon)
    if len(future) < horizon:
        return None
    return _judge(side, tp_price, sl_price, future[:horizon], timeframe_ms, fee_pct)


def _judge(
    side: int,
    tp_price: float | None,
    sl_price: float | None,
    window: Sequence[Candle],
    timeframe_ms: int,
    fee_pct: float,
) -> Judgement:
    """``judge_trade`` on a window of exactly the horizon's candles."""
    config = FillConfig(fee_pct=fee_pct, slippage_pct=0.0, entry="open")
    first = window[0]
    # Equity 1 at leverage 1: the position's size cancels out of the R multiple.
    order = Order(side, None, tp_price, sl_price, 1.0, 100.0, first.ts_ms)
    position, status = enter(order, first, 1.0, config)
    if position is None:
        # The only refusal possible here: the open is already past a level, the plan was overtaken.
        past_stop = sl_price is not None and side * (first.open - sl_price) <= 0
        return Judgement(
            SL_FIRST if past_stop else TP_FIRST,
            0.0,
            first.open,
            first.ts_ms,
            first.open,
            first.ts_ms,
            0,
            status,
            tp_price,
            sl_price,
        )
    exit_: Exit | None = None
    index = 0
    for index, candle in enumerate(window):
        exit_ = exit_on(position, candle, config, entry_candle=index == 0)
        if exit_ is not None:
            break
    if exit_ is None:
        exit_ = Exit(window[-1].close, "end")
    trade = close(position, exit_, window[index].ts_ms + timeframe_ms, config)
    if exit_.reason in ("stop", "stop_gap"):
        outcome = SL_FIRST
    elif exit_.reason in ("target", "target_gap"):
        outcome = TP_FIRST
    else:
        outcome = NEITHER
    return Judgement(
        outcome,
        trade.r_multiple,
        position.entry_price,
        position.entry_ms,
        trade.exit_price,
        trade.exit_ms,
        index + 1,
        exit_.reason,
        tp_price,
        sl_price,
    )


def judge_hold(
    future: Sequence[Candle],
    *,
    distance: float | None,
    horizon: int,
    timeframe_ms: int,
    fee_pct: float = DEFAULT_FEE_PCT,
) -> HoldJudgement | None:
    """Judge a hold by a naive long and a naive short at the next open, stop and target ``distance`` away.

    Args:
        future: the candles that opened at or after the decision's moment, oldest first.
        distance: the stop and target distance in price (the ATR the cycle saw); None or not
            positive: ``NAIVE_FALLBACK_PCT`` of the next open.
        horizon: how many candles the judgement covers.
        timeframe_ms: their interval.
        fee_pct: the fee per fill, in percent.

    Returns:
        The judgement, or None while fewer than ``horizon`` candles exist (pending).
    """
    check_horizon(horizon)
    if len(future) < horizon:
        return None
    open_ = future[0].open
    basis = "1 ATR"
    if distance is None or not math.isfinite(distance) or distance <= 0:
        distance, basis = open_ * NAIVE_FALLBACK_PCT / 100, f"{NAIVE_FALLBACK_PCT:g}%"
    long, short = (
        _judge(
            side, open_ + side * distance, open_ - side * distance, future[:horizon], timeframe_ms, fee_pct
        )
        for side in (1, -1)
    )
    if long.outcome == TP_FIRST:
        outcome = UP_FIRST
    elif short.outcome == TP_FIRST:
        outcome = DOWN_FIRST
    else:
        outcome = NEITHER
    return HoldJudgement(outcome, long, short, distance, basis)


def _r_text(r_multiple: float | None) -> str:
    return "no R (no stop)" if r_multiple is None else f"{r_multiple:+.1f}R"


def _candles_text(count: int) -> str:
    return f"{count} candle{'s' if count != 1 else ''}"


def trade_summary(judgement: Judgement, horizon: int) -> str:
    """A decision's judgement in one line, as the memory shows it to the model."""
    if judgement.reason == BEYOND_LEVELS:
        level = "stop" if judgement.outcome == SL_FIRST else "target"
        return f"{judgement.outcome}: the next open was already beyond the {level}, so no trade (0R)"
    if judgement.outcome == NEITHER:
        return (
            f"neither TP nor SL within {_candles_text(horizon)}, {_r_text(judgement.r_multiple)} at the close"
        )
    return f"{judgement.outcome}, {_r_text(judgement.r_multiple)} after {_candles_text(judgement.candles)}"


def hold_summary(judgement: HoldJudgement, horizon: int) -> str:
    """A hold's judgement in one line, as the memory shows it to the model."""
    missed = judgement.missed_r
    if judgement.outcome == NEITHER:
        best = "" if missed is None else f" (the better made {missed:+.1f}R)"
        return (
            f"hold; neither a naive long nor a short (±{judgement.basis}) reached its target "
            f"within {_candles_text(horizon)}{best}"
        )
    leg, sign = (judgement.long, "+") if judgement.outcome == UP_FIRST else (judgement.short, "-")
    side = "long" if judgement.outcome == UP_FIRST else "short"
    return (
        f"hold; the price moved {sign}{judgement.basis} first, after {_candles_text(leg.candles)}: "
        f"a naive {side} made {_r_text(leg.r_multiple)}"
    )


def _atr(context: Mapping[str, Any], timeframe: str) -> float | None:
    frames = context.get("timeframes")
    snapshot = frames.get(timeframe) if isinstance(frames, Mapping) else None
    value = snapshot.get("atr_14") if isinstance(snapshot, Mapping) else None
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _level(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def judge_cycle(
    cycle: Mapping[str, Any],
    future: Sequence[Candle],
    *,
    timeframe: str,
    horizon: int,
    fee_pct: float,
    window_end_ms: int | None = None,
) -> tuple[str, float | None, float | None, int | None, dict[str, Any]] | None:
    """Judge one journaled cycle (a row of ``Journal.scorable_cycles``) on the candles after it.

    Args:
        cycle: the cycle, with its ``action``, ``decision``, ``context`` and ``as_of_ms``.
        future: the candles of ``timeframe`` that opened at or after ``as_of_ms``, oldest first.
        timeframe: the cycle's primary timeframe.
        horizon: how many of the candles to judge on.
        fee_pct: the fee per fill, in percent.
        window_end_ms: when the judged window ends; default ``as_of_ms`` + ``horizon`` candles.

    Returns:
        ``(outcome, r_multiple, exit_price, exit_ms, details)`` as the journal stores them, or None
        while pending.
    """
    step = parse_timeframe_ms(timeframe)
    # window_end_ms: when the judgement became known; the memory hides it from cycles before then.
    details: dict[str, Any] = {
        "timeframe": timeframe,
        "fee_pct": fee_pct,
        "window_end_ms": window_end_ms
        if window_end_ms is not None
        else int(cycle["as_of_ms"]) + horizon * step,
    }
    action = cycle["action"]
    if action in TRADE_ACTIONS:
        decision = cycle.get("decision") or {}
        trade = judge_trade(
            1 if action == "buy" else -1,
            _level(decision.get("tp_price")),
            _level(decision.get("sl_price")),
            future,
            horizon=horizon,
            timeframe_ms=step,
            fee_pct=fee_pct,
        )
        if trade is None:
            return None
        details.update(trade.as_dict())
        details["summary"] = trade_summary(trade, horizon)
        return trade.outcome, trade.r_multiple, trade.exit_price, trade.exit_ms, details
    hold = judge_hold(
        future,
        distance=_atr(cycle.get("context") or {}, timeframe),
        horizon=horizon,
        timeframe_ms=step,
        fee_pct=fee_pct,
    )
    if hold is None:
        return None
    best = hold.best
    details.update(
        {
            "candles": best.candles,
            "naive": {
                "distance": hold.distance,
                "basis": hold.basis,
                "long": hold.long.as_dict(),
                "short": hold.short.as_dict(),
            },
            "missed_r": hold.missed_r,
            "worst_r": hold.worst_r,
            "summary": hold_summary(hold, horizon),
        }
    )
    return hold.outcome, hold.missed_r, best.exit_price, best.exit_ms, details


@dataclass(frozen=True)
class Score:
    """A final judgement of one journaled decision (``new``: made by this run, not read back)."""

    trace_id: str
    symbol: str
    exchange: str | None
    simulated: bool
    model: str | None
    mode: str | None
    profile: str | None
    action: str
    confidence: float | None
    as_of_ms: int
    horizon: int
    outcome: str
    r_multiple: float | None
    exit_price: float | None
    exit_ms: int | None
    details: dict[str, Any]
    new: bool

    @property
    def is_trade(self) -> bool:
        return self.action in TRADE_ACTIONS

    @property
    def summary(self) -> str:
        return str(self.details.get("summary") or self.outcome)

    def to_json(self) -> dict[str, Any]:
        return {key: json_ready(value) for key, value in asdict(self).items()}
