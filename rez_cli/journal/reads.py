"""Reading the journal: cycles listed, one cycle whole, rates over many, the memory of past decisions.

Readers show a cycle whose run was killed before it finished with the status ``incomplete``. What
they return is redacted again on the way out: a journal written before a secret was registered (or
by an older Rez) is shown without it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rez_cli.actions import ACTIONS
from rez_cli.errors import DataError, DataNotFound, UsageError
from rez_cli.journal.blobs import REFERENCING_COLUMNS, Blobs
from rez_cli.journal.db import Connection, Database, Row
from rez_cli.journal.encoding import (
    Codec,
    JsonKind,
    PolicyCheck,
    finite,
    integer,
    parse_stored,
    policy_checks,
)

__all__ = ["INCOMPLETE", "CycleReads"]

INCOMPLETE = "incomplete"
# What each JSON column of ``cycles`` holds.
_JSON_COLUMNS: dict[str, JsonKind] = {
    "profile": dict,
    "candles": dict,
    "context": dict,
    "decision": dict,
    "trace": dict,
    "signals": list,
    "usage": dict,
}


def _rate(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _score_summary(outcome: str | None, details: str | None, before_ms: int | None) -> str | None:
    """A stored score as the memory shows it: its summary line, or at least its outcome.

    None when the candles it was judged on end after ``before_ms``: a cycle replayed at a past moment
    (``--as-of``) must not learn from its memory what the market did after that moment.
    """
    if outcome is None:
        return None
    try:
        parsed = json.loads(details) if details else {}
    except (ValueError, RecursionError):
        parsed = {}  # a damaged score leaves its outcome, which is all the memory needs
    if not isinstance(parsed, dict):
        parsed = {}
    ends = integer(parsed.get("window_end_ms"))
    if before_ms is not None and ends is not None and ends > before_ms:
        return None
    summary = parsed.get("summary")
    return summary if isinstance(summary, str) and summary else outcome


class CycleReads:
    """The reading half of ``Journal`` (whose connection, codec and path it uses)."""

    path: Path
    _db: Database
    _codec: Codec
    _blobs: Blobs

    def list_cycles(
        self,
        symbol: str | None = None,
        action: str | None = None,
        since_ms: int | None = None,
        limit: int | None = 20,
    ) -> list[dict[str, Any]]:
        """Cycles newest first, unfinished ones included with the status ``incomplete``.

        Args:
            symbol: only this market.
            action: only ``buy``, ``sell`` or ``hold``.
            since_ms: only cycles started at or after this time.
            limit: at most this many rows; None for all.

        Raises:
            UsageError: an unknown action or a limit below 1.
        """
        if action is not None and action not in ACTIONS:
            raise UsageError(f"unknown action {action!r}", hint=f"use one of {', '.join(ACTIONS)}")
        if limit is not None and limit < 1:
            raise UsageError(f"the limit must be at least 1, got {limit}")
        where, params = self._filters(symbol=symbol, action=action, since_ms=since_ms)
        query = (
            "SELECT trace_id, run_id, symbol, exchange, simulated, mode, model, as_of_ms, started_ms,"
            f" finished_ms, CASE WHEN finished_ms IS NULL THEN '{INCOMPLETE}' ELSE status END AS status,"
            " action, error, source, confidence, cost_usd, llm_calls, tool_calls,"
            # Counted live: an unfinished cycle has no turn_count yet, but has turns.
            " (SELECT COUNT(*) FROM turns WHERE turns.trace_id = cycles.trace_id) AS turn_count, backtest_id"
            f" FROM cycles {where} ORDER BY started_ms DESC, rowid DESC"
        )
        if limit is not None:
            query += " LIMIT ?"
            params.append(limit)
        with self._db.read() as db:
            rows = db.execute(query, params).fetchall()
        return [dict(self._codec.redactor.value(self._row(row))) for row in rows]

    def get_cycle(self, trace_id: str) -> dict[str, Any]:
        """Everything journaled about one cycle: run, inputs, turns and tool calls, decision, verdicts.

        Args:
            trace_id: the whole id or any prefix that matches exactly one cycle.

        Raises:
            DataNotFound: no cycle has that id.
            UsageError: the prefix is empty or matches several cycles.
        """
        full_id = self._resolve_id(trace_id)
        with self._db.read() as db:
            cycle = db.execute("SELECT * FROM cycles WHERE trace_id = ?", (full_id,)).fetchone()
            run = db.execute("SELECT * FROM runs WHERE id = ?", (cycle["run_id"],)).fetchone()
            turns = db.execute("SELECT * FROM turns WHERE trace_id = ? ORDER BY idx", (full_id,)).fetchall()
            calls = db.execute(
                "SELECT * FROM tool_calls WHERE trace_id = ? ORDER BY turn_idx, seq", (full_id,)
            ).fetchall()
            verdicts = db.execute(
                "SELECT verdict_idx, seq, rule, passed, detail FROM verdicts WHERE trace_id = ?"
                " ORDER BY verdict_idx, seq",
                (full_id,),
            ).fetchall()
        packed = dict(cycle).get("record_blob") is not None
        record = self._row(cycle)
        record["status"] = INCOMPLETE if record["finished_ms"] is None else record["status"]
        record["run"] = None
        if run is not None:
            record["run"] = {
                **dict(run),
                "argv": self._stored(run["argv"], "a run's argv", list),
                "versions": self._stored(run["versions"], "a run's versions", dict),
            }
        calls_by_turn: dict[int, list[dict[str, Any]]] = {}
        for call in calls:
            calls_by_turn.setdefault(call["turn_idx"], []).append(
                {
                    "id": call["call_id"],
                    "name": call["name"],
                    "arguments": call["arguments"],
                    "ok": bool(call["ok"]),
                    "content": call["content"],
                    "rows": self._stored(call["rows"], "a tool call's rows", list),
                    "cached": bool(call["cached"]),
                    "duration_ms": call["duration_ms"],
                }
            )
        record["turns"] = [
            {
                "index": turn["idx"],
                "content": turn["content"],
                **({"reasoning": turn["reasoning"]} if turn["reasoning"] else {}),
                "tools_offered": None if turn["tools_offered"] is None else bool(turn["tools_offered"]),
                "tool_calls": calls_by_turn.get(turn["idx"], []),
                "prompt_tokens": turn["prompt_tokens"],
                "completion_tokens": turn["completion_tokens"],
                "duration_ms": turn["duration_ms"],
            }
            for turn in turns
        ]
        record["turn_count"] = len(record["turns"])
        checks: list[PolicyCheck] = [
            (row["verdict_idx"], row["seq"], row["rule"], bool(row["passed"]), row["detail"])
            for row in verdicts
        ]
        if packed:
            # A backtest cycle keeps its policy checks in its trace alone.
            checks = policy_checks(record["trace"] or {}, self._codec.text)
        record["verdicts"] = [
            {"verdict_idx": verdict_idx, "rule": rule, "passed": passed, "detail": detail}
            for verdict_idx, _, rule, passed, detail in checks
        ]
        # A journal written before a secret was registered (or by an older Rez) is shown without it.
        return dict(self._codec.redactor.value(record))

    def stats(self, since_ms: int | None = None) -> dict[str, Any]:
        """Rates over finished cycles (unfinished ones are only counted), over all cycles and apart for
        live ones and backtest ones, which say different things (a backtest's thousands of rules
        cycles would drown the rates of a model's live decisions).

        Returns:
            ``since_ms``; ``cycles``, ``finished``, ``incomplete``; ``hold_rate`` and ``failure_rate``
            (a failure is a decision with an error code); ``failures`` per code ``{count, rate}``;
            ``repair_rate_by_model`` per model ``{cycles, repaired, rate}`` (source ``repaired``);
            ``avg_cost_usd``, ``avg_turns``; ``by_mode`` (all cycles) and ``by_action`` counts.
            ``live`` and ``backtest``: the same (``since_ms`` aside) over those cycles alone.
            A rate over no cycle is None.
        """
        return {
            "since_ms": since_ms,
            **self._rates(since_ms, None),
            "live": self._rates(since_ms, "backtest_id IS NULL"),
            "backtest": self._rates(since_ms, "backtest_id IS NOT NULL"),
        }

    def _rates(self, since_ms: int | None, kind: str | None) -> dict[str, Any]:
        where, params = self._filters(since_ms=since_ms)
        if kind is not None:
            where = f"{where} {'AND' if where else 'WHERE'} {kind}"
        finished = f"{where} {'AND' if where else 'WHERE'} finished_ms IS NOT NULL"
        with self._db.read() as db:
            totals = db.execute(
                "SELECT COUNT(*) AS cycles, COUNT(finished_ms) AS finished,"
                " COALESCE(SUM(finished_ms IS NOT NULL AND action = 'hold'), 0) AS holds,"
                " COALESCE(SUM(finished_ms IS NOT NULL AND error IS NOT NULL), 0) AS failures,"
                " AVG(CASE WHEN finished_ms IS NOT NULL THEN cost_usd END) AS avg_cost_usd,"
                " AVG(CASE WHEN finished_ms IS NOT NULL THEN turn_count END) AS avg_turns"
                f" FROM cycles {where}",
                params,
            ).fetchone()
            failures = db.execute(
                f"SELECT error, COUNT(*) AS n FROM cycles {finished} AND error IS NOT NULL"
                " GROUP BY error ORDER BY n DESC, error",
                params,
            ).fetchall()
            repairs = db.execute(
                "SELECT model, COUNT(*) AS n, SUM(source = 'repaired') AS repaired"
                f" FROM cycles {finished} AND model IS NOT NULL GROUP BY model ORDER BY model",
                params,
            ).fetchall()
            modes = db.execute(
                f"SELECT COALESCE(mode, '?') AS mode, COUNT(*) AS n FROM cycles {where}"
                " GROUP BY 1 ORDER BY n DESC, 1",
                params,
            ).fetchall()
            actions = db.execute(
                f"SELECT COALESCE(action, '?') AS action, COUNT(*) AS n FROM cycles {finished}"
                " GROUP BY 1 ORDER BY n DESC, 1",
                params,
            ).fetchall()
        done = int(totals["finished"])
        return {
            "cycles": int(totals["cycles"]),
            "finished": done,
            "incomplete": int(totals["cycles"]) - done,
            "hold_rate": _rate(int(totals["holds"]), done),
            "failure_rate": _rate(int(totals["failures"]), done),
            "failures": {
                row["error"]: {"count": row["n"], "rate": _rate(row["n"], done)} for row in failures
            },
            "repair_rate_by_model": {
                row["model"]: {
                    "cycles": row["n"],
                    "repaired": row["repaired"],
                    "rate": _rate(row["repaired"], row["n"]),
                }
                for row in repairs
            },
            "avg_cost_usd": totals["avg_cost_usd"],
            "avg_turns": totals["avg_turns"],
            "by_mode": {row["mode"]: row["n"] for row in modes},
            "by_action": {row["action"]: row["n"] for row in actions},
        }

    def recent(
        self,
        symbol: str,
        limit: int = 3,
        *,
        exchange: str | None = None,
        before_ms: int | None = None,
    ) -> list[Mapping[str, Any]]:
        """The last finished decisions for ``symbol``, newest market time first (``MemoryAccessor``).

        Args:
            symbol: the market.
            limit: how many.
            exchange: only decisions taken on this exchange (keep the sim market out of live memory).
            before_ms: only decisions whose market time is earlier: a backtest must not remember
                decisions taken at later candles.

        Returns:
            ``trace_id, timestamp, action, entry_price, tp_price, sl_price, confidence, rationale,
            invalidation, error`` and ``outcome``: the one-line summary of its score (``rez score``),
            None until it is scored or while its candles end after ``before_ms``.
        """
        where, params = self._filters(symbol=symbol, exchange=exchange)
        # Backtest cycles are simulations of the past: live memory never sees them.
        where += " AND finished_ms IS NOT NULL AND backtest_id IS NULL"
        if before_ms is not None:
            where += " AND as_of_ms < ?"
            params.append(before_ms)
        params.append(max(0, limit))
        with self._db.read() as db:
            rows = db.execute(
                "SELECT trace_id, as_of_ms, action, error, decision,"
                " (SELECT outcome FROM scores WHERE scores.trace_id = cycles.trace_id) AS score_outcome,"
                " (SELECT details FROM scores WHERE scores.trace_id = cycles.trace_id) AS score_details"
                f" FROM cycles {where}"
                " ORDER BY as_of_ms DESC, started_ms DESC, rowid DESC LIMIT ?",
                params,
            ).fetchall()
        memories: list[Mapping[str, Any]] = []
        for row in rows:
            decision = self._stored(row["decision"], "a decision", dict)
            memories.append(
                {
                    "trace_id": row["trace_id"],
                    "timestamp": decision.get("timestamp", row["as_of_ms"]),
                    "action": row["action"],
                    "entry_price": decision.get("entry_price"),
                    "tp_price": decision.get("tp_price"),
                    "sl_price": decision.get("sl_price"),
                    "confidence": decision.get("confidence"),
                    "rationale": decision.get("rationale"),
                    "invalidation": decision.get("invalidation"),
                    "error": row["error"],
                    "outcome": _score_summary(row["score_outcome"], row["score_details"], before_ms),
                }
            )
        return memories

    def backtest_prices(self, backtest_id: str) -> list[tuple[int, float]]:
        """The price each cycle of a backtest saw: ``(as_of_ms, last_price)``, oldest first.

        What ``rez backtest --report`` draws the price from: the journal already holds it, so the
        report needs no second pass over the market. Cycles without a context are left out.

        Args:
            backtest_id: the backtest's id (``bt-...``).
        """
        inputs = "inputs_blob" if self._db.has_blobs else "NULL AS inputs_blob"
        prices: list[tuple[int, float]] = []
        with self._db.read() as db:
            rows = db.execute(
                f"SELECT as_of_ms, context, {inputs} FROM cycles WHERE backtest_id = ?"
                " AND (context IS NOT NULL OR inputs_blob IS NOT NULL) AND as_of_ms IS NOT NULL"
                " ORDER BY as_of_ms, rowid",
                (backtest_id,),
            ).fetchall()
            for row in rows:
                if row["inputs_blob"] is not None:
                    stored = self._blobs.json(db, row["inputs_blob"], "a cycle's inputs", dict)
                    context = self._kind(stored.get("context"), "a cycle's context", dict) or {}
                else:
                    context = self._stored(row["context"], "a context", dict)
                price = finite(context.get("last_price"))
                if price is not None:
                    prices.append((int(row["as_of_ms"]), price))
        return prices

    @staticmethod
    def _filters(
        *,
        symbol: str | None = None,
        action: str | None = None,
        since_ms: int | None = None,
        exchange: str | None = None,
    ) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        params: list[Any] = []
        for column, value in (("symbol", symbol), ("action", action), ("exchange", exchange)):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        if since_ms is not None:
            clauses.append("started_ms >= ?")
            params.append(since_ms)
        return ("WHERE " + " AND ".join(clauses) if clauses else ""), params

    def _row(self, row: Row) -> dict[str, Any]:
        record: dict[str, Any] = dict(row)
        if record.get("simulated") is not None:
            record["simulated"] = bool(record["simulated"])
        for column in _JSON_COLUMNS:
            if column in record and record[column] is not None:
                record[column] = self._stored(record[column], f"a cycle's {column}", _JSON_COLUMNS[column])
        held = {column: record.pop(column, None) for column in REFERENCING_COLUMNS}
        if any(blob_id is not None for blob_id in held.values()):
            with self._db.read() as db:
                self._unpack(db, record, **held)
        return record

    def _unpack(
        self,
        db: Connection,
        record: dict[str, Any],
        *,
        profile_blob: int | None,
        inputs_blob: int | None,
        record_blob: int | None,
    ) -> None:
        """Put a backtest cycle's blobs back in the columns a live cycle holds them in."""
        if profile_blob is not None:
            record["profile"] = self._blobs.json(db, profile_blob, "a cycle's profile", dict)
        if inputs_blob is not None:
            inputs = self._blobs.json(db, inputs_blob, "a cycle's inputs", dict)
            record["candles"] = self._kind(inputs.get("candles"), "a cycle's candles", dict)
            record["context"] = self._kind(inputs.get("context"), "a cycle's context", dict)
            record["context_text"] = self._kind(inputs.get("context_text"), "a cycle's context_text", str)
        if record_blob is not None:
            stored = self._blobs.json(db, record_blob, "a cycle's record", dict)
            for column in ("decision", "trace", "signals"):
                record[column] = self._kind(stored.get(column), f"a cycle's {column}", _JSON_COLUMNS[column])
            # As the recorder takes it: the decision's usage, or nothing.
            decision = record["decision"] or {}
            record["usage"] = decision["usage"] if isinstance(decision.get("usage"), dict) else {}
            trace = record["trace"]
            for key in self._kind(stored.get("trace_shares"), "a cycle's record", list):
                if key in ("context", "context_text") and trace is not None:
                    trace[key] = record[key]

    def _kind(self, value: Any, what: str, kind: JsonKind | type[str]) -> Any:
        """A value unpacked from a blob: None or a ``kind``, else the journal is damaged."""
        if value is None or isinstance(value, kind):
            return value
        raise DataError(
            f"journal {self.path} is damaged: {what} is not what Rez stores there",
            hint="restore it from a backup, or use another --journal",
        )

    def _stored(self, text: Any, what: str, kind: JsonKind) -> Any:
        return parse_stored(text, what, kind, self.path)

    def _resolve_id(self, trace_id: str) -> str:
        prefix = trace_id.strip()
        if not prefix:
            raise UsageError("a trace id is required", hint="rez traces list shows them")
        with self._db.read() as db:
            # Shorter ids sort first, so an exact match is never cut off by the limit.
            found: list[str] = [
                row[0]
                for row in db.execute(
                    "SELECT trace_id FROM cycles WHERE substr(trace_id, 1, ?) = ? ORDER BY trace_id LIMIT 4",
                    (len(prefix), prefix),
                )
            ]
        if prefix in found:
            return prefix
        if not found:
            raise DataNotFound(f"no trace {prefix!r} in {self.path}", hint="rez traces list shows the ids")
        if len(found) > 1:
            shown = ", ".join(found[:3]) + (", ..." if len(found) > 3 else "")
            raise UsageError(
                f"trace id {prefix!r} is ambiguous in {self.path}: it starts {shown}",
                hint="give more characters",
            )
        return found[0]
