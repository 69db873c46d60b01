"""The stored backtests: one row per ``rez backtest``, so that ``rez audit BACKTEST_ID`` can reload it.

A row holds what was asked (the request), what was found (the report with its equity curves), the
hash of the tape it read if any, and, once audited, the grade, its reasons and the whole audit. The
audit is written over the row: auditing again replaces it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rez_cli.errors import DataNotFound
from rez_cli.journal.db import Connection, Database
from rez_cli.journal.encoding import Codec, parse_stored

__all__ = ["BacktestLedger", "StoredBacktest"]


@dataclass(frozen=True)
class StoredBacktest:
    """One stored backtest, its JSON columns parsed."""

    id: str
    run_id: int | None
    created_ms: int
    symbol: str
    request: dict[str, Any]
    report: dict[str, Any]
    tape_hash: str | None
    grade: str | None
    grade_reasons: list[str]
    audit: dict[str, Any] | None
    audited_ms: int | None


_COLUMNS = (
    "id, run_id, created_ms, symbol, request, report, tape_hash, grade, grade_reasons, audit, audited_ms"
)


class BacktestLedger:
    """The ``backtests`` rows of one journal."""

    def __init__(self, db: Database, codec: Codec) -> None:
        self._db = db
        self._codec = codec

    def _ready(self, db: Connection) -> bool:
        # A journal opened only to be read may not have the table yet (m006 waits for a write).
        found = db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'backtests'")
        return found.fetchone() is not None

    def save(
        self,
        backtest_id: str,
        *,
        run_id: int | None,
        symbol: str,
        request: Mapping[str, Any],
        report: Mapping[str, Any],
        tape_hash: str | None = None,
    ) -> None:
        """Store a backtest (its secrets struck out, like every other row)."""
        with self._db.write() as db:
            db.execute(
                f"INSERT INTO backtests ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, NULL, NULL, NULL, NULL)",
                (
                    backtest_id,
                    run_id,
                    self._db.clock(),
                    symbol,
                    self._codec.json(dict(request)),
                    self._codec.json(dict(report)),
                    tape_hash,
                ),
            )

    def save_audit(
        self, backtest_id: str, grade: str, reasons: Sequence[str], audit: Mapping[str, Any]
    ) -> None:
        """Store the audit of a stored backtest, replacing an earlier one."""
        with self._db.write() as db:
            db.execute(
                "UPDATE backtests SET grade = ?, grade_reasons = ?, audit = ?, audited_ms = ? WHERE id = ?",
                (
                    grade,
                    self._codec.json(list(reasons)),
                    self._codec.json(dict(audit)),
                    self._db.clock(),
                    backtest_id,
                ),
            )

    def load(self, backtest_id: str) -> StoredBacktest:
        """The backtest ``backtest_id``.

        Raises:
            DataNotFound: the journal has no such backtest.
            DataError: the row is damaged.
        """
        with self._db.read("read the backtests") as db:
            row = (
                db.execute(f"SELECT {_COLUMNS} FROM backtests WHERE id = ?", (backtest_id,)).fetchone()
                if self._ready(db)
                else None
            )
        if row is None:
            raise DataNotFound(
                f"no backtest {backtest_id!r} in journal {self._db.path}",
                hint="rez backtest prints its id (backtest_id in --json); pass the same --journal",
            )
        path = self._db.path
        audit = parse_stored(row[9], f"the audit of {row[0]}", dict, path) if row[9] else None
        return StoredBacktest(
            id=row[0],
            run_id=int(row[1]) if row[1] is not None else None,
            created_ms=int(row[2]),
            symbol=row[3],
            request=parse_stored(row[4], f"the request of backtest {row[0]}", dict, path),
            report=parse_stored(row[5], f"the report of backtest {row[0]}", dict, path),
            tape_hash=row[6],
            grade=row[7],
            grade_reasons=[str(reason) for reason in parse_stored(row[8], "grade reasons", list, path)],
            audit=audit,
            audited_ms=int(row[10]) if row[10] is not None else None,
        )

    def ids(self) -> list[str]:
        """Every stored backtest's id, newest first."""
        with self._db.read("read the backtests") as db:
            if not self._ready(db):
                return []
            return [row[0] for row in db.execute("SELECT id FROM backtests ORDER BY created_ms DESC, id")]
