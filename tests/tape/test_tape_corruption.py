"""Property: a damaged tape file never loads as different data; it loads as saved or is refused."""

from __future__ import annotations

import asyncio
import gzip
import tempfile
from pathlib import Path

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rez_cli.config.settings import Settings
from rez_cli.errors import DataError
from rez_cli.market.candles import parse_time
from rez_cli.market.sim import SimSource
from rez_cli.tape import Tape, load_tape, record_tape, save_tape

HOUR = 3_600_000


def _tape() -> Tape:
    base = Settings().with_timeframes("1h", ["1h", "4h"])
    shaped = base.model_copy(update={"market": base.market.model_copy(update={"candles": 50})})
    start = parse_time("2022-06-01")
    return asyncio.run(record_tape(shaped, SimSource(), "SOL/USDT", start_ms=start, end_ms=start + 12 * HOUR))


TAPE = _tape()
with tempfile.TemporaryDirectory() as folder:
    SAVED = save_tape(TAPE, Path(folder) / "t.tape").read_bytes()
TEXT = gzip.decompress(SAVED)


def loads_as_saved_or_is_refused(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "damaged.tape"
        path.write_bytes(data)
        try:
            loaded = load_tape(path)
        except DataError as error:
            refusal = error.one_line()
        else:
            refusal = None
    if refusal is not None:
        assert "\n" not in refusal
        return
    assert loaded.hash == TAPE.hash
    assert loaded.meta == TAPE.meta
    for timeframe, frame in TAPE.frames.items():
        pd.testing.assert_frame_equal(loaded.frames[timeframe], frame)


damage = st.lists(
    st.tuples(st.integers(min_value=0), st.integers(min_value=1, max_value=255)), min_size=1, max_size=4
)


def flipped(data: bytes, flips: list[tuple[int, int]]) -> bytes:
    out = bytearray(data)
    for position, mask in flips:
        out[position % len(out)] ^= mask
    return bytes(out)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(damage)
def test_flipped_bytes_of_the_file_never_load_silently_wrong(flips: list[tuple[int, int]]) -> None:
    loads_as_saved_or_is_refused(flipped(SAVED, flips))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(damage)
def test_flipped_bytes_of_the_json_inside_never_load_silently_wrong(flips: list[tuple[int, int]]) -> None:
    # Past gzip's CRC: only the content hash stands between an edited document and the caller.
    loads_as_saved_or_is_refused(gzip.compress(flipped(TEXT, flips), mtime=0))


@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=0, max_value=len(SAVED) - 1))
def test_a_file_cut_anywhere_is_refused(length: int) -> None:
    loads_as_saved_or_is_refused(SAVED[:length])


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_are_refused(data: bytes) -> None:
    loads_as_saved_or_is_refused(data)
