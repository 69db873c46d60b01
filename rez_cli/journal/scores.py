"""What ``rez score`` reads from the journal and writes to it: live decisions to judge, and their scores.

A score belongs to one cycle (table ``scores``, one row per decision: scoring again replaces it).
``CycleReads.recent`` gives each score's summary line to the model as the decision's ``outcome``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rez_cli.journal.db import Database
from rez_cli.journal.encoding import Codec, finite, integer, parse_stored

__all__ = ["ScoreQueries"]


class ScoreQueries:
    """The scores half of ``Journal`` (whose connection, codec and path it uses)."""

    path: Path
    _db: Database
    _codec: Codec

    def scorable_cycles(
        self, *, symbol: str | None = None, since_ms: int | None = None
    ) -> list[dict[str, Any]]:
        """Finished live decisions a forward score can judge, oldest market time first, with their score.

        Backtest cycles are left out (the backtest already traded them), and so are decisions with an
        error: a hold forced by a failure says nothing about the market.

        Args:
            symbol: only this market.
            since_ms: only decisions whose market time (``as_of_ms``) is at or after this.

        Returns:
            One dict per cycle: ``trace_id, symbol, exchange, simulated, mode, model, as_of_ms,
            action, confidence``, ``profile`` (its name, or None), ``decision`` and ``context``
            (parsed), and ``score``: None, or the stored ``scored_ms, horizon, outcome, r_multiple,
            exit_price, exit_ms, details`` (parsed).
        """
        clauses = [
            "c.finished_ms IS NOT NULL",
            "c.backtest_id IS NULL",
            "c.error IS NULL",
            "c.action IS NOT NULL",
            "c.as_of_ms IS NOT NULL",
        ]
        params: list[Any] = []
        if symbol is not None:
            clauses.append("c.symbol = ?")
            params.append(symbol)
        if since_ms is not None:
            clauses.append("c.as_of_ms >= ?")
            params.append(since_ms)
        with self._db.read() as db:
            rows = db.execute(
                "SELECT c.trace_id, c.symbol, c.exchange, c.simulated, c.mode, c.model, c.profile,"
                " c.as_of_ms, c.action, c.confidence, c.decision, c.context,"
                " s.scored_ms, s.horizon, s.outcome, s.r_multiple, s.exit_price, s.exit_ms, s.details"
                " FROM cycles AS c LEFT JOIN scores AS s ON s.trace_id = c.trace_id"
                f" WHERE {' AND '.join(clauses)} ORDER BY c.as_of_ms, c.started_ms, c.rowid",
                params,
            ).fetchall()
        found: list[dict[str, Any]] = []
        for row in rows:
            profile = parse_stored(row["profile"], "a profile", dict, self.path)
            found.append(
                {
                    "trace_id": row["trace_id"],
                    "symbol": row["symbol"],
                    "exchange": row["exchange"],
                    "simulated": None if row["simulated"] is None else bool(row["simulated"]),
                    "mode": row["mode"],
                    "model": row["model"],
                    "profile": profile.get("name") if isinstance(profile, Mapping) else None,
                    "as_of_ms": row["as_of_ms"],
                    "action": row["action"],
                    "confidence": row["confidence"],
                    "decision": parse_stored(row["decision"], "a decision", dict, self.path),
                    "context": parse_stored(row["context"], "a context", dict, self.path),
                    "score": None
                    if row["outcome"] is None
                    else {
                        "scored_ms": row["scored_ms"],
                        "horizon": row["horizon"],
                        "outcome": row["outcome"],
                        "r_multiple": row["r_multiple"],
                        "exit_price": row["exit_price"],
                        "exit_ms": row["exit_ms"],
                        "details": parse_stored(row["details"], "a score's details", dict, self.path),
                    },
                }
            )
        return found

    def save_score(
        self,
        trace_id: str,
        *,
        horizon: int,
        outcome: str,
        r_multiple: float | None,
        exit_price: float | None,
        exit_ms: int | None,
        details: Mapping[str, Any],
    ) -> None:
        """Store the score of one decision, replacing any earlier one; ``scored_ms`` is now.

        Args:
            trace_id: the cycle judged (it must exist).
            horizon: how many candles of its primary timeframe the judgement covered.
            outcome: ``tp_first``, ``sl_first``, ``neither``, or for a hold ``up_first``/``down_first``/
                ``neither`` (see ``rez_cli.scoring.judge``).
            r_multiple: the result in R after fees (for a hold, the better naive trade's).
            exit_price: where the judged trade ended.
            exit_ms: when (the close time of the candle it ended in).
            details: the rest of the judgement; ``summary`` is what the memory shows the model.
        """
        with self._db.write() as db:
            db.execute(
                "INSERT OR REPLACE INTO scores (trace_id, scored_ms, horizon, outcome, r_multiple,"
                " exit_price, exit_ms, details) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    trace_id,
                    self._db.clock(),
                    horizon,
                    self._codec.text(outcome),
                    finite(r_multiple),
                    finite(exit_price),
                    integer(exit_ms),
                    self._codec.json(details),
                ),
            )
