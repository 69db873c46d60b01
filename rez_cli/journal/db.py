"""The journal's SQLite file: opened privately, its transactions, and its schema brought up to date.

The only module of Rez that imports sqlite3: the rest of the journal package speaks to the file
through ``Database`` and the names below, and every sqlite3 error leaves as ``ConfigError`` naming
the file (an ``IntegrityError`` aside: a trace written twice is a bug in the caller, not the user's).

Write-as-you-go: ``write()`` is one committed transaction, so a run killed mid-cycle keeps every
write made before the kill. ``batched()`` lets a backtest commit many writes at once. The file is in
WAL mode with a busy timeout, so readers read while a writer writes. A journal that a newer Rez has
migrated is refused before anything is written to it; the migrations this Rez knows and the journal
lacks are applied in order (``rez_cli.journal.migrations``), each in one transaction.

Before the first migration is applied to a journal that holds data, the journal is copied, as it is,
to ``<journal>.bak-v<the number of migrations it had>`` beside it (0600), and a note saying so is
logged once (logger ``rez_cli.journal``, WARNING: on stderr when nothing else takes it). A journal
opened only to be read (``create=False``) is left as it is when readers can do without what it
lacks (``Migration.readers_need``): reading never changes the file, and its first write migrates it.
"""

from __future__ import annotations

import itertools
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rez_cli.config import paths
from rez_cli.errors import ConfigError, DataNotFound
from rez_cli.journal.migrations import MIGRATIONS, Migration

__all__ = ["BATCH_MAX_S", "BUSY_TIMEOUT_MS", "Connection", "Database", "IntegrityError", "Row"]

BATCH_MAX_S = 0.25
BUSY_TIMEOUT_MS = 10_000

Connection = sqlite3.Connection
Row = sqlite3.Row
IntegrityError = sqlite3.IntegrityError

logger = logging.getLogger("rez_cli.journal")


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


