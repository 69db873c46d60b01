"""Tapes: one portable file freezing what a run sees, so runs over it can be compared.

load_tape(path) -> Tape        checked against its hash; DataError (exit 2) otherwise
save_tape(tape, path)          gzip-compressed JSON, written whole or not at all
record_tape(...)               a regular grid of moments over a span, from any MarketSource
journal_moments(...)           the moments live cycles ran at, from the journal
tape_from_journal(...)         a tape of those moments
Tape.source()                  a MarketSource over the tape (name ``tape``)
Tape.altered(...)              a renamed, rescaled or year-shifted copy
Tape.apply(settings)           settings shaped as the tape was recorded (timeframes, warm-up)
"""

from rez_cli.tape.file import FORMAT, VERSION, content_hash, load_tape, save_tape
from rez_cli.tape.model import Tape, TapeMeta, TapeSource
from rez_cli.tape.record import journal_moments, record_tape, tape_from_journal

__all__ = [
    "FORMAT",
    "VERSION",
    "Tape",
    "TapeMeta",
    "TapeSource",
    "content_hash",
    "journal_moments",
    "load_tape",
    "record_tape",
    "save_tape",
    "tape_from_journal",
]
