"""Altered copies of a backtest's candles, and a sample of its cycles replayed on each.

Three copies, each changing one thing a model could recognise the market by:

- ``anonymised``: the symbol becomes ``ASSET/USD``;
- ``rescaled``: open, high, low and close are multiplied by a constant (1.37; volume is left);
- ``shifted``: every timestamp moves by whole calendar years (``shift_years``, -4 by default), as
  ``Tape.altered`` does it: by the days from 1 January of the first candle's year to 1 January that
  many years away, so candles stay on their hours and days but weekdays change.

A backtest run over a tape is audited on that tape; any other is first frozen into one from its
own source.

A model that reasons from the candles decides the same on every copy; one that remembers the real
market by its name, its price level or its dates does worse on the copy that hides it.

Each sampled moment is replayed alone, through ``run_backtest``, on the true candles and on each
copy, flat (no position carried in from earlier cycles, so the copies compare like with like), with
the same model and answer cache. A decision is scored by where the price went next: a buy earns the
return of the next ``horizon`` candles, a sell its opposite, a hold or close nothing.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from rez_cli.backtest.walk import INTERRUPTED, BacktestRequest, run_backtest
from rez_cli.config.settings import RiskProfile, Settings
from rez_cli.decision.codes import FATAL, TRANSIENT
from rez_cli.errors import DataNotFound
from rez_cli.llm.client import LLMClient
from rez_cli.tape import Tape

ANONYMOUS_SYMBOL = "ASSET/USD"
DEFAULT_PRICE_SCALE = 1.37
DEFAULT_SHIFT_YEARS = -4
DAY_MS = 86_400_000
# A copy that loses edge against the truth with a paired t statistic at least this large, and by
# at least half the true edge, does worse on purpose, not by chance.
SIGNIFICANT_T = 2.0
# A replayed cycle that held for one of these did not decide: it is counted as failed.
FAILURES = frozenset(str(code) for code in (*FATAL, *TRANSIENT))


@dataclass(frozen=True)
class Copy:
    """The candles a replay runs on: the true tape or an altered copy of it (``Tape.altered``)."""

    name: str
    description: str
    tape: Tape
    shift_ms: int = 0


def altered_copies(truth: Tape, *, price_scale: float, shift_years: int) -> list[Copy]:
    """The true tape and its three altered copies.

    Raises:
        UsageError: a scale that is not a finite positive number, or a shift beyond 1970..9999.
    """
    shift = truth.shift_ms(shift_years)
    return [
        Copy("true", f"the candles the backtest saw ({truth.meta.symbol})", truth),
        Copy("anonymised", f"the symbol renamed {ANONYMOUS_SYMBOL}", truth.altered(symbol=ANONYMOUS_SYMBOL)),
        Copy("rescaled", f"prices times {price_scale:g}", truth.altered(price_scale=price_scale)),
        Copy(
            "shifted",
            f"dates moved {shift_years:+d} years ({shift // DAY_MS:+d} days)",
            truth.altered(shift_years=shift_years),
            shift_ms=shift,
        ),
    ]


def sample_moments(moments: Sequence[int], size: int, seed: int) -> list[int]:
    """``size`` of the moments (all when there are fewer), chosen by ``seed``, in order."""
    unique = sorted(set(moments))
    if size >= len(unique):
        return unique
    rng = np.random.default_rng([seed, 7])
    return sorted(int(unique[i]) for i in rng.choice(len(unique), size=size, replace=False))


def forward_returns(frame: pd.DataFrame, moments: Sequence[int], step_ms: int, horizon: int) -> list[float]:
    """The return from the close at each moment to the close ``horizon`` candles later (or the
    last candle there is), in percent; 0 where no later candle exists."""
    closes = dict(
        zip((int(ts) + step_ms for ts in frame["timestamp"]), (float(c) for c in frame["close"]), strict=True)
    )
    ordered = sorted(closes)
    found = []
    for moment in moments:
        now = closes.get(moment)
        later_at = min(moment + horizon * step_ms, ordered[-1]) if ordered else moment
        later = closes.get(later_at)
        found.append((later / now - 1) * 100 if now and later and later_at > moment else 0.0)
    return found


def direction(action: str | None) -> int:
    return 1 if action == "buy" else -1 if action == "sell" else 0


def _edge(actions: Sequence[str | None], moves: Sequence[float]) -> list[float]:
    return [direction(action) * move for action, move in zip(actions, moves, strict=True)]


def _t_stat(differences: Sequence[float]) -> float | None:
    if len(differences) < 2:
        return None
    mean = float(np.mean(differences))
    deviation = float(np.std(differences, ddof=1))
    if deviation == 0:
        return None if mean == 0 else math.copysign(1e9, mean)  # every pair moved the same way
    return mean / (deviation / math.sqrt(len(differences)))


def compare_copies(
    actions: Mapping[str, Sequence[str | None]], moves: Sequence[float], errors: Mapping[str, int]
) -> list[dict[str, Any]]:
    """Each copy's decisions and edge against the true candles' (``actions["true"]``)."""
    true_actions = actions["true"]
    true_edge = _edge(true_actions, moves)
    true_mean = float(np.mean(true_edge)) if true_edge else 0.0
    rows = []
    for name, copy_actions in actions.items():
        edge = _edge(copy_actions, moves)
        mean = float(np.mean(edge)) if edge else 0.0
        trades = [e for e, a in zip(edge, copy_actions, strict=True) if direction(a)]
        changed = sum(a != b for a, b in zip(copy_actions, true_actions, strict=True))
        t = _t_stat([a - b for a, b in zip(true_edge, edge, strict=True)]) if name != "true" else None
        worse = bool(
            name != "true"
            and true_mean > 0
            and t is not None
            and t >= SIGNIFICANT_T
            and true_mean - mean >= 0.5 * true_mean
        )
        rows.append(
            {
                "copy": name,
                "cycles": len(copy_actions),
                "decisions_changed": changed,
                "trades": len(trades),
                "hit_rate": sum(e > 0 for e in trades) / len(trades) if trades else None,
                "edge_pct": mean,
                "edge_drop_pct": true_mean - mean,
                "t_stat": t if t is None or abs(t) < 1e9 else None,
                "errors": errors.get(name, 0),
                "worse_than_true": worse,
            }
        )
    return rows


def _trade_end(opens: np.ndarray[Any, Any], at: int, step_ms: int) -> int:
    """The close of the first candle that opens at or after ``at``: a cycle needs a candle to trade
    on after it, and over a gap in the data (an exchange's outage) that is a later one than the next."""
    index = int(np.searchsorted(opens, at, side="left"))
    return int(opens[index]) + step_ms if index < len(opens) else at + step_ms


async def replay(
    settings: Settings,
    profile: RiskProfile,
    request: BacktestRequest,
    copy: Copy,
    moments: Sequence[int],
    step_ms: int,
    *,
    llm: LLMClient | None = None,
    on_cycle: Callable[[], None] | None = None,
) -> tuple[list[str | None], int]:
    """The action decided at each moment on ``copy``, each cycle run alone; and how many failed."""
    actions: list[str | None] = []
    failed = 0
    opens = copy.tape.frames[request.timeframe or copy.tape.meta.timeframe]["timestamp"].to_numpy()
    for moment in moments:
        at = moment + copy.shift_ms
        one = replace(
            request,
            symbol=copy.tape.meta.symbol,
            start_ms=at,
            end_ms=_trade_end(opens, at, step_ms),
            every=1,
            moments=[at],
            baselines=False,
            training_cutoff_ms=None,
            max_cost_usd=None,
        )
        try:
            report = await run_backtest(settings, profile, one, source=copy.tape.source(), llm=llm)
        except DataNotFound:
            # Not a moment of the backtest's after all (a hand-edited report): nothing to compare.
            failed += 1
            actions.append(None)
            continue
        if report.stopped == INTERRUPTED:
            # The walk kept Ctrl-C to itself to return its partial result; the audit stops there.
            raise asyncio.CancelledError
        rows = report.strategy.decisions
        row = rows[0] if rows else None
        if row is None or row.get("error") in FAILURES:
            failed += 1
        actions.append(str(row["action"]) if row is not None else None)
        if on_cycle is not None:
            on_cycle()
        if report.stopped is not None:
            # The model cannot be used any more (no key, the budget): the rest count as failed.
            failed += len(moments) - len(actions)
            actions += [None] * (len(moments) - len(actions))
            break
    return actions, failed
