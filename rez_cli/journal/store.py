"""The journal: every decision cycle, in one SQLite file, written as it happens.

``Journal`` is the one object the rest of Rez opens; its parts live beside it in this package:

- ``db``: the file (private, WAL, busy timeout), transactions and batches, the schema's migrations
  and the backup made before them; the only module of Rez that imports sqlite3, whose errors leave
  as ``ConfigError`` naming the file;
- ``encoding``: what is written is redacted and finite; what is read back is checked;
- ``recorder``: runs and cycles written as they happen (``JournalRecorder``);
- ``blobs``: a backtest cycle's payload, stored once by content and deflated;
- ``reads``: cycles listed, shown, summed up, and the memory of past decisions;
- ``backtests``: each backtest's request and report, and its audit;
- ``scores``: the live decisions ``rez score`` judges, and its verdicts;
- ``maintenance``: ``rez journal prune`` and ``vacuum``;
- ``lock``: one run per market and journal.

Schema (the ordered migrations in ``journal.migrations`` create it; ``_migrations`` lists those applied)::

    runs        id, started_ms, command, argv (json), config_hash, profile_hash, versions (json), pid
    cycles      trace_id (pk), run_id -> runs, symbol, exchange, simulated, mode, model, profile (json),
                as_of_ms, candles (json), context (json), context_text, started_ms,
                finished_ms (NULL until finished), status (NULL | decided | held), action, error, source,
                confidence, decision (json), trace (json), signals (json), usage (json), cost_usd,
                llm_calls, tool_calls, turn_count, backtest_id (NULL outside a backtest),
                profile_blob, inputs_blob, record_blob -> blobs: a backtest cycle's payload, whose
                columns above (profile .. context_text, decision .. usage) it leaves NULL
    turns       (trace_id, idx) pk, content, tools_offered, prompt_tokens, completion_tokens, duration_ms
    tool_calls  (trace_id, turn_idx, seq) pk -> turns, call_id, name, arguments, ok, content,
                rows (json), duration_ms, cached
    verdicts    (trace_id, verdict_idx, seq) pk, rule, passed, detail: the policy's checks, one row each
                (a live cycle's; a backtest cycle keeps them in its trace)
    scores      trace_id (pk) -> cycles, scored_ms, horizon, outcome, r_multiple, exit_price, exit_ms,
                details (json): what ``rez score`` judged came of a live decision (``rez_cli.scoring.run``);
                ``recent()`` gives its ``details.summary`` to the model as the decision's ``outcome``
    blobs       id (pk), hash (unique), body (text, or zlib with a preset dictionary), dictionary -> blobs
    backtests   id (pk), run_id -> runs, created_ms, symbol, request (json), report (json, curves included),
                tape_hash, grade, grade_reasons (json), audit (json), audited_ms: one ``rez backtest`` each,
                and its audit (``rez audit``)

The file, its -wal and -shm files and the lock files are created 0600, in a 0700 directory when Rez
creates it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from rez_cli.clock import now_ms
from rez_cli.config import paths
from rez_cli.journal import lock as market_lock
from rez_cli.journal.backtests import BacktestLedger
from rez_cli.journal.blobs import Blobs
from rez_cli.journal.db import Database
from rez_cli.journal.encoding import Codec
from rez_cli.journal.maintenance import Maintenance
from rez_cli.journal.paper import PaperLedger
from rez_cli.journal.reads import INCOMPLETE, CycleReads
from rez_cli.journal.recorder import JournalRecorder, insert_run
from rez_cli.journal.scores import ScoreQueries

__all__ = [
    "INCOMPLETE",
    "Journal",
    "JournalRecorder",
    "default_journal_path",
    "resolve_journal_path",
]

JOURNAL_FILENAME = "journal.sqlite"


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


class Journal(CycleReads, ScoreQueries, Maintenance):
    """The SQLite journal of runs and cycles; also the ``MemoryAccessor`` of past decisions.

    Args:
        path: the journal file; its directory is created when missing.
        create: when false, a missing file is ``DataNotFound`` instead of a new empty journal
            (what readers want: a mistyped ``--journal`` should not create a file), and a journal an
            older Rez wrote is read as it is until the first write (see ``db.Database``).
        clock: milliseconds since the epoch; tests pass a fixed one.

    Raises:
        ConfigError: the file cannot be created, opened or migrated (not a database, no permission).
        DataNotFound: ``create`` is false and there is no file at ``path``.
    """

    def __init__(self, path: Path, *, create: bool = True, clock: Callable[[], int] | None = None) -> None:
        self.path = paths.expand_user(path)
        self._codec = Codec()
        self._db = Database(self.path, create=create, clock=clock or now_ms)
        self._blobs = Blobs(self.path)

    def close(self) -> None:
        """Close the connection; the file stays consistent whether or not this is called."""
        self._db.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @contextmanager
    def batched(self, size: int = 200) -> Iterator[None]:
        """Commit every ``size`` writes instead of each one, and whatever is pending on the way out.

        For backtests, where thousands of cycles are written in a row: a commit per write is most
        of their journal time. Live runs keep write-as-you-go. Leaving the block, even by Ctrl-C or
        an error, commits every whole write made inside it, and the inputs of a backtest cycle that
        started in it and never finished (a recorder holds them back to write them at a cycle's end).
        """
        with self._db.batched(size):
            yield

    def migrations(self) -> list[str]:
        """The names of the migrations applied to this journal, in the order they were applied."""
        return self._db.migrations()

    def add_secret(self, value: str) -> None:
        """Never write ``value``: from now on it is replaced by ``***`` in everything stored.

        Args:
            value: an API key, exchange secret or password; values shorter than
                ``redact.MIN_SECRET_CHARS`` (8) are not secrets and are ignored, as are empty ones.
        """
        self._codec.add_secret(value)

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
        return insert_run(
            self._db,
            self._codec,
            command,
            argv,
            config_hash=config_hash,
            profile_hash=profile_hash,
            versions=versions,
        )

    def recorder(self, run_id: int | None, *, backtest_id: str | None = None) -> JournalRecorder:
        """A ``CycleRecorder`` that writes the cycles of run ``run_id`` as they happen.

        Args:
            run_id: from ``start_run``; None for cycles outside any run.
            backtest_id: tags every cycle of a backtest, so live listings and memory can tell them apart.
        """
        return JournalRecorder(self._db, self._codec, self._blobs, run_id, backtest_id=backtest_id)

    def paper(self) -> PaperLedger:
        """The paper account's rows (``rez_cli.journal.paper``)."""
        return PaperLedger(self._db, self._codec)

    def backtests(self) -> BacktestLedger:
        """The stored backtests and their audits (``rez_cli.journal.backtests``)."""
        return BacktestLedger(self._db, self._codec)

    def lock_path(self, symbol: str) -> Path:
        """The lock file for a market on this journal (see ``rez_cli.journal.lock.lock_path``).

        Raises:
            UsageError: ``symbol`` is not a market symbol.
        """
        return market_lock.lock_path(self.path, symbol)

    @contextmanager
    def lock(self, symbol: str) -> Iterator[Path]:
        """Hold the run lock for ``symbol`` on this journal until the block ends (or the process does).

        Raises:
            LockHeld: another open lock on the same file, in this process or another (exit 4).
            ConfigError: the lock file cannot be created.
        """
        with market_lock.hold(self.path, symbol) as path:
            yield path
