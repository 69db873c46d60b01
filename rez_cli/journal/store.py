"""The journal: every decision cycle, in one SQLite file, written as it happens.

Write-as-you-go (simonw/llm's log, made crash-safe): every call of the recorder is its own committed
transaction, so a run killed mid-cycle leaves the cycle row with ``finished_ms`` NULL and every turn
recorded so far. Readers show such a cycle with the status ``incomplete``. The file is in WAL mode
with a busy timeout, so ``rez traces`` reads while ``rez decide`` writes, and two runs on different
symbols share one journal. Two runs on the same market do not, however they spell it
(``btc/usdt``, ``BTC-USDT``): ``Journal.lock(symbol)`` holds an exclusive ``flock`` on
``<journal>.locks/<canonical symbol>.lock`` for the length of a run, and a second run fails at once
with ``LockHeld`` (exit 4), naming the pid that holds it. A journal that a newer Rez has migrated is
refused before anything is written to it.

Schema (the ordered migrations in ``journal.migrations`` create it; ``_migrations`` lists those applied)::

    runs        id, started_ms, command, argv (json), config_hash, profile_hash, versions (json), pid
    cycles      trace_id (pk), run_id -> runs, symbol, exchange, simulated, mode, model, profile (json),
                as_of_ms, candles (json), context (json), context_text, started_ms,
                finished_ms (NULL until finished), status (NULL | decided | held), action, error, source,
                confidence, decision (json), trace (json), signals (json), usage (json), cost_usd,
                llm_calls, tool_calls, turn_count, backtest_id (NULL outside a backtest)
    turns       (trace_id, idx) pk, content, tools_offered, prompt_tokens, completion_tokens, duration_ms
    tool_calls  (trace_id, turn_idx, seq) pk -> turns, call_id, name, arguments, ok, content,
                rows (json), duration_ms, cached
    verdicts    (trace_id, verdict_idx, seq) pk, rule, passed, detail: the policy's checks, one row each
    scores      trace_id (pk) -> cycles, scored_ms, horizon, outcome, r_multiple, exit_price, exit_ms,
                details (json): what ``rez score`` judged came of a live decision (``rez_cli.scoring.run``);
                ``recent()`` gives its ``details.summary`` to the model as the decision's ``outcome``

The journal never stores a credential: everything written goes through ``rez_cli.redact``, so each
value given to ``Journal.add_secret`` (8 characters or more: shorter ones are not secrets) and every
credential in a URL becomes ``***``. Only text changes: the stored JSON keeps its keys and shape.
Non-finite floats are stored as null. The file, its -wal and -shm files and the lock files are
created 0600, in a 0700 directory when Rez creates it.

This is the only module that imports sqlite3; its errors leave as ``ConfigError`` naming the file.
"""

from __future__ import annotations

import json
import math
import os
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel

from rez_cli.clock import now_ms
from rez_cli.config import paths
from rez_cli.decision.model import Decision
from rez_cli.errors import ConfigError, DataError, DataNotFound, LockHeld, UsageError
from rez_cli.journal.migrations import MIGRATIONS
from rez_cli.redact import Redactor
from rez_cli.symbols import normalize_symbol

__all__ = [
    "INCOMPLETE",
    "Journal",
    "JournalRecorder",
    "default_journal_path",
    "resolve_journal_path",
]

JOURNAL_FILENAME = "journal.sqlite"
BATCH_MAX_S = 0.25
BUSY_TIMEOUT_MS = 10_000
INCOMPLETE = "incomplete"
ACTIONS = ("buy", "sell", "hold")
# What each JSON column of ``cycles`` holds.
_JSON_COLUMNS: dict[str, type[dict[str, Any]] | type[list[Any]]] = {
    "profile": dict,
    "candles": dict,
    "context": dict,
    "decision": dict,
    "trace": dict,
    "signals": list,
    "usage": dict,
}
_UNSAFE_IN_FILENAME = re.compile(r"[^\w.-]+")
_SQLITE_INT_MAX = 2**63 - 1
_SQLITE_INT_MIN = -(2**63)


