"""The paper account's rows: its equity, one book per symbol, and the events of its history.

A cycle reads and writes them inside one ``BEGIN IMMEDIATE`` transaction (``PaperLedger.transaction``):
the replay of the candles since the last cycle, and later the check of the account's limits with
the order it admits. Two runs on different symbols at once take turns at the file's write lock, so
neither can act on limits the other is about to change; a run killed mid-update leaves the account
as it was before the transaction.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rez_cli.journal.db import Connection, Database
from rez_cli.journal.encoding import Codec, parse_stored

__all__ = ["AccountRow", "BookRow", "EventRow", "PaperLedger", "PaperTx"]


@dataclass(frozen=True)
class AccountRow:
    name: str
    initial_equity: float
    equity: float
    created_ms: int
    updated_ms: int


@dataclass(frozen=True)
class BookRow:
    account: str
    symbol: str
    timeframe: str
    walked_ms: int
    state: dict[str, Any]
    updated_ms: int


@dataclass(frozen=True)
class EventRow:
    id: int
    account: str
    symbol: str
    ts_ms: int
    kind: str
    trace_id: str | None
    detail: dict[str, Any]


def _book(row: Any, journal: Path) -> BookRow:
    return BookRow(
        row[0],
        row[1],
        row[2],
        int(row[3]),
        parse_stored(row[4], f"the paper book of {row[1]}", dict, journal),
        int(row[5]),
    )


class PaperTx:
    """The paper rows inside one write transaction."""

    def __init__(self, db: Connection, codec: Codec, clock_ms: int, journal: Path) -> None:
        self._db = db
        self._codec = codec
        self._now = clock_ms
        self._journal = journal

    def account(self, name: str, *, initial_equity: float) -> AccountRow:
        """The account ``name``, opened with ``initial_equity`` if it does not exist yet."""
        self._db.execute(
            "INSERT OR IGNORE INTO paper_accounts VALUES (?, ?, ?, ?, ?)",
            (name, initial_equity, initial_equity, self._now, self._now),
        )
        found = read_account(self._db, name)
        assert found is not None
        return found

    def book(self, account: str, symbol: str) -> BookRow | None:
        row = self._db.execute(
            "SELECT account, symbol, timeframe, walked_ms, state, updated_ms FROM paper_books "
            "WHERE account = ? AND symbol = ?",
            (account, symbol),
        ).fetchone()
        return _book(row, self._journal) if row is not None else None

    def books(self, account: str) -> list[BookRow]:
        return read_books(self._db, account, self._journal)

    def save_book(
        self, account: str, symbol: str, timeframe: str, walked_ms: int, state: dict[str, Any]
    ) -> None:
        self._db.execute(
            "INSERT INTO paper_books VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (account, symbol) DO UPDATE SET "
            "timeframe = excluded.timeframe, walked_ms = excluded.walked_ms, state = excluded.state, "
            "updated_ms = excluded.updated_ms",
            (account, symbol, timeframe, walked_ms, json.dumps(state, allow_nan=False), self._now),
        )

    def add_equity(self, account: str, delta: float) -> None:
        # An increment, not a value read earlier: other symbols' runs change the same equity.
        self._db.execute(
            "UPDATE paper_accounts SET equity = equity + ?, updated_ms = ? WHERE name = ?",
            (delta, self._now, account),
        )

    def event(
        self,
        account: str,
        symbol: str,
        ts_ms: int,
        kind: str,
        detail: dict[str, Any],
        trace_id: str | None = None,
    ) -> None:
        self._db.execute(
            "INSERT INTO paper_events (account, symbol, ts_ms, kind, trace_id, detail, written_ms) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (account, symbol, ts_ms, kind, trace_id, self._codec.json(detail) or "{}", self._now),
        )


def read_account(db: Connection, name: str) -> AccountRow | None:
    row = db.execute(
        "SELECT name, initial_equity, equity, created_ms, updated_ms FROM paper_accounts WHERE name = ?",
        (name,),
    ).fetchone()
    return AccountRow(row[0], float(row[1]), float(row[2]), int(row[3]), int(row[4])) if row else None


def read_books(db: Connection, account: str, journal: Path) -> list[BookRow]:
    rows = db.execute(
        "SELECT account, symbol, timeframe, walked_ms, state, updated_ms FROM paper_books "
        "WHERE account = ? ORDER BY symbol",
        (account,),
    ).fetchall()
    return [_book(row, journal) for row in rows]


class PaperLedger:
    """The paper account's rows of one journal."""

    def __init__(self, db: Database, codec: Codec) -> None:
        self._db = db
        self._codec = codec

    def _ready(self, db: Connection) -> bool:
        # A journal opened only to be read may not have the paper tables yet (m005 waits for a write).
        found = db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'paper_accounts'")
        return found.fetchone() is not None

    @contextmanager
    def transaction(self) -> Iterator[PaperTx]:
        """One write transaction over the paper rows: all of it is kept, or none."""
        with self._db.write() as db:
            yield PaperTx(db, self._codec, self._db.clock(), self._db.path)

    def accounts(self) -> list[AccountRow]:
        """Every paper account of the journal, by name."""
        with self._db.read("read the paper accounts") as db:
            if not self._ready(db):
                return []
            names = [row[0] for row in db.execute("SELECT name FROM paper_accounts ORDER BY name")]
            return [found for name in names if (found := read_account(db, name)) is not None]

    def account(self, name: str) -> AccountRow | None:
        with self._db.read("read the paper account") as db:
            return read_account(db, name) if self._ready(db) else None

    def books(self, name: str) -> list[BookRow]:
        with self._db.read("read the paper account") as db:
            return read_books(db, name, self._db.path) if self._ready(db) else []

    def events(self, name: str, *, symbol: str | None = None, limit: int = 50) -> list[EventRow]:
        """The account's latest events, oldest first."""
        with self._db.read("read the paper history") as db:
            if not self._ready(db):
                return []
            where, params = "account = ?", [name]
            if symbol is not None:
                where, params = where + " AND symbol = ?", [*params, symbol]
            rows = db.execute(
                f"SELECT id, account, symbol, ts_ms, kind, trace_id, detail FROM paper_events WHERE {where} "
                "ORDER BY id DESC LIMIT ?",
                (*params, limit),
            ).fetchall()
        return [
            EventRow(
                int(row[0]),
                row[1],
                row[2],
                int(row[3]),
                row[4],
                row[5],
                parse_stored(row[6], "a paper event", dict, self._db.path),
            )
            for row in reversed(rows)
        ]

    def realised_pnl(self, name: str) -> float:
        """The sum of the closed trades' P&L, fees included."""
        return sum(
            float(event.detail.get("pnl") or 0.0)
            for event in self.events(name, limit=1_000_000)
            if event.kind == "close"
        )

    def reset(self, name: str) -> tuple[int, int]:
        """Delete the account, its books and its history; returns (books, events) deleted."""
        with self._db.write() as db:
            if not self._ready(db):
                return 0, 0
            books = db.execute("DELETE FROM paper_books WHERE account = ?", (name,)).rowcount
            events = db.execute("DELETE FROM paper_events WHERE account = ?", (name,)).rowcount
            db.execute("DELETE FROM paper_accounts WHERE name = ?", (name,))
        return books, events
