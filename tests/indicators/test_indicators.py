"""The indicator bridge: TA-Lib parity, no look-ahead, honest warm-up, parameter errors, summaries."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest
import talib

from rez_cli.errors import UsageError
from rez_cli.indicators import (
    INDICATORS,
    IndicatorError,
    Unit,
    catalog,
    compute,
    label,
    price_decimals,
    round_value,
    summarize,
    summary_rows,
    validate_params,
    warmup_bars,
)
from tests.support.candles import START_MS, make_candles

HOUR_MS = 3_600_000
DAY_MS = 86_400_000

Columns = dict[str, "np.ndarray[Any, np.dtype[np.float64]]"]
Oracle = Callable[[pd.DataFrame], Columns]

# Two markets a thousand hours long: a BTC-like price and a SHIB-like one, where absolute
# epsilons and rounding shortcuts would show.
MARKETS = {
    "btc": lambda: make_candles(1000, seed=11, start_price=35_000.0),
    "shib": lambda: make_candles(1000, seed=12, start_price=0.00001234),
}


@pytest.fixture(scope="module", params=sorted(MARKETS))
def market(request: pytest.FixtureRequest) -> pd.DataFrame:
    return MARKETS[request.param]()


@pytest.fixture(scope="module")
def btc() -> pd.DataFrame:
    return MARKETS["btc"]()


def _c(frame: pd.DataFrame) -> np.ndarray[Any, np.dtype[np.float64]]:
    return frame["close"].to_numpy()


def _hlc(
    frame: pd.DataFrame,
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    return frame["high"].to_numpy(), frame["low"].to_numpy(), frame["close"].to_numpy()


def _shift(values: np.ndarray[Any, Any], periods: int) -> np.ndarray[Any, Any]:
    return np.concatenate((np.full(periods, np.nan), values[:-periods]))


def _macd(fast: int, slow: int, signal: int) -> Oracle:
    def oracle(frame: pd.DataFrame) -> Columns:
        macd, sig, hist = talib.MACD(_c(frame), fast, slow, signal)
        return {"macd": macd, "signal": sig, "hist": hist}

    return oracle


def _bbands(length: int, std: float) -> Oracle:
    def oracle(frame: pd.DataFrame) -> Columns:
        upper, middle, lower = talib.BBANDS(_c(frame), length, std, std, talib.MA_Type.SMA)
        return {
            "upper": upper,
            "middle": middle,
            "lower": lower,
            "bandwidth": 100 * (upper - lower) / middle,
            "percent_b": (_c(frame) - lower) / (upper - lower),
        }

    return oracle


def _adx(length: int) -> Oracle:
    def oracle(frame: pd.DataFrame) -> Columns:
        hlc = _hlc(frame)
        return {
            "adx": talib.ADX(*hlc, length),
            "plus_di": talib.PLUS_DI(*hlc, length),
            "minus_di": talib.MINUS_DI(*hlc, length),
        }

    return oracle


def _stoch(k: int, d: int, smooth_k: int) -> Oracle:
    def oracle(frame: pd.DataFrame) -> Columns:
        slow_k, slow_d = talib.STOCH(
            *_hlc(frame),
            fastk_period=k,
            slowk_period=smooth_k,
            slowk_matype=talib.MA_Type.SMA,
            slowd_period=d,
            slowd_matype=talib.MA_Type.SMA,
        )
        return {"k": slow_k, "d": slow_d}

    return oracle


def _stochrsi(length: int, rsi_length: int, k: int, d: int) -> Oracle:
    def oracle(frame: pd.DataFrame) -> Columns:
        if k == 1:
            fast_k, fast_d = talib.STOCHRSI(
                _c(frame),
                timeperiod=rsi_length,
                fastk_period=length,
                fastd_period=d,
                fastd_matype=talib.MA_Type.SMA,
            )
            return {"k": fast_k, "d": fast_d}
        # TA-Lib has no %K smoothing: apply it, as TradingView does, with TA-Lib's own SMA.
        fast_k, _ = talib.STOCHRSI(_c(frame), timeperiod=rsi_length, fastk_period=length, fastd_period=1)
        slow_k = talib.SMA(fast_k, k)
        return {"k": slow_k, "d": talib.SMA(slow_k, d)}

    return oracle


def _psar(af0: float, max_af: float) -> Oracle:
    def oracle(frame: pd.DataFrame) -> Columns:
        sar = talib.SAR(frame["high"].to_numpy(), frame["low"].to_numpy(), acceleration=af0, maximum=max_af)
        return {
            "psar": sar,
            "direction": np.where(np.isnan(sar), np.nan, np.where(sar < _c(frame), 1.0, -1.0)),
        }

    return oracle


def _kc(length: int, scalar: float) -> Oracle:
    def oracle(frame: pd.DataFrame) -> Columns:
        middle = talib.EMA(_c(frame), length)
        band = talib.EMA(talib.TRANGE(*_hlc(frame)), length)
        return {"upper": middle + scalar * band, "middle": middle, "lower": middle - scalar * band}

    return oracle


def _donchian(lower_length: int, upper_length: int) -> Oracle:
    def oracle(frame: pd.DataFrame) -> Columns:
        upper = talib.MAX(frame["high"].to_numpy(), upper_length)
        lower = talib.MIN(frame["low"].to_numpy(), lower_length)
        return {"upper": upper, "middle": (upper + lower) / 2, "lower": lower}

    return oracle


def _ichimoku(tenkan: int, kijun: int, senkou: int) -> Oracle:
    def oracle(frame: pd.DataFrame) -> Columns:
        high, low = frame["high"].to_numpy(), frame["low"].to_numpy()
        conversion = talib.MIDPRICE(high, low, tenkan)
        base = talib.MIDPRICE(high, low, kijun)
        # The cloud under candle t was computed kijun candles earlier: past data only.
        return {
            "tenkan": conversion,
            "kijun": base,
            "span_a": _shift((conversion + base) / 2, kijun),
            "span_b": _shift(talib.MIDPRICE(high, low, senkou), kijun),
        }

    return oracle


# Every indicator TA-Lib has, with defaults and with other settings; kc, donchian and ichimoku are
# assembled from TA-Lib's own building blocks (EMA, TRANGE, MAX, MIN, MIDPRICE).
PARITY: list[tuple[str, dict[str, Any], Oracle]] = [
    ("ema", {}, lambda f: {"ema": talib.EMA(_c(f), 10)}),
    ("ema", {"length": 50}, lambda f: {"ema": talib.EMA(_c(f), 50)}),
    ("sma", {}, lambda f: {"sma": talib.SMA(_c(f), 10)}),
    ("sma", {"length": 200}, lambda f: {"sma": talib.SMA(_c(f), 200)}),
    ("wma", {"length": 30}, lambda f: {"wma": talib.WMA(_c(f), 30)}),
    ("rsi", {}, lambda f: {"rsi": talib.RSI(_c(f), 14)}),
    ("rsi", {"length": 6}, lambda f: {"rsi": talib.RSI(_c(f), 6)}),
    ("macd", {}, _macd(12, 26, 9)),
    ("macd", {"fast": 5, "slow": 35, "signal": 5}, _macd(5, 35, 5)),
    ("bbands", {}, _bbands(20, 2.0)),
    ("bbands", {"length": 10, "std": 1.5}, _bbands(10, 1.5)),
    ("atr", {}, lambda f: {"atr": talib.ATR(*_hlc(f), 14)}),
    ("atr", {"length": 30}, lambda f: {"atr": talib.ATR(*_hlc(f), 30)}),
    ("adx", {}, _adx(14)),
    ("adx", {"length": 25}, _adx(25)),
    ("stoch", {}, _stoch(14, 3, 3)),
    ("stoch", {"k": 5, "d": 4, "smooth_k": 1}, _stoch(5, 4, 1)),
    ("stochrsi", {}, _stochrsi(14, 14, 3, 3)),
    ("stochrsi", {"k": 1}, _stochrsi(14, 14, 1, 3)),
    ("stochrsi", {"length": 10, "rsi_length": 21, "k": 1, "d": 5}, _stochrsi(10, 21, 1, 5)),
    ("cci", {}, lambda f: {"cci": talib.CCI(*_hlc(f), 14)}),
    ("cci", {"length": 20}, lambda f: {"cci": talib.CCI(*_hlc(f), 20)}),
    ("mfi", {}, lambda f: {"mfi": talib.MFI(*_hlc(f), f["volume"].to_numpy(), 14)}),
    ("obv", {}, lambda f: {"obv": talib.OBV(_c(f), f["volume"].to_numpy())}),
    ("roc", {}, lambda f: {"roc": talib.ROC(_c(f), 10)}),
    ("roc", {"length": 24}, lambda f: {"roc": talib.ROC(_c(f), 24)}),
    ("willr", {}, lambda f: {"willr": talib.WILLR(*_hlc(f), 14)}),
    ("psar", {}, _psar(0.02, 0.2)),
    ("psar", {"af0": 0.01, "max_af": 0.1}, _psar(0.01, 0.1)),
    ("kc", {}, _kc(20, 2.0)),
    ("donchian", {"lower_length": 10, "upper_length": 30}, _donchian(10, 30)),
    ("ichimoku", {}, _ichimoku(9, 26, 52)),
]


@pytest.mark.parametrize(
    ("name", "params", "oracle"),
    [pytest.param(*case, id=f"{case[0]}{case[1] or ''}") for case in PARITY],
)
def test_values_match_talib_after_warmup(
    market: pd.DataFrame, name: str, params: dict[str, Any], oracle: Oracle
) -> None:
    ours = compute(market, name, params)
    expected = oracle(market)
    start = warmup_bars(name, params)
    assert start < len(market) - 500, "the comparison must cover most of the frame"
    for column, theirs in expected.items():
        mine = ours[column].to_numpy()[start:]
        theirs = theirs[start:]
        assert not np.isnan(theirs).any(), f"TA-Lib still warming up for {name}.{column} at row {start}"
        assert not np.isnan(mine).any(), f"{name}.{column} has NaN after its warm-up of {start}"
        # 1e-6 relative; the absolute floor only matters where one library gives exactly 0 and the
        # other 1e-13 (a stochastic at the bottom of its range, summed in a different order).
        atol = 1e-9 * float(np.max(np.abs(theirs)))
        np.testing.assert_allclose(mine, theirs, rtol=1e-6, atol=atol, err_msg=f"{name}.{column}")


def test_every_talib_indicator_is_checked() -> None:
    checked = {name for name, _, _ in PARITY}
    # supertrend has no TA-Lib counterpart; vwap is checked against its definition below.
    assert set(INDICATORS) - checked == {"supertrend", "vwap"}


def _perturbed_after(frame: pd.DataFrame, row: int, seed: int) -> pd.DataFrame:
    """The same candles up to ``row``, a different market after it (still valid candles)."""
    rng = np.random.default_rng(seed)
    changed = frame.copy()
    later = changed.index > row
    factor = np.exp(np.cumsum(rng.normal(0.0, 0.03, int(later.sum()))))
    for column in ("open", "high", "low", "close"):
        changed.loc[later, column] = changed.loc[later, column] * factor
    changed.loc[later, "volume"] = changed.loc[later, "volume"] * rng.uniform(0.1, 10.0, int(later.sum()))
    return changed


LOOKAHEAD_CASES: list[tuple[str, dict[str, Any]]] = [(name, {}) for name in INDICATORS] + [
    ("ichimoku", {"tenkan": 5, "kijun": 10, "senkou": 20}),
    ("vwap", {"anchor": "W"}),
    ("donchian", {"lower_length": 5, "upper_length": 50}),
]


@pytest.mark.parametrize(
    ("name", "params"), [pytest.param(*case, id=f"{case[0]}{case[1] or ''}") for case in LOOKAHEAD_CASES]
)
def test_values_up_to_a_candle_ignore_every_later_candle(
    btc: pd.DataFrame, name: str, params: dict[str, Any]
) -> None:
    row = 600
    original = compute(btc, name, params)
    changed = compute(_perturbed_after(btc, row, seed=5), name, params)
    truncated = compute(btc.iloc[: row + 1], name, params)
    np.testing.assert_array_equal(changed.iloc[: row + 1].to_numpy(), original.iloc[: row + 1].to_numpy())
    np.testing.assert_array_equal(truncated.to_numpy(), original.iloc[: row + 1].to_numpy())
    # The perturbation must reach the indicator, or the first assertion proves nothing.
    assert not np.allclose(
        changed.iloc[row + 1 :].to_numpy(), original.iloc[row + 1 :].to_numpy(), equal_nan=True
    )


def test_ichimoku_has_no_chikou_and_no_projected_rows(btc: pd.DataFrame) -> None:
    result = compute(btc, "ichimoku")
    assert list(result.columns) == ["tenkan", "kijun", "span_a", "span_b"]
    assert list(result.index) == list(btc["timestamp"])


def test_ichimoku_at_a_candle_is_unchanged_when_later_candles_change(btc: pd.DataFrame) -> None:
    for row in (100, 450, 998):
        original = compute(btc, "ichimoku").iloc[: row + 1]
        changed = compute(_perturbed_after(btc, row, seed=row), "ichimoku").iloc[: row + 1]
        pd.testing.assert_frame_equal(changed, original)


@pytest.mark.parametrize("name", [name for name in INDICATORS if name != "obv"])
def test_after_warmup_a_shorter_history_gives_the_same_values(name: str) -> None:
    """``warmup_bars`` is what the fetcher relies on: past it, where the history began barely matters."""
    frame = make_candles(2200, seed=21)
    start = 1000
    full = compute(frame, name).iloc[start:]
    short = compute(frame.iloc[start:], name)
    skip = warmup_bars(name, timeframe_ms=HOUR_MS)
    for column in full.columns:
        mine, reference = short[column].to_numpy()[skip:], full[column].to_numpy()[skip:]
        assert not np.isnan(mine).any(), f"{name}.{column} is NaN after {skip} warm-up candles"
        # Recursive smoothings count as settled at 0.1% seed weight: allow that share of the scale.
        tolerance = 1e-3 * float(np.nanmax(np.abs(full[column].to_numpy())))
        np.testing.assert_allclose(mine, reference, rtol=0, atol=tolerance, err_msg=f"{name}.{column}")


def test_vwap_restarts_each_utc_day_and_hides_a_partial_first_day() -> None:
    # Starts at 05:00 UTC: the first day's VWAP would miss five hours of volume.
    frame = make_candles(100, seed=3, start_ms=START_MS + 5 * HOUR_MS)
    result = compute(frame, "vwap")["vwap"].to_numpy()
    assert np.isnan(result[:19]).all()
    day = (frame["timestamp"] // DAY_MS).to_numpy()
    typical = ((frame["high"] + frame["low"] + frame["close"]) / 3).to_numpy()
    volume = frame["volume"].to_numpy()
    for first in np.flatnonzero(np.diff(day)) + 1:
        same_day = np.flatnonzero(day == day[first])
        weighted = np.cumsum(typical[same_day] * volume[same_day]) / np.cumsum(volume[same_day])
        np.testing.assert_allclose(result[same_day], weighted, rtol=1e-12)


def test_vwap_starting_at_midnight_has_a_value_from_the_first_candle() -> None:
    frame = make_candles(30, seed=3)
    result = compute(frame, "vwap")
    assert not result["vwap"].isna().any()
    assert warmup_bars("vwap", timeframe_ms=HOUR_MS) == 24
    assert warmup_bars("vwap", {"anchor": "W"}, timeframe_ms=4 * HOUR_MS) == 42


def test_result_is_indexed_by_candle_time_with_readable_columns(btc: pd.DataFrame) -> None:
    result = compute(btc, "macd")
    assert list(result.columns) == ["macd", "signal", "hist"]
    assert result.index.name == "timestamp"
    assert result.index.dtype == np.int64
    assert list(result.index) == list(btc["timestamp"])
    assert (result.dtypes == np.float64).all()
    assert result.attrs == {
        "indicator": "macd",
        "params": {"fast": 12, "slow": 26, "signal": 9},
        "units": {"macd": Unit.PRICE, "signal": Unit.PRICE, "hist": Unit.PRICE},
    }
    # Warm-up rows are kept as NaN, not dropped or back-filled.
    assert result["macd"].iloc[:25].isna().all()
    assert result["macd"].iloc[25:].notna().all()


@pytest.mark.parametrize("name", [name for name in INDICATORS if name not in {"obv", "vwap"}])
def test_first_candle_is_warm_up_for_every_windowed_indicator(btc: pd.DataFrame, name: str) -> None:
    result = compute(btc, name)
    assert result.iloc[0].isna().all()
    assert result.iloc[-1].notna().all()
    assert list(result.columns) == list(INDICATORS[name].outputs)


@pytest.mark.parametrize("name", list(INDICATORS))
def test_too_few_candles_gives_nan_rows_not_an_error(btc: pd.DataFrame, name: str) -> None:
    few = compute(btc.iloc[:3], name)
    assert len(few) == 3
    assert list(few.columns) == list(INDICATORS[name].outputs)
    empty = compute(btc.iloc[:0], name)
    assert empty.empty
    assert list(empty.columns) == list(INDICATORS[name].outputs)


def test_supertrend_direction_matches_the_side_of_its_line(btc: pd.DataFrame) -> None:
    result = compute(btc, "supertrend").dropna()
    close = btc.set_index("timestamp")["close"].loc[result.index]
    up = result["direction"] == 1
    assert set(result["direction"].unique()) == {1.0, -1.0}
    assert (result.loc[up, "supertrend"] <= close[up]).all()
    assert (result.loc[~up, "supertrend"] >= close[~up]).all()


# --- parameters ---------------------------------------------------------------------------------


def test_unknown_indicator_suggests_the_close_match_and_lists_the_allowed() -> None:
    with pytest.raises(IndicatorError) as caught:
        validate_params("emaa", {})
    message = str(caught.value)
    assert "'emaa'" in message
    assert message.startswith("unknown indicator 'emaa' (did you mean 'ema'?). Allowed: adx, atr, bbands,")
    assert "rsi" in message
    assert "ichimoku" in message
    assert len(message) < 300
    assert isinstance(caught.value, UsageError)


def test_unknown_indicator_is_rejected_by_compute_too(btc: pd.DataFrame) -> None:
    with pytest.raises(IndicatorError, match="unknown indicator 'talib_ema'"):
        compute(btc, "talib_ema")


def test_indicator_names_ignore_case_and_spaces() -> None:
    assert validate_params(" RSI ", None) == validate_params("rsi", {})


INT_FIELDS = [
    (name, field)
    for name, spec in INDICATORS.items()
    for field, info in spec.params.model_fields.items()
    if info.annotation is int
]


@pytest.mark.parametrize(("name", "field"), INT_FIELDS, ids=[f"{n}.{f}" for n, f in INT_FIELDS])
@pytest.mark.parametrize(("value", "bound"), [(0, "at least"), (100_000, "at most")])
def test_out_of_bounds_length_names_the_parameter_and_its_bound(
    name: str, field: str, value: int, bound: str
) -> None:
    with pytest.raises(IndicatorError) as caught:
        validate_params(name, {field: value})
    message = str(caught.value)
    assert message.startswith(f"{name}: {field} must be {bound} ")
    assert f"(got {value})" in message
    assert f"{field}=" in message, "the message lists what is accepted"


def test_unknown_parameter_is_named_with_a_suggestion() -> None:
    with pytest.raises(IndicatorError) as caught:
        validate_params("rsi", {"lenght": 21})
    assert (
        str(caught.value)
        == "rsi: unknown parameter 'lenght' (did you mean 'length'?). Accepted: length=14 (2..500)"
    )


def test_parameter_of_another_indicator_is_rejected() -> None:
    with pytest.raises(IndicatorError) as caught:
        validate_params("obv", {"length": 14})
    assert str(caught.value) == "obv: unknown parameter 'length'. Accepted: no parameters"


@pytest.mark.parametrize(
    ("name", "params", "fragment"),
    [
        ("macd", {"fast": 26, "slow": 12}, "fast (26) must be below slow (12)"),
        ("psar", {"af0": 0.3, "max_af": 0.2}, "af0 (0.3) must not exceed max_af (0.2)"),
        ("rsi", {"length": 14.5}, "length must be a whole number (got 14.5)"),
        ("bbands", {"std": 0}, "std must be at least 0.1 (got 0)"),
        ("bbands", {"std": "wide"}, "std must be a number (got 'wide')"),
        ("vwap", {"anchor": "H"}, "anchor must be one of 'D', 'W' or 'M' (got 'H')"),
    ],
)
def test_invalid_parameters_say_what_is_wrong(name: str, params: dict[str, Any], fragment: str) -> None:
    with pytest.raises(IndicatorError) as caught:
        validate_params(name, params)
    assert fragment in str(caught.value)


def test_params_that_are_not_an_object_are_rejected() -> None:
    with pytest.raises(IndicatorError, match="rsi: params must be an object"):
        validate_params("rsi", [14])  # type: ignore[arg-type]  # what a confused model might send


def test_defaults_follow_the_library_conventions() -> None:
    assert label("rsi") == "rsi(length=14)"
    assert label("macd") == "macd(fast=12, slow=26, signal=9)"
    assert label("bbands") == "bbands(length=20, std=2.0)"
    assert label("atr") == "atr(length=14)"
    assert label("adx") == "adx(length=14)"
    assert label("stoch") == "stoch(k=14, d=3, smooth_k=3)"
    assert label("ema") == "ema(length=10)"
    assert label("ema", {"length": "20"}) == "ema(length=20)"
    assert label("sma", {"length": 50.0}) == "sma(length=50)"


def test_validated_params_can_be_passed_back(btc: pd.DataFrame) -> None:
    params = validate_params("rsi", {"length": 21})
    assert validate_params("rsi", params) is params
    pd.testing.assert_frame_equal(compute(btc, "rsi", params), compute(btc, "rsi", {"length": 21}))


def test_catalog_has_one_line_per_indicator_with_its_defaults() -> None:
    lines = catalog().splitlines()
    assert len(lines) == len(INDICATORS)
    assert "macd(fast=12 (2..500), slow=26 (2..500), signal=9 (2..500)): MACD" in catalog()
    assert all(len(line) < 200 for line in lines)


def test_every_spec_says_whether_it_is_in_price_units() -> None:
    assert INDICATORS["ema"].in_price_units
    assert INDICATORS["ichimoku"].in_price_units
    assert not INDICATORS["rsi"].in_price_units
    assert not INDICATORS["supertrend"].in_price_units
    assert INDICATORS["supertrend"].outputs["supertrend"] is Unit.PRICE
    assert all(spec.description and "\n" not in spec.description for spec in INDICATORS.values())


# --- rounding and summaries ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("price", "decimals"),
    [(35_123.4567, 2), (2_345.6, 2), (250.0, 2), (19.53, 3), (1.9534, 4), (0.5, 5), (0.00001234, 9)],
)
def test_price_decimals_follow_the_price_scale(price: float, decimals: int) -> None:
    assert price_decimals(price) == decimals


def test_round_value_keeps_about_five_significant_digits() -> None:
    assert round_value(35_123.4567, 35_000.0) == 35_123.46
    assert round_value(1.95344, 1.9) == 1.9534
    assert round_value(0.0000123456, 0.00001234) == 0.000012346
    assert math.isnan(round_value(math.nan, 100.0))
    assert math.copysign(1.0, round_value(-0.0001, 35_000.0)) == 1.0


@pytest.mark.parametrize("price", [0.0, -1.0, math.nan, math.inf])
def test_reference_price_must_be_a_positive_number(price: float) -> None:
    with pytest.raises(ValueError, match="reference price"):
        price_decimals(price)


def test_summary_is_a_compact_rounded_table(btc: pd.DataFrame) -> None:
    text = summarize(
        compute(btc, "macd"), 10, reference_price=float(btc["close"].iloc[-1]), timeframe_ms=HOUR_MS
    )
    lines = text.splitlines()
    assert len(text) < 600
    assert len(lines) == 11
    assert lines[0].split() == ["time", "macd", "signal", "hist"]
    last_time = pd.Timestamp(int(btc["timestamp"].iloc[-1]), unit="ms").strftime("%Y-%m-%dT%H:%MZ")
    assert lines[-1].startswith(last_time)
    for line in lines[1:]:
        time, *values = line.split()
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\dZ", time)
        assert all(re.fullmatch(r"-?\d+\.\d\d", value) for value in values), line


def test_summary_rounds_small_prices_to_significant_digits_and_oscillators_to_two() -> None:
    shib = MARKETS["shib"]()
    price = float(shib["close"].iloc[-1])
    bands = summarize(compute(shib, "bbands"), 3, price).splitlines()
    assert bands[0].split() == ["time", "upper", "middle", "lower", "bandwidth", "percent_b"]
    for line in bands[1:]:
        _, upper, middle, lower, bandwidth, percent_b = line.split()
        assert all(re.fullmatch(r"0\.0000\d{5}", value) for value in (upper, middle, lower)), line
        assert all(re.fullmatch(r"-?\d+\.\d\d", value) for value in (bandwidth, percent_b)), line


def test_summary_shows_warm_up_as_na_and_directions_as_integers(btc: pd.DataFrame) -> None:
    text = summarize(compute(btc.iloc[:12], "psar"), 12, 35_000.0, timeframe_ms=HOUR_MS)
    rows = text.splitlines()
    assert rows[1].split()[1:] == ["n/a", "n/a"]
    assert all(line.split()[2] in {"1", "-1"} for line in rows[2:])


def test_summary_rows_are_json_ready(btc: pd.DataFrame) -> None:
    rows = summary_rows(compute(btc.iloc[:20], "supertrend"), 20, 35_000.0, timeframe_ms=HOUR_MS)
    assert len(rows) == 20
    assert rows[0] == {
        "time": "2021-03-01T00:00Z",
        "timestamp": START_MS,
        "supertrend": None,
        "direction": None,
    }
    assert isinstance(rows[-1]["direction"], int)
    assert rows[-1]["supertrend"] == round(rows[-1]["supertrend"], 2)
    json.dumps(rows, allow_nan=False)


def test_daily_candles_show_dates_only() -> None:
    daily = make_candles(60, seed=4, timeframe_ms=DAY_MS)
    text = summarize(compute(daily, "rsi"), 2, 30_000.0, timeframe_ms=DAY_MS)
    assert text.splitlines()[-1].split()[0] == "2021-04-29"


def test_obv_is_rounded_to_significant_digits_of_its_own_scale(btc: pd.DataFrame) -> None:
    rows = summary_rows(compute(btc, "obv"), 5, 35_000.0)
    values = [row["obv"] for row in rows]
    largest = max(abs(value) for value in values)
    decimals = max(0, 5 - math.floor(math.log10(largest)))
    assert all(value == round(value, decimals) for value in values)


def test_lookback_below_one_is_an_error(btc: pd.DataFrame) -> None:
    with pytest.raises(IndicatorError, match="lookback must be at least 1"):
        summarize(compute(btc, "rsi"), 0, 35_000.0)


# --- the dependency boundary --------------------------------------------------------------------


def test_importing_the_bridge_does_not_import_pandas_ta() -> None:
    code = "import sys, rez_cli.indicators; sys.exit('pandas_ta_classic' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
