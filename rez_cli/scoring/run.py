"""Forward scoring: what became of journaled decisions, judged on the candles that came after them.

``rez score`` takes each finished live decision (backtest cycles are left out, the backtest traded
them already; so are decisions with an error, since a forced hold says nothing about the market),
fetches the candles of the cycle's primary timeframe from its moment on, and judges the first
``horizon`` of them (``scoring.judge``); ``scoring.stats`` sums the scores up.

- ``pending``: the horizon's last candle has not closed yet (or the data stops before it). Nothing is
  stored and the next ``rez score`` looks again. A decision becomes final only once its whole horizon
  has elapsed, even when its TP or SL was hit earlier, so that every score covers the same span.
  Candles missing inside an elapsed window (an exchange's maintenance) do not hold it back: it is
  judged on those there are, and ``details.missing_candles`` says how many were not.

Final scores are stored in the journal (table ``scores``); ``Journal.recent`` gives each one's summary
line to the model as its decision's ``outcome``, but only to cycles standing after the judged window
ended (``details.window_end_ms``), so that a decision replayed at a past moment learns nothing of
the market after it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rez_cli import clock
from rez_cli.account.fills import Candle
from rez_cli.errors import ExitCode, RezError, UsageError
from rez_cli.formatting import json_ready
from rez_cli.scoring.judge import DEFAULT_FEE_PCT, Score, check_horizon, judge_cycle, to_candles
from rez_cli.scoring.stats import Calibration, GroupStats, calibration, group_stats
from rez_cli.timeframes import timeframe_ms as parse_timeframe_ms

if TYPE_CHECKING:
    from rez_cli.config.settings import Settings
    from rez_cli.journal.store import Journal
    from rez_cli.market.source import MarketSource

__all__ = ["DEFAULT_HORIZON", "PENDING", "Failure", "Pending", "ScoreReport", "ScoreRequest", "score_journal"]

DEFAULT_HORIZON = 24
PENDING = "pending"


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
        check_horizon(self.horizon)
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
