"""The journal of runs and decision cycles (SQLite): ``store.Journal`` and the modules it is made of."""

from __future__ import annotations

from rez_cli.journal.recorder import JournalRecorder
from rez_cli.journal.store import INCOMPLETE, Journal, default_journal_path, resolve_journal_path

__all__ = ["INCOMPLETE", "Journal", "JournalRecorder", "default_journal_path", "resolve_journal_path"]
