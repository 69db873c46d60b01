"""The leaderboard: per walk and per contestant, the numbers ``rez arena`` prints and ``--json`` holds.

A contestant's row is the mean of its repeats' numbers, with ``spread`` (max − min across repeats)
beside the return, drawdown and Sharpe; its Sharpe interval and its p-values against the baselines
are taken from the mean of its repeats' daily returns (one series, as if the repeats were run side by
side with equal money). Everything here is a pure function of the walks, so a rerun from the caches
prints the same board. What a run spent (``spent_usd``, ``calls``, ``cache_hits``) is kept out of the
board: it is about this run, not about the contestants.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from rez_cli.arena import stats
from rez_cli.arena.contestants import BASELINES
from rez_cli.arena.run import ArenaResult, ContestantRun
from rez_cli.formatting import json_ready

# Numbers a contestant's row averages over its repeats, and those whose spread is shown.
AVERAGED = (
    "total_return_pct",
    "max_drawdown_pct",
    "sharpe",
    "win_rate",
    "avg_r",
    "hold_rate",
    "decisions_taken",
    "fallback_rate",
    "brier",
    "cost_per_decision_usd",
    "median_latency_s",
    "cycles",
)
SPREAD = ("total_return_pct", "max_drawdown_pct", "sharpe")


def run_row(entry: ContestantRun) -> dict[str, Any]:
    """One walk's numbers (None where there is nothing to measure)."""
    row: dict[str, Any] = {
        "name": entry.contestant.name,
        "model": entry.contestant.model,
        "repeat": entry.repeat + 1,
        "seed": entry.seed,
        "error": entry.error,
        "stopped": entry.stopped,
    }
    run = entry.run
    if run is None:
        return row | dict.fromkeys(AVERAGED) | {"fallbacks": {}, "sharpe_ci": None}
    decisions = run.decisions
    cycles = len(decisions)
    fallbacks = Counter(str(d.get("error")) for d in decisions if d.get("source") == "fallback")
    taken = sum(1 for d in decisions if d.get("action") != "hold" and d.get("error") is None)
    confidence = {d.get("trace_id"): d.get("confidence") for d in decisions if d.get("trace_id")}
    pairs = [
        (float(value), t.pnl > 0)
        for t in run.trades
        if isinstance(value := confidence.get(t.ref), int | float)
    ]
    _, daily = stats.daily_returns(run.curve_ms, run.curve)
    interval = stats.sharpe_interval(daily)
    metrics = run.metrics
    if entry.contestant.model == "buy-and-hold":
        taken = 1  # its one order, at the first moment
    return row | {
        "cycles": cycles,
        "total_return_pct": metrics.total_return_pct,
        "max_drawdown_pct": metrics.max_drawdown_pct,
        "sharpe": stats.sharpe(daily),
        "sharpe_ci": list(interval) if interval else None,
        "win_rate": metrics.win_rate,
        "avg_r": metrics.avg_r_multiple,
        "hold_rate": metrics.hold_rate,
        "decisions_taken": taken,
        "fallback_rate": sum(fallbacks.values()) / cycles if cycles else None,
        "fallbacks": {code: count / cycles for code, count in sorted(fallbacks.items())},
        "brier": stats.brier(pairs),
        "cost_per_decision_usd": entry.answer_cost_usd / cycles
        if entry.answer_cost_usd is not None and cycles
        else None,
        "median_latency_s": stats.median(entry.latencies_s),
    }


def _mean(values: Sequence[Any]) -> float | None:
    numbers = [float(v) for v in values if isinstance(v, int | float) and math.isfinite(v)]
    return sum(numbers) / len(numbers) if numbers else None


def _daily(entries: Sequence[ContestantRun]) -> tuple[list[int], np.ndarray[Any, Any]] | None:
    """The mean daily returns of the walks, over the days they all have."""
    series = [stats.daily_returns(e.run.curve_ms, e.run.curve) for e in entries if e.run is not None]
    if not series:
        return None
    days = sorted(set.intersection(*(set(d) for d, _ in series)))
    aligned = [np.asarray(r)[[d.index(day) for day in days]] for d, r in series]
    return days, np.mean(aligned, axis=0) if days else np.empty(0)


def leaderboard(result: ArenaResult) -> list[dict[str, Any]]:
    """One row per contestant, in the order given, each with its walks under ``runs``."""
    by_name: dict[str, list[ContestantRun]] = {}
    for entry in result.runs:
        by_name.setdefault(entry.contestant.name, []).append(entry)
    dailies = {name: _daily(entries) for name, entries in by_name.items()}
    rows = []
    for name, entries in by_name.items():
        runs = [run_row(entry) for entry in entries]
        contestant = entries[0].contestant
        done = [r for r in runs if r["cycles"] is not None]
        row: dict[str, Any] = {
            "name": name,
            "model": contestant.model,
            "prompt": str(contestant.prompt_path) if contestant.prompt_path else None,
            "profile": contestant.profile,
            "baseline": contestant.baseline,
            "repeats": len(runs),
            "errors": sorted({r["error"] for r in runs if r["error"]}),
            "stopped": sorted({r["stopped"] for r in runs if r["stopped"]}),
        }
        for key in AVERAGED:
            row[key] = _mean([r[key] for r in done])
        row["spread"] = {
            key: (max(values) - min(values))
            if len(values := [r[key] for r in done if r[key] is not None]) > 1
            else None
            for key in SPREAD
        }
        codes: Counter[str] = Counter()
        for r in done:
            codes.update({code: rate / len(done) for code, rate in r["fallbacks"].items()})
        row["fallbacks"] = dict(sorted(codes.items()))
        own = dailies[name]
        interval = stats.sharpe_interval(own[1]) if own else None
        row["sharpe_ci"] = list(interval) if interval else None
        row["beats"] = {}
        for baseline in BASELINES:
            other = dailies.get(baseline)
            if baseline == name or own is None or other is None:
                continue
            mine, theirs = stats.paired_days(own[0], own[1], other[0], other[1])
            p_value = stats.beats_p_value(mine, theirs)
            better = bool(len(mine)) and float(np.mean(mine - theirs)) > 0
            row["beats"][baseline] = {
                "beaten": bool(better and p_value is not None and p_value < stats.SIGNIFICANCE),
                "p_value": p_value,
                "days": len(mine),
            }
        row["runs"] = runs
        rows.append(row)
    cleaned: list[dict[str, Any]] = json_ready(rows)
    return cleaned


def arena_json(result: ArenaResult, board: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The whole arena as one JSON object (``--json``)."""
    from rez_cli.clock import iso

    spec = result.spec
    payload: dict[str, Any] = json_ready(
        {
            "symbol": spec.symbol,
            "timeframe": spec.timeframe,
            "tape_hash": spec.tape_hash,
            "from": iso(spec.start_ms),
            "to": iso(spec.end_ms),
            "moments": len(spec.moments) if spec.moments is not None else None,
            "complete": not result.interrupted and not result.budget_exceeded,
            "interrupted": result.interrupted,
            "budget_exceeded": result.budget_exceeded,
            "max_cost_usd": result.max_cost_usd,
            "spent_usd": round(result.spent_usd, 6),
            "calls": sum(e.calls for e in result.runs),
            "cache_hits": sum(e.cache_hits for e in result.runs),
            "backtests": {
                f"{e.contestant.name}#{e.repeat + 1}": e.backtest_id for e in result.runs if e.backtest_id
            },
            "leaderboard": list(board),
        }
    )
    return payload
