"""Writing the journal: a run's row, then each cycle as it happens (``JournalRecorder``).

Write-as-you-go (simonw/llm's log, made crash-safe): every call of the recorder is its own committed
transaction (or a savepoint of a batch, see ``Journal.batched``), so a run killed mid-cycle leaves
the cycle row with ``finished_ms`` NULL and every turn recorded so far. Readers show such a cycle
with the status ``incomplete``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from pydantic import BaseModel

from rez_cli.decision.model import Decision
from rez_cli.journal.db import Connection, Database
from rez_cli.journal.encoding import Codec, finite, integer

__all__ = ["JournalRecorder", "insert_run"]


def insert_run(
    db: Database,
    codec: Codec,
    command: str,
    argv: Sequence[str],
    *,
    config_hash: str,
    profile_hash: str,
    versions: Mapping[str, str],
) -> int:
    """Insert a run's row and return its id (see ``Journal.start_run``)."""
    with db.write() as conn:
        cursor = conn.execute(
            "INSERT INTO runs (started_ms, command, argv, config_hash, profile_hash, versions, pid)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                db.clock(),
                codec.text(command),
                codec.json(list(argv)),
                config_hash,
                profile_hash,
                codec.json(dict(versions)),
                os.getpid(),
            ),
        )
    run_id = cursor.lastrowid
    assert run_id is not None  # an INSERT into a rowid table always sets it
    return run_id


class JsonRecord(Protocol):
    """A typed record of the cycle's (``TurnRecord``, ``Trace``) that knows its own JSON."""

    def to_json(self) -> dict[str, Any]: ...


class SignalRecord(Protocol):
    """An ``AdvisorySignal``: what the journal keeps of it."""

    def summary(self) -> dict[str, Any]: ...


