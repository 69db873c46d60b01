"""Keeping a journal's size in hand: deleting old cycles (``rez journal prune``), giving the space back
(``rez journal vacuum``).

A prune deletes either live cycles or backtests, never both at once: live cycles are the record of
what was decided (the memory, the scores), backtests are runs over the past that can be made again.
A backtest goes whole or not at all, so that what is left of one is never a backtest cut short, and
the cycles of a run still under way (its process is alive) are left alone, whatever their age: the
run would go on writing cycles of a backtest that is no longer there.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from rez_cli.journal.blobs import remove_unreferenced
from rez_cli.journal.db import Connection, Database

__all__ = ["Maintenance", "PruneCount", "PruneTarget"]


@dataclass(frozen=True)
class PruneTarget:
    """What a prune would delete: ``cycles`` in ``backtests`` backtests (0 for live cycles)."""

    before_ms: int
    backtests_only: bool
    cycles: int
    backtests: int


@dataclass(frozen=True)
class PruneCount:
    """How many rows a prune deleted, table by table (``blobs``: payloads no cycle holds any more)."""

    cycles: int
    turns: int
    tool_calls: int
    verdicts: int
    scores: int
    runs: int
    blobs: int


class Maintenance:
    """The maintenance half of ``Journal`` (whose connection and path it uses)."""

    path: Path
    _db: Database

    def prune_target(self, before_ms: int, *, backtests: bool) -> PruneTarget:
        """What ``prune`` would delete now, for asking before it does.

        Args:
            before_ms: cycles journaled (``started_ms``) before this moment.
            backtests: backtests instead of live cycles; a backtest counts only when every one of its
                cycles is that old.
        """
        with self._db.read() as db:
            chosen = _chosen(db, before_ms, backtests=backtests)
            row = db.execute(
                f"SELECT COUNT(*), COUNT(DISTINCT backtest_id) FROM cycles WHERE {chosen}", (before_ms,)
            ).fetchone()
        return PruneTarget(before_ms, backtests, int(row[0]), int(row[1]))

    def prune(self, before_ms: int, *, backtests: bool) -> PruneCount:
        """Delete the cycles ``prune_target`` names, with their turns, tool calls, verdicts, scores, the
        runs they leave empty, and the blobs nothing holds any more; all in one transaction.

        The file keeps its size (SQLite reuses the pages): ``vacuum`` gives the space back.
        """
        with self._db.write() as db:
            db.execute("CREATE TEMP TABLE IF NOT EXISTS prune_cycles (trace_id TEXT PRIMARY KEY)")
            db.execute("CREATE TEMP TABLE IF NOT EXISTS prune_runs (id INTEGER PRIMARY KEY)")
            db.execute("DELETE FROM prune_cycles")
            db.execute("DELETE FROM prune_runs")
            chosen = _chosen(db, before_ms, backtests=backtests)
            db.execute(f"INSERT INTO prune_cycles SELECT trace_id FROM cycles WHERE {chosen}", (before_ms,))
            db.execute(
                "INSERT INTO prune_runs SELECT DISTINCT run_id FROM cycles"
                " WHERE run_id IS NOT NULL AND trace_id IN (SELECT trace_id FROM prune_cycles)"
            )
            counts = {
                table: _delete_chosen(db, table)
                for table in ("tool_calls", "turns", "verdicts", "scores", "cycles")
            }
            # A backtest's stored report and audit (m006) go with its run: they name it.
            db.execute(
                "DELETE FROM backtests WHERE run_id IN (SELECT id FROM prune_runs)"
                " AND NOT EXISTS (SELECT 1 FROM cycles WHERE cycles.run_id = backtests.run_id)"
            )
            runs = db.execute(
                "DELETE FROM runs WHERE id IN (SELECT id FROM prune_runs)"
                " AND NOT EXISTS (SELECT 1 FROM cycles WHERE cycles.run_id = runs.id)"
            ).rowcount
            blobs = remove_unreferenced(db) if self._db.has_blobs else 0
            db.execute("DELETE FROM prune_cycles")
            db.execute("DELETE FROM prune_runs")
        return PruneCount(
            cycles=counts["cycles"],
            turns=counts["turns"],
            tool_calls=counts["tool_calls"],
            verdicts=counts["verdicts"],
            scores=counts["scores"],
            runs=runs,
            blobs=blobs,
        )

    def size_bytes(self) -> int:
        """The bytes the journal takes on disk: its file and its write-ahead log."""
        total = 0
        for path in (self.path, self.path.with_name(self.path.name + "-wal")):
            try:
                total += os.stat(path).st_size
            except FileNotFoundError:
                continue
        return total

    def vacuum(self) -> tuple[int, int]:
        """Rewrite the file without its free pages; its size before and after, in bytes.

        Waits (up to the busy timeout) for any write under way to end.
        """
        before = self.size_bytes()
        with self._db.read("vacuum") as db:
            db.execute("VACUUM")
            # VACUUM writes through the write-ahead log: folded back into the file, the log ends empty.
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return before, self.size_bytes()


def _chosen(db: Connection, before_ms: int, *, backtests: bool) -> str:
    """The cycles a prune deletes, as a condition with one ``?``: the moment."""
    if backtests:
        chosen = (
            "backtest_id IN (SELECT backtest_id FROM cycles WHERE backtest_id IS NOT NULL"
            " GROUP BY backtest_id HAVING MAX(started_ms) < ?)"
        )
    else:
        chosen = "backtest_id IS NULL AND started_ms < ?"
    candidates = db.execute(
        f"SELECT id, pid FROM runs WHERE id IN (SELECT DISTINCT run_id FROM cycles WHERE {chosen})",
        (before_ms,),
    ).fetchall()
    running = [int(run_id) for run_id, pid in candidates if _alive(int(pid))]
    if running:
        # Integers from the journal's own rows.
        chosen += f" AND (run_id IS NULL OR run_id NOT IN ({', '.join(map(str, running))}))"
    return chosen


def _alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this machine (a run it started may still be writing)."""
    if os.name != "posix" or pid <= 0:
        return False  # signal 0 asks only on POSIX; elsewhere os.kill would end the process
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # it exists, under another user
    return True


def _delete_chosen(db: Connection, table: str) -> int:
    # ``table`` is one of the journal's own table names, never text from a user.
    return int(
        db.execute(f"DELETE FROM {table} WHERE trace_id IN (SELECT trace_id FROM prune_cycles)").rowcount
    )
