"""Payloads stored once, by content: the ``blobs`` table, and how a backtest cycle uses it.

A backtest writes thousands of cycles, and their payloads repeat. The profile is the same in every
cycle; one market moment gives the same candles, context and context text to every run over it (a
react backtest and its rules baseline, a second run with another profile); and one cycle's JSON has
the keys, rules and sentences of the next, with other numbers. So a backtest cycle stores three blobs
(its profile, its inputs and its record, see ``JournalRecorder``) and each blob is:

- found by the SHA-256 of its text (the first 16 bytes): an equal payload already stored is used
  again, never written twice;
- deflated with zlib when that makes it smaller, against a preset dictionary: the same kind of
  payload of the cycle before it (that very blob, ``dictionary`` names it), so a cycle costs the
  bytes in which it differs from the one before rather than all of its words again. A chain holds
  at most ``KEYFRAME_EVERY`` blobs: then a payload is deflated on its own and starts the next.

The journal holds everything a blob needs to be read back (its dictionary included): no table of
words in Rez's code has to stay the same from one version to the next.
"""

from __future__ import annotations

import hashlib
import zlib
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rez_cli.errors import DataError
from rez_cli.journal.db import Connection
from rez_cli.journal.encoding import JsonKind, parse_stored

__all__ = [
    "KEYFRAME_EVERY",
    "REFERENCING_COLUMNS",
    "Blobs",
    "Dictionary",
    "content_hash",
    "remove_unreferenced",
]

HASH_BYTES = 16
# Measured on a rules backtest's payloads: level 2 deflates as fast as 1 and 7% smaller; 3 is 3%
# smaller again for a tenth more time.
ZLIB_LEVEL = 2
# zlib reads at most this much of a preset dictionary: the last 32 KiB.
DICTIONARY_WINDOW = 32 * 1024
# The longest chain of blobs deflated each against the one before. Measured on a rules backtest's
# inputs: against the cycle before 835 bytes, four cycles back 1,317, the first cycle 1,974, alone
# 2,480; a keyframe every 16 costs about 100 bytes a cycle and bounds a read to 16 inflations.
KEYFRAME_EVERY = 16
# Dictionaries kept in memory by a reader: a chain's links, and a few chains.
DICTIONARY_CACHE = 64
# The columns of ``cycles`` that hold a blob's id.
REFERENCING_COLUMNS = ("profile_blob", "inputs_blob", "record_blob")


@dataclass(frozen=True)
class Dictionary:
    """A preset dictionary for zlib, and the blob that keeps it for the readers."""

    blob_id: int
    data: bytes


def content_hash(data: bytes) -> bytes:
    """The key a payload is found by: 128 bits of its SHA-256."""
    return hashlib.sha256(data).digest()[:HASH_BYTES]


def _utf8(text: str) -> bytes:
    # As the connection writes text: a lone surrogate (a model's "\ud800") becomes its escape, which
    # in JSON text reads back as the same string.
    return text.encode("utf-8", "backslashreplace")