def _record_json(value: BaseModel | JsonRecord | SignalRecord | Mapping[str, Any]) -> Any:
    """A typed value of the cycle's as the JSON the journal stores; plain data (from a tool, a test,
    an older caller) as it is."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, Mapping):
        return value
    to_json = getattr(value, "to_json", None) or getattr(value, "summary", None)
    return to_json() if callable(to_json) else value


class JournalRecorder:
    """Writes one run's cycles as they happen; each call is committed before it returns.

    Implements ``rez_cli.cycle.recording.CycleRecorder``: it is handed the cycle's typed objects and
    is where they become JSON. Plain JSON data is taken as well, as it is.
    """

    def __init__(
        self, db: Database, codec: Codec, run_id: int | None, *, backtest_id: str | None = None
    ) -> None:
        self._db = db
        self._codec = codec
        self.run_id = run_id
        self.backtest_id = backtest_id

    def cycle_started(
        self,
        trace_id: str,
        *,
        symbol: str,
        exchange: str,
        simulated: bool,
        mode: str,
        model: str | None,
        profile: BaseModel | Mapping[str, Any],
        as_of_ms: int,
        candles: dict[str, dict[str, Any]],
        context: BaseModel | Mapping[str, Any],
        context_text: str,
    ) -> None:
        """Insert the cycle row with its inputs; ``finished_ms`` stays NULL until ``cycle_finished``."""
        codec = self._codec
        with self._db.write() as db:
            db.execute(
                "INSERT INTO cycles (trace_id, run_id, symbol, exchange, simulated, mode, model, profile,"
                " as_of_ms, candles, context, context_text, started_ms, backtest_id)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    trace_id,
                    self.run_id,
                    codec.text(symbol),
                    codec.text(exchange),
                    int(simulated),
                    codec.text(mode),
                    codec.text(model),
                    codec.json(_record_json(profile)),
                    integer(as_of_ms),
                    codec.json(candles),
                    codec.json(_record_json(context)),
                    codec.text(context_text),
                    self._db.clock(),
                    self.backtest_id,
                ),
            )

    def turn_recorded(self, trace_id: str, turn: JsonRecord | Mapping[str, Any]) -> None:
        """Insert one model turn and its tool calls."""
        with self._db.write() as db:
            self._insert_turn(db, trace_id, _record_json(turn))

    def cycle_finished(
        self,
        trace_id: str,
        *,
        status: str,
        decision: Decision | Mapping[str, Any],
        trace: JsonRecord | Mapping[str, Any],
        signals: Sequence[SignalRecord | Mapping[str, Any]],
    ) -> None:
        """Fill the decision columns, store the trace, and insert one verdict row per policy check.

        A cycle that ended before ``cycle_started`` (the exchange was unreachable) gets its row here;
        turns present in ``trace["turns"]`` but never recorded are added. Calling it again replaces
        what the previous call wrote.
        """
        codec = self._codec
        stored: Mapping[str, Any] = _record_json(decision)
        trace_json = _record_json(trace)
        # The cycle's Trace has its JSON written already (the cycle's own secret check read it).
        json_text = getattr(trace, "json_text", None)
        trace_text = json_text() if callable(json_text) else None
        raw_usage = stored.get("usage")
        usage: Mapping[str, Any] = raw_usage if isinstance(raw_usage, Mapping) else {}
        now = self._db.clock()
        with self._db.write() as db:
            if not db.execute("SELECT 1 FROM cycles WHERE trace_id = ?", (trace_id,)).fetchone():
                db.execute(
                    "INSERT INTO cycles (trace_id, run_id, symbol, mode, as_of_ms, started_ms, backtest_id)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        trace_id,
                        self.run_id,
                        codec.text(str(stored.get("symbol", ""))),
                        codec.text(stored.get("mode")),
                        integer(stored.get("timestamp")),
                        now,
                        self.backtest_id,
                    ),
                )
            recorded = {row[0] for row in db.execute("SELECT idx FROM turns WHERE trace_id = ?", (trace_id,))}
            for turn in trace_json.get("turns") or []:
                if isinstance(turn, Mapping) and integer(turn.get("index")) not in recorded | {None}:
                    self._insert_turn(db, trace_id, turn)
            turn_count = db.execute("SELECT COUNT(*) FROM turns WHERE trace_id = ?", (trace_id,)).fetchone()[
                0
            ]
            db.execute(
                "UPDATE cycles SET finished_ms = ?, status = ?, action = ?, error = ?, source = ?,"
                " confidence = ?, decision = ?, trace = ?, signals = ?, usage = ?, cost_usd = ?,"
                " llm_calls = ?, tool_calls = ?, turn_count = ? WHERE trace_id = ?",
                (
                    now,
                    codec.text(status),
                    codec.text(stored.get("action")),
                    codec.text(stored.get("error")),
                    codec.text(stored.get("source")),
                    finite(stored.get("confidence")),
                    codec.json(stored),
                    codec.json(trace_json, text=trace_text),
                    codec.json([_record_json(signal) for signal in signals]),
                    codec.json(usage),
                    finite(usage.get("cost_usd")),
                    integer(usage.get("llm_calls")),
                    integer(usage.get("tool_calls")),
                    turn_count,
                    trace_id,
                ),
            )
            db.execute("DELETE FROM verdicts WHERE trace_id = ?", (trace_id,))
            for verdict_idx, verdict in enumerate(trace_json.get("verdicts") or []):
                checks = verdict.get("checks") if isinstance(verdict, Mapping) else None
                for seq, check in enumerate(checks or []):
                    db.execute(
                        "INSERT INTO verdicts (trace_id, verdict_idx, seq, rule, passed, detail)"
                        " VALUES (?, ?, ?, ?, ?, ?)",
                        (
                            trace_id,
                            verdict_idx,
                            seq,
                            codec.text(str(check.get("rule", ""))),
                            int(bool(check.get("passed"))),
                            codec.text(check.get("detail")),
                        ),
                    )

    def _insert_turn(self, db: Connection, trace_id: str, turn: Mapping[str, Any]) -> None:
        codec = self._codec
        idx = integer(turn.get("index"))
        if idx is None:
            idx = db.execute(
                "SELECT COALESCE(MAX(idx), 0) + 1 FROM turns WHERE trace_id = ?", (trace_id,)
            ).fetchone()[0]
        tools_offered = turn.get("tools_offered")
        db.execute(
            "INSERT INTO turns (trace_id, idx, content, reasoning, tools_offered, prompt_tokens,"
            " completion_tokens, duration_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                trace_id,
                idx,
                codec.text(turn.get("content")),
                codec.text(turn.get("reasoning")),
                None if tools_offered is None else int(bool(tools_offered)),
                integer(turn.get("prompt_tokens")),
                integer(turn.get("completion_tokens")),
                finite(turn.get("duration_ms")),
            ),
        )
        for seq, call in enumerate(turn.get("tool_calls") or []):
            db.execute(
                "INSERT INTO tool_calls (trace_id, turn_idx, seq, call_id, name, arguments, ok, content,"
                " rows, duration_ms, cached) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    trace_id,
                    idx,
                    seq,
                    codec.text(call.get("id")),
                    codec.text(str(call.get("name", ""))),
                    codec.text(call.get("arguments")),
                    int(bool(call.get("ok"))),
                    codec.text(call.get("content")),
                    codec.json(call.get("rows") or []),
                    finite(call.get("duration_ms")),
                    int(bool(call.get("cached"))),
                ),
            )