def default_journal_path() -> Path:
    """``<data dir>/journal.sqlite``; ``REZ_HOME`` moves it with the rest of Rez's state."""
    return paths.data_dir() / JOURNAL_FILENAME


def resolve_journal_path(explicit: Path | None, settings_path: Path | None) -> Path:
    """The journal to use: ``--journal PATH``, else ``[journal] path``, else the default.

    Args:
        explicit: the command line's ``--journal``, if given.
        settings_path: the config's ``[journal] path``, if set.
    """
    if explicit is not None:
        return paths.expand_user(explicit)
    if settings_path is not None:
        return paths.expand_user(settings_path)
    return default_journal_path()


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _int(value: Any) -> int | None:
    if not isinstance(value, int) or isinstance(value, bool):
        return None
    # SQLite integers are 64-bit: a larger one (an endpoint reporting 10**19 tokens) would fail the
    # insert and leave the cycle unfinished. Clamped, the row is written and the excess is obvious.
    return max(_SQLITE_INT_MIN, min(value, _SQLITE_INT_MAX))


def _plain(value: Any) -> Any:
    """``value`` as the JSON it will be stored as: non-finite floats null, keys text, the rest as str()."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    # Anything else would reach json.dumps as str() anyway.
    return str(value)


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
    ends = _int(parsed.get("window_end_ms"))
    if before_ms is not None and ends is not None and ends > before_ms:
        return None
    summary = parsed.get("summary")
    return summary if isinstance(summary, str) and summary else outcome


class _Connection(sqlite3.Connection):
    """A connection that stores text holding lone surrogates instead of failing the write.

    Those reach Rez from bytes that are not UTF-8 (a file name in argv) or from a model's JSON
    (``"\\ud800"``); SQLite stores UTF-8 only. They are written as ``\\udcff`` escapes, the rest as is.
    """

    def execute(self, sql: str, parameters: Any = (), /) -> sqlite3.Cursor:
        try:
            return super().execute(sql, parameters)
        except UnicodeEncodeError:
            # Raised while binding, before SQLite ran anything: running it again is safe.
            return super().execute(sql, _encodable(parameters))


def _encodable(parameters: Any) -> Any:
    def fix(value: Any) -> Any:
        if isinstance(value, str):
            return value.encode("utf-8", "backslashreplace").decode("utf-8")
        return value

    if isinstance(parameters, Mapping):
        return {key: fix(value) for key, value in parameters.items()}
    return tuple(fix(value) for value in parameters)


class Journal:
    """The SQLite journal of runs and cycles; also the ``MemoryAccessor`` of past decisions.

    Args:
        path: the journal file; its directory is created when missing.
        create: when false, a missing file is ``DataNotFound`` instead of a new empty journal
            (what readers want: a mistyped ``--journal`` should not create a file).
        clock: milliseconds since the epoch; tests pass a fixed one.

    Raises:
        ConfigError: the file cannot be created, opened or migrated (not a database, no permission).
        DataNotFound: ``create`` is false and there is no file at ``path``.
    """

    def __init__(self, path: Path, *, create: bool = True, clock: Callable[[], int] | None = None) -> None:
        self.path = paths.expand_user(path)
        self._clock = clock or now_ms
        self._redactor = Redactor()
        self._batch_size = 0
        self._batch_pending = 0
        self._batch_started = 0.0
        # The orchestrator may record from executor threads; one connection, one writer at a time.
        self._guard = threading.RLock()
        try:
            found = self.path.is_file()
        except OSError as error:  # a name too long for the file system
            raise ConfigError(f"journal {self.path}: cannot open: {error.strerror or error}") from None
        if not create and not found:
            raise DataNotFound(
                f"no journal at {self.path}",
                hint="rez decide writes one; --journal or [journal] path chooses another",
            )
        try:
            paths.private_dir(self.path.parent)
        except OSError as error:
            raise ConfigError(
                f"journal {self.path}: cannot create its directory: {error.strerror or error}"
            ) from None
        # SQLite would create the file with the umask's mode (often 0644) and gives its -wal and -shm
        # files the mode of the database: made 0600 first, all three stay private.
        paths.create_private(self.path)
        try:
            # isolation_level=None: no implicit transactions; every write below says where it begins.
            self._db = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, factory=_Connection
            )
        except sqlite3.Error as error:
            raise ConfigError(f"journal {self.path}: cannot open: {error}") from None
        try:
            self._db.row_factory = sqlite3.Row
            self._db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            self._refuse_newer()
            self._db.execute("PRAGMA journal_mode = WAL")
            # In WAL mode NORMAL still survives a killed process (every commit is in the WAL); only a
            # power cut may lose the last commits. FULL fsyncs each of a cycle's commits: a third of
            # a rules backtest's wall time.
            self._db.execute("PRAGMA synchronous = NORMAL")
            self._db.execute("PRAGMA foreign_keys = ON")
            self._migrate()
        except sqlite3.Error as error:
            self._db.close()
            raise ConfigError(f"journal {self.path}: cannot open: {error}") from None
        except ConfigError:
            self._db.close()
            raise

    # -- plumbing ---------------------------------------------------------------------------------

    def close(self) -> None:
        """Close the connection; the file stays consistent whether or not this is called."""
        with self._guard:
            self._db.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @contextmanager
    def _sql(self, doing: str) -> Iterator[sqlite3.Connection]:
        try:
            with self._guard:
                yield self._db
        except sqlite3.IntegrityError:
            raise  # a trace written twice, a turn without its cycle: a bug in the caller, not the user's
        except sqlite3.Error as error:
            raise ConfigError(f"journal {self.path}: cannot {doing}: {error}") from None

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        if self._batch_size:
            with self._sql("write") as db:
                yield from self._batched_write(db)
            return
        with self._sql("write") as db:
            # IMMEDIATE takes the write lock up front: a deferred transaction that upgrades later can
            # fail with "database is locked" without waiting for busy_timeout.
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def _batched_write(self, db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
        if not db.in_transaction:
            db.execute("BEGIN IMMEDIATE")
            self._batch_started = time.monotonic()
        # A savepoint keeps each write whole inside the shared transaction.
        db.execute("SAVEPOINT write")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK TO write")
            db.execute("RELEASE write")
            raise
        db.execute("RELEASE write")
        self._batch_pending += 1
        # The batch holds the write lock: never for long, so a live run on this journal barely waits.
        if self._batch_pending >= self._batch_size or time.monotonic() - self._batch_started > BATCH_MAX_S:
            db.execute("COMMIT")
            self._batch_pending = 0

    @contextmanager
    def batched(self, size: int = 200) -> Iterator[None]:
        """Commit every ``size`` writes instead of each one, and whatever is pending on the way out.

        For backtests, where thousands of cycles are written in a row: a commit per write is most
        of their journal time. Live runs keep write-as-you-go. Leaving the block, even by Ctrl-C or
        an error, commits every whole write made inside it.
        """
        self._batch_size, self._batch_pending = size, 0
        try:
            yield
        finally:
            self._batch_size = 0
            with self._sql("write") as db:
                if db.in_transaction:
                    db.execute("COMMIT")

    def _refuse_newer(self) -> None:
        """Raise ConfigError, before anything is written, when a newer Rez has migrated this journal.

        Its schema may have changed in ways this Rez cannot know: writing to it could corrupt what
        the newer one reads back.
        """
        has_table = self._db.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '_migrations'"
        ).fetchone()
        if not has_table:
            return
        known = {migration.name for migration in MIGRATIONS}
        applied = [str(row[0]) for row in self._db.execute("SELECT name FROM _migrations ORDER BY rowid")]
        unknown = [name for name in applied if name not in known]
        if unknown:
            shown = ", ".join(unknown[:3]) + (", ..." if len(unknown) > 3 else "")
            raise ConfigError(
                f"journal {self.path} was written by a newer Rez (it has migration {shown}, "
                "which this Rez does not know)",
                hint="upgrade Rez, or use another --journal",
            )

    def _migrate(self) -> None:
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_ms INTEGER NOT NULL)"
        )
        applied = {row[0] for row in self._db.execute("SELECT name FROM _migrations")}
        for migration in MIGRATIONS:
            if migration.name in applied:
                continue
            with self._write() as db:
                # Another process may have applied it while this one waited for the write lock.
                if db.execute("SELECT 1 FROM _migrations WHERE name = ?", (migration.name,)).fetchone():
                    continue
                for statement in migration.statements:
                    db.execute(statement)
                db.execute(
                    "INSERT INTO _migrations (name, applied_ms) VALUES (?, ?)",
                    (migration.name, self._clock()),
                )

    def migrations(self) -> list[str]:
        """The names of the migrations applied to this journal, in the order they were applied."""
        with self._sql("read") as db:
            return [row[0] for row in db.execute("SELECT name FROM _migrations ORDER BY rowid")]

    # -- secrets ----------------------------------------------------------------------------------

    def add_secret(self, value: str) -> None:
        """Never write ``value``: from now on it is replaced by ``***`` in everything stored.

        Args:
            value: an API key, exchange secret or password; values shorter than
                ``redact.MIN_SECRET_CHARS`` (8) are not secrets and are ignored, as are empty ones.
        """
        self._redactor.add(value)

    def _redact(self, text: str) -> str:
        return self._redactor.text(text)

    def _clean(self, value: Any) -> Any:
        return self._redactor.value(_plain(value))

    def _text(self, value: Any) -> str | None:
        if value is None:
            return None
        return self._redact(value if isinstance(value, str) else json.dumps(self._clean(value)))

    def _json(self, value: Any, *, text: str | None = None) -> str | None:
        """``value`` as stored JSON. ``text``: ``value`` already written as the journal writes it
        (compact, UTF-8, finite numbers only), so as not to write it twice."""
        if value is None:
            return None
        # Fast path: most values are plain finite JSON with no secret in them. Walking every value in
        # Python first cost more than the SQLite write; the walk now runs only when it is needed.
        if text is None:
            try:
                text = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
            except (ValueError, TypeError):
                text = None
        if text is not None and not self._redactor.touches(text):
            return text
        return json.dumps(self._clean(value), ensure_ascii=False, allow_nan=False, separators=(",", ":"))

    # -- writing ----------------------------------------------------------------------------------

    def start_run(
        self,
        command: str,
        argv: Sequence[str],
        *,
        config_hash: str,
        profile_hash: str,
        versions: Mapping[str, str],
    ) -> int:
        """Record the start of a command invocation and return its id for ``recorder``.

        Args:
            command: the command name, e.g. ``decide``.
            argv: the arguments as typed (secrets registered with ``add_secret`` are struck out).
            config_hash: a digest of the effective settings.
            profile_hash: a digest of the risk profile.
            versions: versions of Rez and the libraries that shape a decision.
        """
        with self._write() as db:
            cursor = db.execute(
                "INSERT INTO runs (started_ms, command, argv, config_hash, profile_hash, versions, pid)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    self._clock(),
                    self._text(command),
                    self._json(list(argv)),
                    config_hash,
                    profile_hash,
                    self._json(dict(versions)),
                    os.getpid(),
                ),
            )
        run_id = cursor.lastrowid
        assert run_id is not None  # an INSERT into a rowid table always sets it
        return run_id

    def recorder(self, run_id: int | None, *, backtest_id: str | None = None) -> JournalRecorder:
        """A ``CycleRecorder`` that writes the cycles of run ``run_id`` as they happen.

        Args:
            run_id: from ``start_run``; None for cycles outside any run.
            backtest_id: tags every cycle of a backtest, so live listings and memory can tell them apart.
        """
        return JournalRecorder(self, run_id, backtest_id=backtest_id)

    # -- locking ----------------------------------------------------------------------------------

    def lock_path(self, symbol: str) -> Path:
        """The lock file for a market: ``<journal>.locks/<canonical symbol, / and : as _>.lock``.

        One file per market, not per spelling: ``btc/usdt``, ``BTC-USDT`` and ``BTC/USDT`` share it.

        Raises:
            UsageError: ``symbol`` is not a market symbol.
        """
        safe = _UNSAFE_IN_FILENAME.sub("_", normalize_symbol(symbol)).strip("._") or "_"
        return self.path.with_name(self.path.name + ".locks") / f"{safe}.lock"

    @contextmanager
    def lock(self, symbol: str) -> Iterator[Path]:
        """Hold the run lock for ``symbol`` on this journal until the block ends (or the process does).

        An exclusive, non-blocking ``flock`` on a file next to the journal: the kernel releases it
        when the process exits, however it exits, so a killed run never leaves a stale lock. Symbols
        that map to the same file name (``BTC/USDT`` and ``BTC_USDT``) share a lock, which errs safe.

        Raises:
            LockHeld: another open lock on the same file, in this process or another (exit 4).
            ConfigError: the lock file cannot be created.
        """
        import fcntl  # POSIX only; imported here so that reading a journal does not need it

        path = self.lock_path(symbol)
        try:
            paths.private_dir(path.parent)
            fd = paths.open_private(path, os.O_RDWR)
        except OSError as error:
            raise ConfigError(f"cannot create the lock file {path}: {error.strerror or error}") from None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
                raise LockHeld(
                    f"another rez run is deciding {symbol} on {self.path} "
                    f"(pid {holder if holder.isdigit() else 'unknown'})",
                    hint=f"it ends with that run; the lock file is {path}",
                ) from None
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            try:
                yield path
            finally:
                # Cleared while still held: after close, the next holder may already have written its pid.
                os.ftruncate(fd, 0)
        finally:
            os.close(fd)

    # -- reading ----------------------------------------------------------------------------------

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
        with self._sql("read") as db:
            rows = db.execute(query, params).fetchall()
        return [dict(self._redactor.value(self._row(row))) for row in rows]

    def get_cycle(self, trace_id: str) -> dict[str, Any]:
        """Everything journaled about one cycle: run, inputs, turns and tool calls, decision, verdicts.

        Args:
            trace_id: the whole id or any prefix that matches exactly one cycle.

        Raises:
            DataNotFound: no cycle has that id.
            UsageError: the prefix is empty or matches several cycles.
        """
        full_id = self._resolve_id(trace_id)
        with self._sql("read") as db:
            cycle = db.execute("SELECT * FROM cycles WHERE trace_id = ?", (full_id,)).fetchone()
            run = db.execute("SELECT * FROM runs WHERE id = ?", (cycle["run_id"],)).fetchone()
            turns = db.execute("SELECT * FROM turns WHERE trace_id = ? ORDER BY idx", (full_id,)).fetchall()
            calls = db.execute(
                "SELECT * FROM tool_calls WHERE trace_id = ? ORDER BY turn_idx, seq", (full_id,)
            ).fetchall()
            verdicts = db.execute(
                "SELECT verdict_idx, rule, passed, detail FROM verdicts WHERE trace_id = ?"
                " ORDER BY verdict_idx, seq",
                (full_id,),
            ).fetchall()
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
        record["verdicts"] = [
            {
                "verdict_idx": row["verdict_idx"],
                "rule": row["rule"],
                "passed": bool(row["passed"]),
                "detail": row["detail"],
            }
            for row in verdicts
        ]
        # A journal written before a secret was registered (or by an older Rez) is shown without it.
        return dict(self._redactor.value(record))

    def stats(self, since_ms: int | None = None) -> dict[str, Any]:
        """Rates over finished cycles (unfinished ones are only counted).

        Returns:
            ``cycles``, ``finished``, ``incomplete``; ``hold_rate`` and ``failure_rate`` (a failure is a
            decision with an error code); ``failures`` per code ``{count, rate}``;
            ``repair_rate_by_model`` per model ``{cycles, repaired, rate}`` (source ``repaired``);
            ``avg_cost_usd``, ``avg_turns``; ``by_mode`` (all cycles) and ``by_action`` counts.
            A rate over no cycle is None.
        """
        where, params = self._filters(since_ms=since_ms)
        finished = f"{where} {'AND' if where else 'WHERE'} finished_ms IS NOT NULL"
        with self._sql("read") as db:
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
            "since_ms": since_ms,
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
        with self._sql("read") as db:
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
        with self._sql("read") as db:
            rows = db.execute(
                "SELECT as_of_ms, context FROM cycles WHERE backtest_id = ? AND context IS NOT NULL"
                " AND as_of_ms IS NOT NULL ORDER BY as_of_ms, rowid",
                (backtest_id,),
            ).fetchall()
        prices: list[tuple[int, float]] = []
        for row in rows:
            price = _finite(self._stored(row["context"], "a context", dict).get("last_price"))
            if price is not None:
                prices.append((int(row["as_of_ms"]), price))
        return prices

    # -- scores -----------------------------------------------------------------------------------

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
        with self._sql("read") as db:
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
            profile = self._stored(row["profile"], "a profile", dict)
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
                    "decision": self._stored(row["decision"], "a decision", dict),
                    "context": self._stored(row["context"], "a context", dict),
                    "score": None
                    if row["outcome"] is None
                    else {
                        "scored_ms": row["scored_ms"],
                        "horizon": row["horizon"],
                        "outcome": row["outcome"],
                        "r_multiple": row["r_multiple"],
                        "exit_price": row["exit_price"],
                        "exit_ms": row["exit_ms"],
                        "details": self._stored(row["details"], "a score's details", dict),
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
                ``neither`` (see ``rez_cli.scoring.run``).
            r_multiple: the result in R after fees (for a hold, the better naive trade's).
            exit_price: where the judged trade ended.
            exit_ms: when (the close time of the candle it ended in).
            details: the rest of the judgement; ``summary`` is what the memory shows the model.
        """
        with self._write() as db:
            db.execute(
                "INSERT OR REPLACE INTO scores (trace_id, scored_ms, horizon, outcome, r_multiple,"
                " exit_price, exit_ms, details) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    trace_id,
                    self._clock(),
                    horizon,
                    self._text(outcome),
                    _finite(r_multiple),
                    _finite(exit_price),
                    _int(exit_ms),
                    self._json(details),
                ),
            )

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

    def _row(self, row: sqlite3.Row) -> dict[str, Any]:
        record: dict[str, Any] = dict(row)
        if record.get("simulated") is not None:
            record["simulated"] = bool(record["simulated"])
        for column in _JSON_COLUMNS:
            if column in record and record[column] is not None:
                record[column] = self._stored(record[column], f"a cycle's {column}", _JSON_COLUMNS[column])
        return record

    def _stored(self, text: Any, what: str, kind: type[dict[str, Any]] | type[list[Any]]) -> Any:
        """A JSON column as written by ``_json``: a ``kind`` (empty when NULL), or one line saying so.

        Rez writes these columns itself; anything else in them (an edit by hand, a disk error) is a
        damaged journal, reported as such instead of failing deep inside a view.

        Raises:
            DataError: the text is not JSON, or not a ``kind``.
        """
        if text is None or text == "":
            return kind()
        try:
            value = json.loads(text)
        except (ValueError, TypeError, RecursionError):  # not JSON, or bytes that are not UTF-8
            value = None
        if not isinstance(value, kind):
            shape = "object" if kind is dict else "array"
            raise DataError(
                f"journal {self.path} is damaged: {what} is not a JSON {shape}",
                hint="restore it from a backup, or use another --journal",
            )
        return value

    def _resolve_id(self, trace_id: str) -> str:
        prefix = trace_id.strip()
        if not prefix:
            raise UsageError("a trace id is required", hint="rez traces list shows them")
        with self._sql("read") as db:
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

    def __init__(self, journal: Journal, run_id: int | None, *, backtest_id: str | None = None) -> None:
        self.journal = journal
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
        j = self.journal
        with j._write() as db:
            db.execute(
                "INSERT INTO cycles (trace_id, run_id, symbol, exchange, simulated, mode, model, profile,"
                " as_of_ms, candles, context, context_text, started_ms, backtest_id)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    trace_id,
                    self.run_id,
                    j._text(symbol),
                    j._text(exchange),
                    int(simulated),
                    j._text(mode),
                    j._text(model),
                    j._json(_record_json(profile)),
                    _int(as_of_ms),
                    j._json(candles),
                    j._json(_record_json(context)),
                    j._text(context_text),
                    j._clock(),
                    self.backtest_id,
                ),
            )

    def turn_recorded(self, trace_id: str, turn: JsonRecord | Mapping[str, Any]) -> None:
        """Insert one model turn and its tool calls."""
        with self.journal._write() as db:
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
        j = self.journal
        stored: Mapping[str, Any] = _record_json(decision)
        trace_json = _record_json(trace)
        # The cycle's Trace has its JSON written already (the cycle's own secret check read it).
        json_text = getattr(trace, "json_text", None)
        trace_text = json_text() if callable(json_text) else None
        raw_usage = stored.get("usage")
        usage: Mapping[str, Any] = raw_usage if isinstance(raw_usage, Mapping) else {}
        now = j._clock()
        with j._write() as db:
            if not db.execute("SELECT 1 FROM cycles WHERE trace_id = ?", (trace_id,)).fetchone():
                db.execute(
                    "INSERT INTO cycles (trace_id, run_id, symbol, mode, as_of_ms, started_ms, backtest_id)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        trace_id,
                        self.run_id,
                        j._text(str(stored.get("symbol", ""))),
                        j._text(stored.get("mode")),
                        _int(stored.get("timestamp")),
                        now,
                        self.backtest_id,
                    ),
                )
            recorded = {row[0] for row in db.execute("SELECT idx FROM turns WHERE trace_id = ?", (trace_id,))}
            for turn in trace_json.get("turns") or []:
                if isinstance(turn, Mapping) and _int(turn.get("index")) not in recorded | {None}:
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
                    j._text(status),
                    j._text(stored.get("action")),
                    j._text(stored.get("error")),
                    j._text(stored.get("source")),
                    _finite(stored.get("confidence")),
                    j._json(stored),
                    j._json(trace_json, text=trace_text),
                    j._json([_record_json(signal) for signal in signals]),
                    j._json(usage),
                    _finite(usage.get("cost_usd")),
                    _int(usage.get("llm_calls")),
                    _int(usage.get("tool_calls")),
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
                            j._text(str(check.get("rule", ""))),
                            int(bool(check.get("passed"))),
                            j._text(check.get("detail")),
                        ),
                    )

    def _insert_turn(self, db: sqlite3.Connection, trace_id: str, turn: Mapping[str, Any]) -> None:
        j = self.journal
        idx = _int(turn.get("index"))
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
                j._text(turn.get("content")),
                j._text(turn.get("reasoning")),
                None if tools_offered is None else int(bool(tools_offered)),
                _int(turn.get("prompt_tokens")),
                _int(turn.get("completion_tokens")),
                _finite(turn.get("duration_ms")),
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
                    j._text(call.get("id")),
                    j._text(str(call.get("name", ""))),
                    j._text(call.get("arguments")),
                    int(bool(call.get("ok"))),
                    j._text(call.get("content")),
                    j._json(call.get("rows") or []),
                    _finite(call.get("duration_ms")),
                    int(bool(call.get("cached"))),
                ),
            )