class Blobs:
    """Blob storage for one journal: writes, reads, and the dictionaries read so far."""

    def __init__(self, journal: Path) -> None:
        self._journal = journal
        # Most recently used last; bounded, since every blob of a chain is a dictionary.
        self._dictionaries: OrderedDict[int, bytes] = OrderedDict()

    def put(self, db: Connection, text: str, dictionary: Dictionary | None = None) -> int | None:
        """The id of the blob holding ``text``: an equal one already stored, or a new one.

        None when ``dictionary`` is no longer stored (a prune removed the backtest it was made for
        while that one still ran): the caller stores ``text`` without it.
        """
        data = _utf8(text)
        digest = content_hash(data)
        found = db.execute("SELECT id FROM blobs WHERE hash = ?", (digest,)).fetchone()
        if found is not None:
            return int(found[0])
        if dictionary is None:
            packer = zlib.compressobj(ZLIB_LEVEL)
        else:
            packer = zlib.compressobj(ZLIB_LEVEL, zdict=dictionary.data)
        deflated = packer.compress(data) + packer.flush()
        body: str | bytes = data.decode("utf-8")
        used: int | None = None
        if len(deflated) < len(data):
            body, used = deflated, dictionary.blob_id if dictionary is not None else None
        # Only with its dictionary still there: a blob is never stored that cannot be read back.
        cursor = db.execute(
            "INSERT INTO blobs (hash, body, dictionary) SELECT ?, ?, ?"
            " WHERE ? IS NULL OR EXISTS (SELECT 1 FROM blobs WHERE id = ?)",
            (digest, body, used, used, used),
        )
        if cursor.rowcount == 0:
            return None
        blob_id = cursor.lastrowid
        assert blob_id is not None  # an INSERT into a rowid table always sets it
        return blob_id

    def dictionary(self, db: Connection, sample: str) -> Dictionary:
        """A dictionary made of ``sample`` (its last 32 KiB, whole characters), stored as a blob."""
        text = _utf8(sample)[-DICTIONARY_WINDOW:].decode("utf-8", "ignore")
        blob_id = self.put(db, text)
        assert blob_id is not None  # without a dictionary a blob is always stored
        data = text.encode("utf-8")
        self._remember(blob_id, data)
        return Dictionary(blob_id, data)

    def text(self, db: Connection, blob_id: int, what: str) -> str:
        """The text blob ``blob_id`` holds.

        Raises:
            DataError: the blob is missing or does not inflate to UTF-8 text (a damaged journal).
        """
        row = db.execute("SELECT body, dictionary FROM blobs WHERE id = ?", (blob_id,)).fetchone()
        if row is None:
            raise self._damaged(what, "is missing")
        body, dictionary_id = row[0], row[1]
        if isinstance(body, str):
            return body
        if not isinstance(body, bytes):
            raise self._damaged(what, "is not stored as text")
        try:
            if dictionary_id is None:
                unpacker = zlib.decompressobj()
            else:
                unpacker = zlib.decompressobj(zdict=self._dictionary_data(db, int(dictionary_id), what))
            data = unpacker.decompress(body) + unpacker.flush()
            if not unpacker.eof:
                raise zlib.error("truncated")
            return data.decode("utf-8")
        except (zlib.error, UnicodeDecodeError, ValueError):
            raise self._damaged(what, "does not inflate") from None

    def json(self, db: Connection, blob_id: int, what: str, kind: JsonKind) -> Any:
        """The JSON ``kind`` blob ``blob_id`` holds.

        Raises:
            DataError: the blob is missing, damaged, or not a ``kind``.
        """
        return parse_stored(self.text(db, blob_id, what), what, kind, self._journal)

    def _dictionary_data(self, db: Connection, blob_id: int, what: str) -> bytes:
        data = self._dictionaries.get(blob_id)
        if data is None:
            data = self.text(db, blob_id, f"the dictionary of {what}").encode("utf-8")
        self._remember(blob_id, data)
        return data

    def _remember(self, blob_id: int, data: bytes) -> None:
        self._dictionaries[blob_id] = data
        self._dictionaries.move_to_end(blob_id)
        while len(self._dictionaries) > DICTIONARY_CACHE:
            self._dictionaries.popitem(last=False)

    def _damaged(self, what: str, how: str) -> DataError:
        return DataError(
            f"journal {self._journal} is damaged: {what} {how}",
            hint="restore it from a backup, or use another --journal",
        )


def remove_unreferenced(db: Connection) -> int:
    """Delete the blobs no cycle holds and no kept blob was deflated with; how many went."""
    held = " UNION ".join(
        f"SELECT {column} FROM cycles WHERE {column} IS NOT NULL" for column in REFERENCING_COLUMNS
    )
    removed = 0
    # A dictionary is kept while a blob deflated with it is: once those go, a second pass takes it.
    while True:
        cursor = db.execute(
            f"DELETE FROM blobs WHERE id NOT IN ({held})"  # the column names above, no user text
            " AND id NOT IN (SELECT dictionary FROM blobs WHERE dictionary IS NOT NULL)"
        )
        if cursor.rowcount <= 0:
            return removed
        removed += cursor.rowcount
