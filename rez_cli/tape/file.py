"""The tape file: one gzip-compressed JSON document, content-addressed.

    {"format": "rez-tape", "version": 1, "hash": "sha256:<hex>",
     "meta": {...}, "frames": {"1h": {"timestamp": [...], "open": [...], ..., "volume": [...]}}}

The hash is the SHA-256 of the canonical JSON of everything but ``hash`` (keys sorted, no spaces,
floats as Python writes them, which read back to the same number). ``load_tape`` recomputes it over
what it parsed, so a file either loads as exactly what was saved or is refused: a flipped byte that
gzip's CRC misses, an edited candle, a cut-off end. Only the stdlib reads it (no SQLite outside the
journal, no Parquet engine needed).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import pandas as pd

from rez_cli.errors import DataError, DataNotFound, UsageError
from rez_cli.market.candles import COLUMNS, validate_candles
from rez_cli.tape.model import Tape, TapeMeta
from rez_cli.timeframes import timeframe_ms

FORMAT = "rez-tape"
VERSION = 1
# Years of 1m candles fit well below this; a file that inflates past it is not a tape Rez wrote.
MAX_DOCUMENT_BYTES = 2 * 1024**3


def document(meta: TapeMeta, frames: Mapping[str, pd.DataFrame]) -> dict[str, Any]:
    """The tape as the JSON document it is saved as, without its hash."""
    return {
        "format": FORMAT,
        "version": VERSION,
        "meta": meta.to_json(),
        "frames": {
            timeframe: {
                "timestamp": frame["timestamp"].to_numpy(dtype=np.int64).tolist(),
                **{column: frame[column].to_numpy(dtype=np.float64).tolist() for column in COLUMNS[1:]},
            }
            for timeframe, frame in frames.items()
        },
    }


def _canonical(doc: Mapping[str, Any]) -> bytes:
    return json.dumps(
        {key: value for key, value in doc.items() if key != "hash"},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=True,
        allow_nan=False,
    ).encode("ascii")


def content_hash(doc: Mapping[str, Any]) -> str:
    """``sha256:<hex>`` of the canonical JSON of ``doc`` without its ``hash`` key."""
    return "sha256:" + hashlib.sha256(_canonical(doc)).hexdigest()


def save_tape(tape: Tape, path: Path, *, overwrite: bool = False) -> Path:
    """Write ``tape`` to ``path`` (whole or not at all: a temporary file renamed into place).

    Raises:
        UsageError: ``path`` exists and ``overwrite`` is false, or it cannot be written.
    """
    if path.exists() and not overwrite:
        raise UsageError(f"{path} exists: not overwriting it", hint="use --force to replace it")
    doc = {"hash": tape.hash, **document(tape.meta, tape.frames)}
    payload = json.dumps(doc, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode("ascii")
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with (
            open(temporary, "wb") as raw,
            gzip.GzipFile(
                # No name and no time in the header: the same tape makes the same bytes.
                filename="",
                fileobj=raw,
                mode="wb",
                compresslevel=6,
                mtime=0,
            ) as out,
        ):
            out.write(payload)
        os.replace(temporary, path)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        raise UsageError(f"cannot write the tape {path}: {error.strerror or error}") from None
    return path


def _refuse(path: Path, why: str) -> NoReturn:
    raise DataError(f"{path}: {why}", hint="make it again with rez tape record or rez tape from-journal")


def _no_constants(name: str) -> NoReturn:
    raise ValueError(f"{name} is not a JSON number")


def read_document(path: Path) -> dict[str, Any]:
    """The parsed JSON document of a tape file, its hash checked.

    Raises:
        DataNotFound: no such file.
        DataError: not a tape, truncated, corrupt, of a newer format, or not matching its hash.
    """
    try:
        with open(path, "rb") as raw:
            head = raw.read(2)
            raw.seek(0)
            if head != b"\x1f\x8b":
                _refuse(path, "not a tape (not a gzip file)")
            with gzip.GzipFile(fileobj=raw, mode="rb") as unzipped:
                data = unzipped.read(MAX_DOCUMENT_BYTES + 1)
    except FileNotFoundError:
        raise DataNotFound(f"no tape at {path}") from None
    except IsADirectoryError:
        raise DataError(f"{path} is a directory, not a tape") from None
    except EOFError:
        _refuse(path, "the tape is truncated")
    except (gzip.BadGzipFile, zlib.error):
        _refuse(path, "the tape is corrupt (its compressed data does not read)")
    except OSError as error:
        raise DataError(f"cannot read the tape {path}: {error.strerror or error}") from None
    if len(data) > MAX_DOCUMENT_BYTES:
        _refuse(path, "not a tape (it inflates past 2 GiB)")
    try:
        doc = json.loads(data.decode("utf-8"), parse_constant=_no_constants)
    except (UnicodeDecodeError, ValueError, RecursionError):
        _refuse(path, "the tape is corrupt (not valid JSON)")
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        _refuse(path, "not a tape (no rez-tape format marker)")
    version = doc.get("version")
    if type(version) is not int:
        _refuse(path, "the tape is corrupt (its version is not a number)")
    if version > VERSION:
        raise DataError(
            f"{path}: tape format version {version} is newer than this Rez reads ({VERSION})",
            hint="upgrade rez-cli",
        )
    stored = doc.get("hash")
    if not isinstance(stored, str):
        _refuse(path, "the tape is corrupt (it has no hash)")
    try:
        actual = content_hash(doc)
    except (ValueError, TypeError, RecursionError):
        _refuse(path, "the tape is corrupt (its content cannot be hashed)")
    if actual != stored:
        # Only a prefix: the line stays short and a hash is no secret anyway.
        _refuse(
            path, f"the tape's content does not match its hash (stored {stored[:19]}, content {actual[:19]})"
        )
    return doc


def load_tape(path: Path) -> Tape:
    """The tape at ``path``, checked against its hash and the candle rules.

    Raises:
        DataNotFound: no such file.
        DataError: truncated, corrupt, not a tape, a newer format, or its content no longer matches
            its hash (one line, exit 2).
    """
    doc = read_document(path)
    try:
        meta = _meta(doc.get("meta"))
        frames = _frames(doc.get("frames"), meta, path)
    except _Malformed as error:
        _refuse(path, f"the tape is malformed ({error})")
    return Tape(meta, frames, doc["hash"])


class _Malformed(Exception):
    pass


def _field(raw: Mapping[str, Any], key: str, kind: type | tuple[type, ...]) -> Any:
    value = raw.get(key)
    # bool is an int to Python, never a count or a time here.
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
        raise _Malformed(f"meta.{key}")
    return value


def _timeframe(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise _Malformed(where)
    try:
        timeframe_ms(value)
    except UsageError:
        raise _Malformed(where) from None
    return value


def _meta(raw: Any) -> TapeMeta:
    if not isinstance(raw, dict):
        raise _Malformed("no meta")
    contexts = _field(raw, "context_timeframes", list)
    moments = _field(raw, "moments", list)
    if any(type(moment) is not int for moment in moments):
        raise _Malformed("meta.moments")
    settings = _field(raw, "settings", dict)
    market = settings.get("market")
    if not isinstance(market, dict):
        raise _Malformed("meta.settings.market")
    warmup, seed = market.get("candles"), market.get("seed")
    if type(warmup) is not int or type(seed) is not int or warmup < 1:
        raise _Malformed("meta.settings.market")
    derived = raw.get("derived_from")
    alteration = raw.get("alteration", {})
    if (derived is not None and not isinstance(derived, str)) or not isinstance(alteration, dict):
        raise _Malformed("meta.derived_from")
    every = _field(raw, "every", int)
    if every < 1:
        raise _Malformed("meta.every")
    return TapeMeta(
        symbol=_field(raw, "symbol", str),
        exchange=_field(raw, "exchange", str),
        simulated=_field(raw, "simulated", bool),
        timeframe=_timeframe(raw.get("timeframe"), "meta.timeframe"),
        context_timeframes=tuple(_timeframe(tf, "meta.context_timeframes") for tf in contexts),
        every=every,
        start_ms=_field(raw, "start_ms", int),
        end_ms=_field(raw, "end_ms", int),
        moments=tuple(moments),
        created_ms=_field(raw, "created_ms", int),
        warmup=warmup,
        seed=seed,
        origin=_field(raw, "origin", str),
        derived_from=derived,
        alteration=alteration,
    )


def _frames(raw: Any, meta: TapeMeta, path: Path) -> dict[str, pd.DataFrame]:
    if not isinstance(raw, dict):
        raise _Malformed("no frames")
    frames: dict[str, pd.DataFrame] = {}
    for timeframe in meta.timeframes:
        columns = raw.get(timeframe)
        if not isinstance(columns, dict):
            raise _Malformed(f"no {timeframe} frame")
        lists = [columns.get(column) for column in COLUMNS]
        if not all(isinstance(values, list) for values in lists):
            raise _Malformed(f"a {timeframe} column is missing")
        if len({len(values) for values in lists}) != 1:  # type: ignore[arg-type]  # all lists, checked above
            raise _Malformed(f"the {timeframe} columns differ in length")
        if any(type(ts) is not int for ts in lists[0]):  # type: ignore[union-attr]  # a list, checked above
            raise _Malformed(f"a {timeframe} timestamp is not an integer")
        for values in lists[1:]:
            if any(type(value) not in (int, float) for value in values):  # type: ignore[union-attr]
                raise _Malformed(f"a {timeframe} price or volume is not a number")
        try:
            frame = pd.DataFrame(
                {"timestamp": np.array(lists[0], dtype=np.int64)}
                | {
                    column: np.array(values, dtype=np.float64)
                    for column, values in zip(COLUMNS[1:], lists[1:], strict=True)
                }
            )
        except (OverflowError, ValueError):
            raise _Malformed(f"a {timeframe} number is out of range") from None
        frames[timeframe] = validate_candles(frame, f"{path} {timeframe}")
    return frames
