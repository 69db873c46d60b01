"""Forward scoring: what became of journaled decisions, judged on the candles that came after them.

``rez score`` takes each finished live decision (backtest cycles are left out, the backtest traded
them already; so are decisions with an error, since a forced hold says nothing about the market),
fetches the candles of the cycle's primary timeframe from its moment on, and judges the first
``horizon`` of them with the backtest's fill rules (``backtest.fills``), so that a score and a
backtest agree on the same candles:

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
- ``pending``: the horizon's last candle has not closed yet (or the data stops before it). Nothing is
  stored and the next ``rez score`` looks again. A decision becomes final only once its whole horizon
  has elapsed, even when its TP or SL was hit earlier, so that every score covers the same span.
  Candles missing inside an elapsed window (an exchange's maintenance) do not hold it back: it is
  judged on those there are, and ``details.missing_candles`` says how many were not.

Final scores are stored in the journal (table ``scores``); ``Journal.recent`` gives each one's summary
line to the model as its decision's ``outcome``, but only to cycles standing after the judged window
ended (``details.window_end_ms``), so that a decision replayed at a past moment learns nothing of
the market after it.

Statistics:

- Hit rate = tp_first / (tp_first + sl_first). ``neither`` is no verdict on the forecast: it is
  counted in its own column and left out of hit rates, the calibration and the Brier score.
- Calibration: the decision's confidence in buckets 0-0.2, ..., 0.8-1 (the last one includes 1)
  against the hit rate in each bucket.
- Brier score: the mean of (confidence - y)², y = 1 for tp_first and 0 for sl_first. 0 is perfect;
  always answering 0.5 scores 0.25.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rez_cli import clock
from rez_cli.backtest.fills import (
    BEYOND_LEVELS,
    Candle,
    Exit,
    FillConfig,
    Order,
    close,
    enter,
    exit_on,
)
from rez_cli.errors import ExitCode, RezError, UsageError
from rez_cli.formatting import json_ready
from rez_cli.timeframes import timeframe_ms as parse_timeframe_ms

if TYPE_CHECKING:
    import pandas as pd

    from rez_cli.config.settings import Settings
    from rez_cli.journal.store import Journal
    from rez_cli.market.source import MarketSource

__all__ = [
    "DEFAULT_FEE_PCT",
    "DEFAULT_HORIZON",
    "PENDING",
    "Bucket",
    "Calibration",
    "GroupStats",
    "HoldJudgement",
    "Judgement",
    "Pending",
    "Score",
    "ScoreReport",
    "ScoreRequest",
    "brier_score",
    "calibration",
    "group_stats",
    "judge_hold",
    "judge_trade",
    "score_journal",
]

DEFAULT_HORIZON = 24
DEFAULT_FEE_PCT = 0.1
PENDING = "pending"
TP_FIRST, SL_FIRST, NEITHER = "tp_first", "sl_first", "neither"
UP_FIRST, DOWN_FIRST = "up_first", "down_first"
# The naive trades of a hold, when the recorded context has no ATR of the primary timeframe.
NAIVE_FALLBACK_PCT = 1.0
BUCKETS = 5


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


def _check_horizon(horizon: int) -> None:
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
    _check_horizon(horizon)
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
    _check_horizon(horizon)
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


# -- statistics ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bucket:
    """Trades decided (TP or SL) with a confidence in ``[low, high)``; the last bucket includes 1."""

    low: float
    high: float
    count: int
    hits: int
    hit_rate: float | None
    mean_confidence: float | None


@dataclass(frozen=True)
class Calibration:
    """Confidence against hit rate, and the Brier score, over trades that reached TP or SL."""

    buckets: list[Bucket]
    brier: float | None
    count: int

    def to_json(self) -> dict[str, Any]:
        return {
            "buckets": [asdict(bucket) for bucket in self.buckets],
            "brier": self.brier,
            "count": self.count,
        }


def _verdicts(pairs: Iterable[tuple[float | None, str]]) -> list[tuple[float, int]]:
    """(confidence, 1 for tp_first / 0 for sl_first); neither, pending and unknown confidence left out."""
    found = []
    for confidence, outcome in pairs:
        if confidence is None or not math.isfinite(confidence) or outcome not in (TP_FIRST, SL_FIRST):
            continue
        found.append((min(max(float(confidence), 0.0), 1.0), int(outcome == TP_FIRST)))
    return found


def brier_score(pairs: Iterable[tuple[float | None, str]]) -> float | None:
    """The mean of (confidence - y)² with y = 1 for tp_first, 0 for sl_first; None without any.

    Args:
        pairs: (confidence, outcome) per trade; other outcomes and a None confidence are left out.
    """
    verdicts = _verdicts(pairs)
    if not verdicts:
        return None
    return sum((confidence - hit) ** 2 for confidence, hit in verdicts) / len(verdicts)


def calibration(pairs: Iterable[tuple[float | None, str]]) -> Calibration:
    """Hit rate per confidence bucket (0-0.2, ..., 0.8-1) and the Brier score.

    Args:
        pairs: (confidence, outcome) per trade; only tp_first and sl_first count.
    """
    verdicts = _verdicts(pairs)
    grouped: list[list[tuple[float, int]]] = [[] for _ in range(BUCKETS)]
    for confidence, hit in verdicts:
        # The epsilon keeps 0.6 (0.6 * 5 = 2.9999...) in the bucket that starts at 0.6.
        grouped[min(int(confidence * BUCKETS + 1e-9), BUCKETS - 1)].append((confidence, hit))
    buckets = []
    for index, members in enumerate(grouped):
        hits = sum(hit for _, hit in members)
        buckets.append(
            Bucket(
                low=index / BUCKETS,
                high=(index + 1) / BUCKETS,
                count=len(members),
                hits=hits,
                hit_rate=hits / len(members) if members else None,
                mean_confidence=sum(c for c, _ in members) / len(members) if members else None,
            )
        )
    return Calibration(
        buckets, brier_score(pairs=[(c, TP_FIRST if h else SL_FIRST) for c, h in verdicts]), len(verdicts)
    )


# -- scoring a journal -----------------------------------------------------------------------------


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
        return self.action in ("buy", "sell")

    @property
    def summary(self) -> str:
        return str(self.details.get("summary") or self.outcome)

    def to_json(self) -> dict[str, Any]:
        return {key: json_ready(value) for key, value in asdict(self).items()}


@dataclass(frozen=True)
class Pending:
    """A decision whose horizon has not elapsed: ``candles`` of ``horizon`` seen, final at ``due_ms``."""

    trace_id: str
    symbol: str
    action: str
    as_of_ms: int
    candles: int
    due_ms: int


@dataclass(frozen=True)
class Failure:
    """A decision that could not be judged: no candles to be had for it."""

    trace_id: str
    symbol: str
    message: str


@dataclass(frozen=True)
class GroupStats:
    """Scores of one (symbol, exchange, model, mode, profile)."""

    symbol: str
    exchange: str | None
    model: str | None
    mode: str | None
    profile: str | None
    decisions: int
    trades: int
    tp_first: int
    sl_first: int
    neither: int
    hit_rate: float | None
    avg_r: float | None
    total_r: float
    holds: int
    avg_missed_r: float | None


def group_stats(scores: Sequence[Score]) -> list[GroupStats]:
    """The scores by symbol, exchange, model, mode and profile, in that order."""
    groups: dict[tuple[str, str, str, str, str], list[Score]] = {}
    for score in scores:
        key = (score.symbol, score.exchange or "", score.model or "", score.mode or "", score.profile or "")
        groups.setdefault(key, []).append(score)
    found = []
    for key in sorted(groups):
        members = groups[key]
        trades = [score for score in members if score.is_trade]
        holds = [score for score in members if not score.is_trade]
        counts = {
            outcome: sum(score.outcome == outcome for score in trades)
            for outcome in (TP_FIRST, SL_FIRST, NEITHER)
        }
        decided = counts[TP_FIRST] + counts[SL_FIRST]
        r_values = [score.r_multiple for score in trades if score.r_multiple is not None]
        missed = [score.r_multiple for score in holds if score.r_multiple is not None]
        first = members[0]
        found.append(
            GroupStats(
                symbol=first.symbol,
                exchange=first.exchange,
                model=first.model,
                mode=first.mode,
                profile=first.profile,
                decisions=len(members),
                trades=len(trades),
                tp_first=counts[TP_FIRST],
                sl_first=counts[SL_FIRST],
                neither=counts[NEITHER],
                hit_rate=counts[TP_FIRST] / decided if decided else None,
                avg_r=sum(r_values) / len(r_values) if r_values else None,
                total_r=sum(r_values),
                holds=len(holds),
                avg_missed_r=sum(missed) / len(missed) if missed else None,
            )
        )
    return found


@dataclass(frozen=True)
class ScoreRequest:
    """What ``rez score`` was asked for.

    ``data`` / ``exchange`` replace, for every decision, the market it was recorded on (``data``
    first); without them each decision is judged on its own exchange, and one made on files needs
    ``data``. ``force`` judges again decisions already scored with this horizon and fee.
    """

    horizon: int = DEFAULT_HORIZON
    fee_pct: float = DEFAULT_FEE_PCT
    since_ms: int | None = None
    symbol: str | None = None
    exchange: str | None = None
    data: Path | None = None
    force: bool = False
    use_cache: bool = True

    def __post_init__(self) -> None:
        _check_horizon(self.horizon)
        if not (math.isfinite(self.fee_pct) and 0 <= self.fee_pct < 100):
            raise UsageError(f"the fee must be a percentage in [0, 100), got {self.fee_pct!r}")


@dataclass
class ScoreReport:
    """Everything ``rez score`` found: the final scores (stored and new), the pending, the failures."""

    scores: list[Score]
    pending: list[Pending]
    failures: list[Failure]
    horizon: int
    fee_pct: float
    journal: Path
    groups: list[GroupStats] = field(init=False)
    calibration: Calibration = field(init=False)

    def __post_init__(self) -> None:
        self.groups = group_stats(self.scores)
        self.calibration = calibration(
            (score.confidence, score.outcome) for score in self.scores if score.is_trade
        )

    @property
    def new(self) -> int:
        return sum(score.new for score in self.scores)

    @property
    def exit_code(self) -> ExitCode:
        """0, or 2 when some decision could not be judged (its candles could not be had)."""
        return ExitCode.USAGE if self.failures else ExitCode.OK

    def to_json(self) -> dict[str, Any]:
        """The report as one JSON-ready object (no NaN or infinity)."""
        return {
            "journal": str(self.journal),
            "horizon": self.horizon,
            "fee_pct": self.fee_pct,
            "new": self.new,
            "scores": [score.to_json() for score in self.scores],
            "pending": [asdict(item) for item in self.pending],
            "failures": [asdict(item) for item in self.failures],
            "groups": [
                {key: json_ready(value) for key, value in asdict(group).items()} for group in self.groups
            ],
            "calibration": json_ready(self.calibration.to_json()),
        }


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
    if action in ("buy", "sell"):
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


def _stored_score_fits(stored: Mapping[str, Any] | None, request: ScoreRequest) -> bool:
    if stored is None or request.force:
        return False
    fee = (stored.get("details") or {}).get("fee_pct")
    return bool(stored.get("horizon") == request.horizon and fee == request.fee_pct)


def _score(
    cycle: Mapping[str, Any],
    outcome: str,
    r: float | None,
    price: float | None,
    exit_ms: int | None,
    details: dict[str, Any],
    horizon: int,
    *,
    new: bool,
) -> Score:
    return Score(
        trace_id=cycle["trace_id"],
        symbol=cycle["symbol"],
        exchange=cycle.get("exchange"),
        simulated=bool(cycle.get("simulated")),
        model=cycle.get("model"),
        mode=cycle.get("mode"),
        profile=cycle.get("profile"),
        action=cycle["action"],
        confidence=cycle.get("confidence"),
        as_of_ms=int(cycle["as_of_ms"]),
        horizon=horizon,
        outcome=outcome,
        r_multiple=r,
        exit_price=price,
        exit_ms=exit_ms,
        details=details,
        new=new,
    )


class _Sources:
    """One market source per exchange (or the ``--data`` files), opened on first use, closed at the end."""

    def __init__(
        self, settings: Settings, request: ScoreRequest, now_ms: int, fixed: MarketSource | None
    ) -> None:
        self.settings = settings
        self.request = request
        self.now_ms = now_ms
        self.fixed = fixed
        self.opened: dict[str, MarketSource] = {}

    def for_cycle(self, cycle: Mapping[str, Any]) -> MarketSource:
        """The source to judge ``cycle`` on.

        Raises:
            UsageError: the cycle read files and no ``--data`` was given.
            RezError: the source cannot be opened (unknown exchange, missing path).
        """
        if self.fixed is not None:
            return self.fixed
        from rez_cli.market.view import open_source

        request = self.request
        if request.data is not None:
            key = "data"
        elif request.exchange is not None:
            key = request.exchange
        else:
            key = cycle.get("exchange") or "files"
            if key in ("files", "memory"):
                raise UsageError(
                    "it was decided on candles from files", hint="pass --data with the same files"
                )
        if key not in self.opened:
            self.opened[key] = open_source(
                self.settings,
                exchange=None if key == "data" else key,
                data=request.data,
                use_cache=request.use_cache,
                now_ms=self.now_ms,
            )
        return self.opened[key]

    async def close(self) -> None:
        for source in self.opened.values():
            await source.close()


async def score_journal(
    journal: Journal,
    settings: Settings,
    request: ScoreRequest,
    *,
    now_ms: int | None = None,
    source: MarketSource | None = None,
) -> ScoreReport:
    """Judge the journal's live decisions that need it, store the final scores, and report on all.

    Each new final score is committed as soon as it is made, so an interrupted run keeps its work.

    Args:
        journal: the journal to read decisions from and store scores in.
        settings: for the sources (exchange options, the sim's seed, the cache) and the default timeframe.
        request: the horizon, fee, filters and where candles come from.
        now_ms: the present; candles closing later do not exist yet (default: the clock).
        source: judge every decision on this source instead (tests, embedding programs).

    Returns:
        The final scores matching the filters (stored ones included), the pending decisions, and
        the decisions that could not be judged.

    Raises:
        ConfigError: the journal cannot be read or written.
    """
    now = clock.now_ms() if now_ms is None else now_ms
    cycles = journal.scorable_cycles(symbol=request.symbol, since_ms=request.since_ms)
    sources = _Sources(settings, request, now, source)
    scores: list[Score] = []
    pending: list[Pending] = []
    failures: list[Failure] = []
    try:
        for cycle in cycles:
            stored = cycle.get("score")
            if _stored_score_fits(stored, request):
                assert stored is not None
                scores.append(
                    _score(
                        cycle,
                        stored["outcome"],
                        stored["r_multiple"],
                        stored["exit_price"],
                        stored["exit_ms"],
                        dict(stored.get("details") or {}),
                        int(stored["horizon"]),
                        new=False,
                    )
                )
                continue
            context = cycle.get("context") or {}
            timeframe = str(context.get("primary_timeframe") or settings.market.timeframe)
            step = parse_timeframe_ms(timeframe)
            as_of = int(cycle["as_of_ms"])
            due = as_of + request.horizon * step
            until = min(due, now)
            future: list[Candle] = []
            if until >= as_of + step:
                try:
                    market = sources.for_cycle(cycle)
                    frames = await market.fetch(cycle["symbol"], [timeframe], request.horizon, until_ms=until)
                except RezError as error:
                    failures.append(Failure(cycle["trace_id"], cycle["symbol"], error.one_line()))
                    continue
                future = [candle for candle in to_candles(frames[timeframe]) if as_of <= candle.ts_ms < due]
            # The window is complete once the candle closing at its end exists. Candles missing inside
            # it (an exchange's maintenance) must not keep the decision pending for ever: it is judged
            # on those there are. Data that stops short of the end (files) leaves it pending.
            complete = bool(future) and future[-1].ts_ms + step >= due
            judged = judge_cycle(
                cycle,
                future,
                timeframe=timeframe,
                horizon=len(future) if complete else request.horizon,
                fee_pct=request.fee_pct,
                window_end_ms=due,
            )
            if judged is None:
                pending.append(
                    Pending(cycle["trace_id"], cycle["symbol"], cycle["action"], as_of, len(future), due)
                )
                continue
            outcome, r, price, exit_ms, details = judged
            if len(future) < request.horizon:
                details["missing_candles"] = request.horizon - len(future)
            journal.save_score(
                cycle["trace_id"],
                horizon=request.horizon,
                outcome=outcome,
                r_multiple=r,
                exit_price=price,
                exit_ms=exit_ms,
                details=details,
            )
            scores.append(_score(cycle, outcome, r, price, exit_ms, details, request.horizon, new=True))
    finally:
        await sources.close()
    return ScoreReport(scores, pending, failures, request.horizon, request.fee_pct, journal.path)