class Database:
    """One connection to a journal file, shared by the threads of one process.

    Args:
        path: the journal file (already expanded); its directory is created when missing.
        create: when false, a missing file is ``DataNotFound`` instead of a new empty journal, and the
            migrations readers can do without wait for the first write.
        clock: milliseconds since the epoch: when a run, a cycle or a migration was written.

    Raises:
        ConfigError: the file cannot be created, opened or migrated (not a database, no permission).
        DataNotFound: ``create`` is false and there is no file at ``path``.
    """

    def __init__(self, path: Path, *, create: bool, clock: Callable[[], int]) -> None:
        self.path = path
        self.clock = clock
        self._batch_size = 0
        self._batch_pending = 0
        self._batch_started = 0.0
        self._batch_end: list[Callable[[], None]] = []
        self._deferred: Sequence[Migration] = ()
        self.backup: Path | None = None
        self.has_blobs = False
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
            self._migrate(create=create)
        except sqlite3.Error as error:
            self._db.close()
            raise ConfigError(f"journal {self.path}: cannot open: {error}") from None
        except ConfigError:
            self._db.close()
            raise

    def close(self) -> None:
        """Close the connection; the file stays consistent whether or not this is called."""
        with self._guard:
            self._db.close()

    @contextmanager
    def read(self, doing: str = "read") -> Iterator[Connection]:
        """The connection, for statements that need no transaction of their own (``doing`` names
        them in the error message)."""
        try:
            with self._guard:
                yield self._db
        except sqlite3.IntegrityError:
            raise  # a trace written twice, a turn without its cycle: a bug in the caller, not the user's
        except sqlite3.Error as error:
            raise ConfigError(f"journal {self.path}: cannot {doing}: {error}") from None

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """One write, whole or not at all: its own committed transaction, or a savepoint in a batch.

        The first write to a journal opened to be read applies the migrations its opening left for it.
        """
        if self._deferred:
            deferred, self._deferred = self._deferred, ()
            with self.read("migrate"):
                self._apply(deferred)
        if self._batch_size:
            with self.read("write") as db:
                yield from self._batched_write(db)
            return
        with self._transaction() as db:
            yield db

    @contextmanager
    def _transaction(self) -> Iterator[Connection]:
        with self.read("write") as db:
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

    def _batched_write(self, db: Connection) -> Iterator[Connection]:
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
        """Commit every ``size`` writes instead of each one, and whatever is pending on the way out
        (see ``Journal.batched``)."""
        self._batch_size, self._batch_pending = size, 0
        try:
            yield
        finally:
            try:
                while self._batch_end:
                    self._batch_end.pop(0)()
            finally:
                self._batch_size = 0
                with self.read("write") as db:
                    if db.in_transaction:
                        db.execute("COMMIT")

    @property
    def batching(self) -> bool:
        """Whether writes are being batched (inside ``batched()``)."""
        return self._batch_size > 0

    def at_batch_end(self, write: Callable[[], None]) -> None:
        """Call ``write`` once as the current batch ends (Ctrl-C and errors included), before its last
        commit: for a write a caller holds back while the batch lasts, to make it with a later one."""
        if write not in self._batch_end:
            self._batch_end.append(write)

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

    def _migrate(self, *, create: bool) -> None:
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_ms INTEGER NOT NULL)"
        )
        applied = self._applied()
        pending = [migration for migration in MIGRATIONS if migration.name not in applied]
        now = pending
        if pending and not create and self._has_data(applied):
            # Opened to be read: what the readers can do without waits for the first write, so that
            # reading never changes the file (nor needs a backup of it).
            needed = [index for index, migration in enumerate(pending) if migration.readers_need]
            now = pending[: needed[-1] + 1] if needed else []
        self._deferred = pending[len(now) :]
        self._apply(now)

    def _apply(self, migrations: Sequence[Migration]) -> None:
        """Apply ``migrations`` in order, each in its own transaction, after copying a journal that
        holds data to a backup beside it (once per opening)."""
        applied = self._applied()
        todo = [migration for migration in migrations if migration.name not in applied]
        if todo and self.backup is None and self._has_data(applied):
            self.backup = self._back_up(version=len(applied))
        for migration in todo:
            with self._transaction() as db:
                # Another process may have applied it while this one waited for the write lock.
                if db.execute("SELECT 1 FROM _migrations WHERE name = ?", (migration.name,)).fetchone():
                    continue
                for statement in migration.statements:
                    db.execute(statement)
                db.execute(
                    "INSERT INTO _migrations (name, applied_ms) VALUES (?, ?)",
                    (migration.name, self.clock()),
                )
        self.has_blobs = bool(
            self._db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'blobs'").fetchone()
        )

    def _applied(self) -> set[str]:
        return {str(row[0]) for row in self._db.execute("SELECT name FROM _migrations")}

    def _has_data(self, applied: set[str]) -> bool:
        if not applied:
            return False  # no table yet: a journal this Rez is creating
        row = self._db.execute(
            "SELECT EXISTS (SELECT 1 FROM runs) OR EXISTS (SELECT 1 FROM cycles)"
        ).fetchone()
        return bool(row[0])

    def _back_up(self, *, version: int) -> Path:
        """Copy the journal, as it is now, to ``<journal>.bak-v<version>`` (or a name not yet taken).

        SQLite's backup copies what the WAL holds as well as the file; the copy is a journal of its
        own that this Rez (or the older one) opens as it is.

        Raises:
            ConfigError: the copy cannot be made; the journal is left as it was.
        """
        stem = f"{self.path.name}.bak-v{version}"
        target = self.path.with_name(stem)
        for attempt in itertools.count(2):
            try:
                os.close(paths.open_private(target, os.O_WRONLY | os.O_EXCL))
                break
            except FileExistsError:
                target = self.path.with_name(f"{stem}-{attempt}")
            except OSError as error:
                raise ConfigError(
                    f"journal {self.path}: cannot make a backup before migrating it: "
                    f"{target}: {error.strerror or error}",
                    hint="make room or give write access to its directory, or use another --journal",
                ) from None
        copy = sqlite3.connect(target)
        try:
            self._db.backup(copy)
            # One file, whole in itself: no write-ahead log beside it for whoever opens it next.
            copy.execute("PRAGMA journal_mode = DELETE")
        finally:
            copy.close()
        logger.warning(
            "note: journal %s was written by an older Rez; it is kept as it was in %s before this Rez "
            "brings it up to date",
            self.path,
            target,
        )
        return target

    def migrations(self) -> list[str]:
        """The names of the migrations applied to this journal, in the order they were applied."""
        with self.read() as db:
            return [row[0] for row in db.execute("SELECT name FROM _migrations ORDER BY rowid")]
