"""The journal of runs and decision cycles (SQLite); ``store`` holds the schema and the rules."""

from __future__ import annotations

from rez_cli.journal.store import (
    INCOMPLETE,
    Journal,
    JournalRecorder,
    default_journal_path,
    resolve_journal_path,
)

__all__ = ["INCOMPLETE", "Journal", "JournalRecorder", "default_journal_path", "resolve_journal_path"]
