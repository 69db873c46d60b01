from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rez_cli.errors import InvalidCandles
from rez_cli.market.candles import COLUMNS, drop_unclosed, find_gaps, resample, validate_candles
from tests.support.candles import make_candles

HOUR = 3_600_000


def test_valid_frame_comes_back_canonical() -> None:
    frame = make_candles(50, seed=1)
    out = validate_candles(frame.sample(frac=1.0, random_state=0).sort_values("timestamp"), "x")
    assert list(out.columns) == COLUMNS
    assert out["timestamp"].dtype == np.int64
    assert isinstance(out.index, pd.RangeIndex)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (
            lambda f: f.assign(close=f["close"].where(f.index != 7, float("nan"))),
            "row 8 .*close is not a finite",
        ),
        (lambda f: f.assign(open=f["open"].where(f.index != 3, -1.0)), "row 4 .*prices must be positive"),
        (lambda f: f.assign(low=f["low"].where(f.index != 5, f["high"] * 2)), "row 6 .*low is above"),
        (lambda f: f.assign(high=f["high"].where(f.index != 9, f["low"] / 2)), "row 10 .*high is below"),
        (lambda f: pd.concat([f.iloc[:4], f.iloc[3:4], f.iloc[4:]]), "row 5 .*duplicate timestamp"),
        (lambda f: pd.concat([f.iloc[:4], f.iloc[5:6], f.iloc[4:5], f.iloc[6:]]), "row 6 .*out of order"),
        (lambda f: f.drop(columns=["volume"]), "missing column volume"),
        (lambda f: f.assign(volume=f["volume"].where(f.index != 2, -5.0)), "row 3 .*volume is negative"),
    ],
)
def test_bad_rows_are_named(mutate: object, message: str) -> None:
    frame = make_candles(20, seed=2)
    with pytest.raises(InvalidCandles, match=message):
        validate_candles(mutate(frame), "data.csv")  # type: ignore[operator]


number = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, width=64),
    st.integers(min_value=-(10**6), max_value=10**15),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=st.lists(st.tuples(*(number for _ in COLUMNS)), max_size=12))
def test_any_input_is_a_valid_frame_or_a_clear_error(rows: list[tuple[float, ...]]) -> None:
    frame = pd.DataFrame(rows, columns=COLUMNS)
    try:
        out = validate_candles(frame, "prop")
    except InvalidCandles as error:
        message = error.message
    else:
        message = None
    if message is not None:
        assert message.startswith("prop")
        assert "\n" not in message
        return
    values = out[["open", "high", "low", "close", "volume"]].to_numpy()
    assert np.isfinite(values).all()
    assert (out[["open", "high", "low", "close"]].to_numpy() > 0).all()
    assert (out["low"] <= out[["open", "close"]].min(axis=1)).all()
    assert (out["high"] >= out[["open", "close"]].max(axis=1)).all()
    assert out["timestamp"].is_monotonic_increasing
    assert out["timestamp"].is_unique


def test_gaps_are_found_and_counted() -> None:
    frame = make_candles(30, seed=3)
    holed = validate_candles(frame.drop(index=[10, 11, 12, 20]), "x")
    gaps = find_gaps(holed, "1h")
    assert [(gap.missing) for gap in gaps] == [3, 1]
    assert gaps[0].after_ms == int(frame["timestamp"].iloc[9])


def test_forming_candle_is_dropped() -> None:
    frame = make_candles(10, seed=4)
    last_open = int(frame["timestamp"].iloc[-1])
    assert len(drop_unclosed(frame, "1h", last_open + HOUR)) == 10
    assert len(drop_unclosed(frame, "1h", last_open + HOUR - 1)) == 9


def test_resample_is_a_true_aggregate_and_drops_partial_buckets() -> None:
    frame = make_candles(4 * 25 + 2, seed=5)  # START_MS is aligned to 4h: the last bucket is partial
    four = resample(frame, "1h", "4h")
    assert len(four) == 25
    first = frame.iloc[:4]
    assert four.iloc[0]["open"] == first["open"].iloc[0]
    assert four.iloc[0]["high"] == first["high"].max()
    assert four.iloc[0]["low"] == first["low"].min()
    assert four.iloc[0]["close"] == first["close"].iloc[-1]
    assert math.isclose(four.iloc[0]["volume"], first["volume"].sum())
