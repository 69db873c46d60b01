"""Writing the journal: a run's row, then each cycle as it happens (``JournalRecorder``).

Write-as-you-go (simonw/llm's log, made crash-safe): every call of the recorder is its own committed
transaction (or a savepoint of a batch, see ``Journal.batched``), so a run killed mid-cycle leaves
the cycle row with ``finished_ms`` NULL and every turn recorded so far. Readers show such a cycle
with the status ``incomplete``. In a batch a backtest cycle's row and inputs wait for its end, to be
written with its record in one write (its trace's JSON holds the context's text then): the batch's
end writes those of a cycle that never got there, so an interrupted cycle reads back as it did.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import BaseModel

from rez_cli.decision.model import Decision
from rez_cli.formatting import compact_json
from rez_cli.journal.blobs import KEYFRAME_EVERY, Blobs, Dictionary
from rez_cli.journal.db import Connection, Database
from rez_cli.journal.encoding import Codec, finite, integer, policy_checks

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


@dataclass
class _Inputs:
    """A backtest cycle's inputs, from its start to its end: what its trace may share with them.

    ``text``: the inputs as stored. ``context_json`` and ``context_text_json``: how each is written
    in that text, when it is written as it came (nothing redacted, every number finite).
    """

    context: Any
    context_text: str | None
    text: str
    context_json: str | None = None
    context_text_json: str | None = None


@dataclass(frozen=True)
class _Held:
    """A batched backtest cycle's inputs as they came, and its row's first columns, held from its
    start to its end."""

    candles: Mapping[str, Any]
    context: BaseModel | Mapping[str, Any]
    context_text: str | None
    started: tuple[Any, ...]
    """trace_id, run_id, symbol, exchange, simulated, mode, model, as_of_ms, started_ms, backtest_id."""
    profile: BaseModel | Mapping[str, Any]


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

    A live cycle keeps its payload in the columns of its row, where any SQLite tool reads it. A
    backtest cycle (``backtest_id`` set) keeps it in blobs (``journal.blobs``): its profile, its
    inputs (candles, context, context text) and its record (decision, trace, signals), each stored
    once by content and deflated against the same payload of the cycle before it (every
    ``KEYFRAME_EVERY``-th one on its own, so that reading a cycle inflates a short chain). Its trace
    leaves out what the inputs hold already (``trace_shares`` names those keys), its usage is its
    decision's, and its policy checks stay in the trace rather than in ``verdicts`` rows; the
    readers put all back.
    """

    def __init__(
        self,
        db: Database,
        codec: Codec,
        blobs: Blobs,
        run_id: int | None,
        *,
        backtest_id: str | None = None,
    ) -> None:
        self._db = db
        self._codec = codec
        self._blobs = blobs
        self.run_id = run_id
        self.backtest_id = backtest_id
        self._inputs: dict[str, _Inputs] = {}
        # Batched, a backtest cycle's inputs are written at its end, with its record: its trace's JSON
        # then holds the context's text, written once for both. The batch's end writes those of the
        # cycles that never got there (Ctrl-C, an error).
        self._held: dict[str, _Held] = {}
        # The cycles this recorder wrote a turn of, until they finish.
        self._turned: set[str] = set()
        # The last cycle's inputs and record (what the next ones' are deflated against), and how many
        # cycles the chain holds since its last keyframe.
        self._dictionaries: dict[str, tuple[Dictionary, int]] = {}
        # A backtest hands the same (frozen) profile to every cycle: stored once, its blob kept.
        self._profile: tuple[BaseModel, int | None] | None = None
        # The held cycles whose row is written (a turn of theirs needed it before their end).
        self._rows: set[str] = set()

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
        """Insert the cycle row with its inputs; ``finished_ms`` stays NULL until ``cycle_finished``.

        A backtest cycle in a batch (``Journal.batched``) is held instead, and written at its end.
        """
        codec = self._codec
        market = (
            codec.text(symbol),
            codec.text(exchange),
            int(simulated),
            codec.text(mode),
            codec.text(model),
        )
        if self.backtest_id is not None:
            started = (trace_id, self.run_id, *market, integer(as_of_ms), self._db.clock(), self.backtest_id)
            if self._db.batching:
                # Its row is written with its end (one write a cycle instead of two), or by the batch's
                # end, or before a turn of it is.
                self._held[trace_id] = _Held(candles, context, context_text, started, profile)
                self._db.at_batch_end(self._write_held)
                return
            inputs = self._packed_inputs(candles, _record_json(context), context_text)
            with self._write() as db:
                # The profile's blob first, then the inputs': as they were always stored.
                profile_blob = self._profile_blob(db, profile)
                self._insert_started(db, started, profile_blob, self._put(db, inputs.text, "inputs"))
            self._inputs[trace_id] = inputs
            return
        with self._write() as db:
            db.execute(
                "INSERT INTO cycles (trace_id, run_id, symbol, exchange, simulated, mode, model, profile,"
                " as_of_ms, candles, context, context_text, started_ms, backtest_id)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    trace_id,
                    self.run_id,
                    *market,
                    codec.json(_record_json(profile)),
                    integer(as_of_ms),
                    codec.json(candles),
                    codec.json(_record_json(context)),
                    codec.text(context_text),
                    self._db.clock(),
                    self.backtest_id,
                ),
            )

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        """One write (``Database.write``). When it fails, SQLite undoes what it stored and may give
        the ids of its blobs to the next ones: the profile's blob and the chain of dictionaries this
        recorder remembers are forgotten, so that no later row or blob points at one of those ids."""
        try:
            with self._db.write() as db:
                yield db
        except BaseException:
            self._profile = None
            self._dictionaries.clear()
            raise

    @staticmethod
    def _insert_started(
        db: Connection, started: tuple[Any, ...], profile_blob: int | None, inputs_blob: int | None
    ) -> None:
        """Insert a backtest cycle's row as its start knows it (``_Held.started``)."""
        db.execute(
            "INSERT INTO cycles (trace_id, run_id, symbol, exchange, simulated, mode, model,"
            " as_of_ms, started_ms, backtest_id, profile_blob, inputs_blob)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (*started, profile_blob, inputs_blob),
        )

    def _insert_held_row(self, db: Connection, trace_id: str) -> bool:
        """Write the row of a held cycle now, for a write that needs it before the cycle's end;
        whether it did (the caller notes it in ``_rows`` once that write is committed)."""
        held = self._held.get(trace_id)
        if held is None or trace_id in self._rows:
            return False
        self._insert_started(db, held.started, self._profile_blob(db, held.profile), None)
        return True

    def _profile_blob(self, db: Connection, profile: BaseModel | Mapping[str, Any]) -> int | None:
        if self._profile is not None and self._profile[0] is profile:
            return self._profile[1]
        text = self._codec.json(_record_json(profile))
        blob_id = None if text is None else self._put(db, text, None)
        if isinstance(profile, BaseModel) and profile.model_config.get("frozen"):
            self._profile = (profile, blob_id)
        return blob_id

    def _packed_inputs(
        self,
        candles: Mapping[str, Any],
        context: Any,
        context_text: str | None,
        context_json: str | None = None,
    ) -> _Inputs:
        """The inputs as stored; ``context_json``: ``context`` already written as the journal writes it."""
        inputs = {"candles": candles, "context": context, "context_text": context_text}
        candles_json, context_text_json = compact_json(candles), compact_json(context_text)
        if context_json is None:
            context_json = compact_json(context)
        written = None
        if candles_json is not None and context_json is not None and context_text_json is not None:
            written = (
                f'{{"candles":{candles_json},"context":{context_json},"context_text":{context_text_json}}}'
            )
        text = self._codec.json(inputs, text=written)
        assert text is not None  # a dict is never stored as NULL
        if text == written:
            # Written as it came: the trace's JSON holds the same text for each, which it may share.
            return _Inputs(context, context_text, text, context_json, context_text_json)
        return _Inputs(context, context_text, text)

    def _held_inputs(self, held: _Held, trace: Any, trace_json: Mapping[str, Any] | None) -> _Inputs:
        """A held cycle's inputs, the context's text taken from its trace's JSON when the trace holds
        that very context (not a copy with a secret struck out)."""
        written = getattr(trace, "context_json_text", None)
        if trace_json is not None and getattr(trace, "context", None) is held.context and callable(written):
            context_json = written()
            if context_json is not None:
                return self._packed_inputs(
                    held.candles, trace_json["context"], held.context_text, context_json
                )
        return self._packed_inputs(held.candles, _record_json(held.context), held.context_text)

    def _write_held(self) -> None:
        """Write the inputs of the cycles started in a batch that is ending without their end."""
        for trace_id, held in list(self._held.items()):
            inputs = self._held_inputs(held, None, None)
            with self._write() as db:
                if trace_id in self._rows:
                    blob_id = self._put(db, inputs.text, "inputs")
                    db.execute("UPDATE cycles SET inputs_blob = ? WHERE trace_id = ?", (blob_id, trace_id))
                else:
                    profile_blob = self._profile_blob(db, held.profile)
                    self._insert_started(db, held.started, profile_blob, self._put(db, inputs.text, "inputs"))
            del self._held[trace_id]
            self._rows.discard(trace_id)
            self._inputs[trace_id] = inputs

    def _put(self, db: Connection, text: str, kind: str | None) -> int:
        """Store ``text``; a ``kind`` of payload (inputs, record) is deflated against the previous one.

        Consecutive cycles share most of their payload (a window of candles slides by one), so the
        previous cycle's payload deflates the next far better than the first cycle's does: a third
        of the bytes. A chain costs its readers one inflation per link, so every ``KEYFRAME_EVERY``-th
        payload starts a new chain, deflated on its own.
        """
        chain = None if kind is None else self._dictionaries.get(kind)
        dictionary = chain[0] if chain is not None and chain[1] < KEYFRAME_EVERY else None
        blob_id = self._blobs.put(db, text, dictionary)
        if blob_id is None:
            # Its dictionary is gone (the write that stored it was undone): this one starts a chain.
            blob_id = self._blobs.put(db, text)
            dictionary = None
        assert blob_id is not None  # without a dictionary a blob is always stored
        if kind is not None:
            # The blob just stored is the next one's dictionary: readers inflate it to the same text.
            links = chain[1] + 1 if chain is not None and dictionary is not None else 1
            self._dictionaries[kind] = (Dictionary(blob_id, text.encode("utf-8")), links)
        return blob_id

    def turn_recorded(self, trace_id: str, turn: JsonRecord | Mapping[str, Any]) -> None:
        """Insert one model turn and its tool calls."""
        with self._write() as db:
            wrote_row = self._insert_held_row(db, trace_id)
            self._insert_turn(db, trace_id, _record_json(turn))
        # Only now: a write that failed took the row with it.
        if wrote_row:
            self._rows.add(trace_id)
        self._turned.add(trace_id)

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
        signals_json = [_record_json(signal) for signal in signals]
        # The cycle's Trace has its JSON written already (the cycle's own secret check read it).
        json_text = getattr(trace, "json_text", None)
        trace_text = json_text() if callable(json_text) else None
        raw_usage = stored.get("usage")
        usage: Mapping[str, Any] = raw_usage if isinstance(raw_usage, Mapping) else {}
        record_text: str | None = None
        inputs = self._inputs.pop(trace_id, None)
        held = self._held.get(trace_id)
        if held is not None:
            inputs = self._held_inputs(held, trace, trace_json)
        if self.backtest_id is not None:
            record_text = self._record_text(stored, trace_json, trace_text, signals_json, inputs)
            payload: tuple[str | None, ...] = (None, None, None, None)
        else:
            payload = (
                codec.json(stored),
                codec.json(trace_json, text=trace_text),
                codec.json(signals_json),
                codec.json(usage),
            )
        now = self._db.clock()
        with self._write() as db:
            # A held cycle's inputs; its row too, unless a turn of it needed the row before.
            held_blob: tuple[int, ...] = ()
            if held is not None and inputs is not None:
                if trace_id in self._rows:
                    held_blob = (self._put(db, inputs.text, "inputs"),)
                else:
                    profile_blob = self._profile_blob(db, held.profile)
                    self._insert_started(db, held.started, profile_blob, self._put(db, inputs.text, "inputs"))
            # A cycle this recorder started has its row; one that ended before it started does not.
            if (
                inputs is None
                and not db.execute("SELECT 1 FROM cycles WHERE trace_id = ?", (trace_id,)).fetchone()
            ):
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
            turn_count = 0
            # A cycle without turns (the rules mode's) has none to look for.
            if trace_json.get("turns") or trace_id in self._turned or inputs is None:
                recorded = {
                    row[0] for row in db.execute("SELECT idx FROM turns WHERE trace_id = ?", (trace_id,))
                }
                for turn in trace_json.get("turns") or []:
                    if isinstance(turn, Mapping) and integer(turn.get("index")) not in recorded | {None}:
                        self._insert_turn(db, trace_id, turn)
                turn_count = db.execute(
                    "SELECT COUNT(*) FROM turns WHERE trace_id = ?", (trace_id,)
                ).fetchone()[0]
            self._turned.discard(trace_id)
            # Inputs before record: the order the blobs were stored in when the inputs were written
            # at the cycle's start.
            packed = () if record_text is None else (self._put(db, record_text, "record"),)
            db.execute(
                "UPDATE cycles SET finished_ms = ?, status = ?, action = ?, error = ?, source = ?,"
                " confidence = ?, decision = ?, trace = ?, signals = ?, usage = ?, cost_usd = ?,"
                " llm_calls = ?, tool_calls = ?, turn_count = ?"
                + (", inputs_blob = ?" if held_blob else "")
                + (", record_blob = ?" if packed else "")
                + " WHERE trace_id = ?",
                (
                    now,
                    codec.text(status),
                    codec.text(stored.get("action")),
                    codec.text(stored.get("error")),
                    codec.text(stored.get("source")),
                    finite(stored.get("confidence")),
                    *payload,
                    finite(usage.get("cost_usd")),
                    integer(usage.get("llm_calls")),
                    integer(usage.get("tool_calls")),
                    turn_count,
                    *held_blob,
                    *packed,
                    trace_id,
                ),
            )
            if record_text is None:
                db.execute("DELETE FROM verdicts WHERE trace_id = ?", (trace_id,))
                for verdict_idx, seq, rule, passed, detail in policy_checks(trace_json, codec.text):
                    db.execute(
                        "INSERT INTO verdicts (trace_id, verdict_idx, seq, rule, passed, detail)"
                        " VALUES (?, ?, ?, ?, ?, ?)",
                        (trace_id, verdict_idx, seq, rule, int(passed), detail),
                    )
        self._held.pop(trace_id, None)
        self._rows.discard(trace_id)

    def _record_text(
        self,
        decision: Mapping[str, Any],
        trace: Mapping[str, Any],
        trace_text: str | None,
        signals: list[Any],
        inputs: _Inputs | None,
    ) -> str:
        """A backtest cycle's record as stored JSON: decision, signals, and the trace without what the
        cycle's inputs hold already."""
        if trace_text is not None and inputs is not None and inputs.context_json is not None:
            shared = self._shared_text(trace, trace_text, inputs)
            if shared is not None:
                trace_text, shares = shared
                decision_json, signals_json = compact_json(decision), compact_json(signals, own=False)
                if decision_json is not None and signals_json is not None:
                    written = (
                        f'{{"decision":{decision_json},"trace":{trace_text},"signals":{signals_json},'
                        f'"trace_shares":{json.dumps(shares)}}}'
                    )
                    if not self._codec.redactor.touches(written):
                        return written
        shares = []
        if inputs is not None:
            for key, value in (("context", inputs.context), ("context_text", inputs.context_text)):
                if value is not None and key in trace and trace[key] == value:
                    shares.append(key)
        if shares:
            trace = {key: None if key in shares else value for key, value in trace.items()}
        text = self._codec.json(
            {"decision": decision, "trace": trace, "signals": signals, "trace_shares": shares}
        )
        assert text is not None  # a dict is never stored as NULL
        return text

    @staticmethod
    def _shared_text(trace: Mapping[str, Any], text: str, inputs: _Inputs) -> tuple[str, list[str]] | None:
        """``text`` (the trace's JSON) with its context and context text written as null, where they
        are the inputs' own: found as the very text the inputs were written with, which is cheaper than
        writing the trace again. None when either is not where it is looked for."""
        shares: list[str] = []
        context = '{"context":' + str(inputs.context_json)
        if text.startswith(context):
            text = '{"context":null' + text[len(context) :]
            shares.append("context")
        if inputs.context_text is not None and trace.get("context_text") == inputs.context_text:
            # The trace holds it at its top level; found once in the text, that is where.
            written = '"context_text":' + str(inputs.context_text_json)
            at = text.find(written)
            if at < 0 or text.find(written, at + 1) >= 0:
                return None
            text = text[:at] + '"context_text":null' + text[at + len(written) :]
            shares.append("context_text")
        return text, shares

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
