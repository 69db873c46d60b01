"""A backtest as the journal keeps it for the audit: its request, its report with the equity curves.

``store_backtest`` is what ``rez backtest`` calls once its report is in; ``request_of`` turns the
stored request back into a ``BacktestRequest`` for the audit's replays.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rez_cli.account.fills import FillConfig
from rez_cli.audit.cutoffs import Cutoff
from rez_cli.backtest.walk import BacktestReport, BacktestRequest
from rez_cli.config.settings import RiskProfile, Settings
from rez_cli.errors import DataError


def request_json(
    request: BacktestRequest, profile: RiskProfile, cutoff: Cutoff, *, tape: Path | None = None
) -> dict[str, Any]:
    """What the audit needs to run this backtest again: the request, the profile and the cutoff."""
    return {
        "symbol": request.symbol,
        "start_ms": request.start_ms,
        "end_ms": request.end_ms,
        "timeframe": request.timeframe,
        "context_timeframes": list(request.context_timeframes) if request.context_timeframes else None,
        "every": request.every,
        "mode": request.mode,
        "exchange": request.exchange,
        "data": str(request.data) if request.data is not None else None,
        "tape": str(tape) if tape is not None else None,
        "model": request.model,
        "fills": {
            "fee_pct": request.fills.fee_pct,
            "slippage_pct": request.fills.slippage_pct,
            "entry": request.fills.entry,
        },
        "initial_equity": request.initial_equity,
        "training_cutoff_ms": cutoff.ms,
        "training_cutoff_source": cutoff.source,
        "profile": profile.model_dump(mode="json"),
    }


def report_json(report: BacktestReport) -> dict[str, Any]:
    """The report as ``--json`` prints it, with the equity curves of the strategy and buy-and-hold."""
    payload = report.to_json()
    payload["curve"] = {"ms": report.strategy.curve_ms, "equity": report.strategy.curve}
    hodl = report.buy_and_hold
    payload["buy_and_hold_curve"] = {"ms": hodl.curve_ms, "equity": hodl.curve} if hodl else None
    return payload


def store_backtest(
    settings: Settings,
    request: BacktestRequest,
    report: BacktestReport,
    *,
    profile: RiskProfile,
    cutoff: Cutoff,
    tape: Path | None = None,
    tape_hash: str | None = None,
) -> None:
    """Keep the backtest in its journal, for ``rez audit``.

    Raises:
        ConfigError: the journal cannot be written.
    """
    from rez_cli.journal.session import open_journal

    with open_journal(settings, report.journal) as journal:
        journal.backtests().save(
            report.backtest_id,
            run_id=report.run_id,
            symbol=report.symbol,
            request=request_json(request, profile, cutoff, tape=tape),
            report=report_json(report),
            tape_hash=tape_hash,
        )


def request_of(stored: Mapping[str, Any], *, journal: Path, where: str) -> BacktestRequest:
    """The stored request as a ``BacktestRequest`` (baselines off: the audit replays the strategy).

    Raises:
        DataError: the stored request lacks what a replay needs.
    """
    try:
        fills = stored.get("fills") or {}
        return BacktestRequest(
            symbol=str(stored["symbol"]),
            start_ms=stored.get("start_ms"),
            end_ms=stored.get("end_ms"),
            timeframe=stored.get("timeframe"),
            context_timeframes=stored.get("context_timeframes"),
            every=int(stored.get("every") or 1),
            mode=stored.get("mode"),
            exchange=stored.get("exchange"),
            data=Path(stored["data"]) if stored.get("data") else None,
            model=stored.get("model"),
            fills=FillConfig(
                fee_pct=float(fills.get("fee_pct", 0.1)),
                slippage_pct=float(fills.get("slippage_pct", 0.02)),
                entry="limit" if fills.get("entry") == "limit" else "open",
            ),
            initial_equity=float(stored.get("initial_equity") or 10_000.0),
            journal=journal,
            baselines=False,
        )
    except (KeyError, TypeError, ValueError) as error:
        raise DataError(f"{where}: the stored request cannot be replayed ({error})") from None
