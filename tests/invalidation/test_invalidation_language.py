"""The invalidation parser: what it reads, what it refuses and how it says so, and that it never breaks."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rez_cli.errors import RezError
from rez_cli.invalidation import (
    MAX_CHARS,
    MAX_TERMS,
    Condition,
    InvalidationError,
    Number,
    Series,
    Term,
    invalidation_problem,
    parse_invalidation,
    parse_optional,
    single_output_indicators,
)

# --- what it reads -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "canonical"),
    [
        ("close_1h < 61200", "close_1h < 61200"),
        ("rsi_14_4h > 75", "rsi_14_4h > 75"),
        ("ema_20_1h crosses_below ema_50_1h", "ema_20_1h crosses_below ema_50_1h"),
        ("close_1h < 61200 or rsi_14_4h > 75", "close_1h < 61200 or rsi_14_4h > 75"),
        # Omitted trailing parameters take their defaults, and are written out.
        ("rsi_4h > 75", "rsi_14_4h > 75"),
        ("atr_1h > 900", "atr_14_1h > 900"),
        # Case and whitespace are free; numbers are spelt the shortest way that reads back the same.
        ("  CLOSE_1H<=6.12e4   AND  Low_15m>=0.5 ", "close_1h <= 61200 and low_15m >= 0.5"),
        ("volume_1d >= +1e3", "volume_1d >= 1000"),
        ("high_1w crosses_above 1.25", "high_1w crosses_above 1.25"),
        ("61200 > close_1h", "61200 > close_1h"),
        ("close_4h < -0", "close_4h < 0"),
        ("sma_200_1d crosses_above close_1d", "sma_200_1d crosses_above close_1d"),
        ("vwap_W_1h < close_1h", "vwap_w_1h < close_1h"),
        ("obv_1h > 0", "obv_1h > 0"),
    ],
)
def test_a_condition_reads_and_is_spelt_canonically(written: str, canonical: str) -> None:
    condition = parse_invalidation(written)
    assert condition.text == canonical
    assert parse_invalidation(canonical) == condition


def test_and_binds_tighter_than_or() -> None:
    condition = parse_invalidation("close_1h < 1 and rsi_1h > 2 or close_4h > 3")
    close_1h, rsi_1h, close_4h = (
        Series("close", (), "1h"),
        Series("rsi", (14,), "1h"),
        Series("close", (), "4h"),
    )
    assert condition == Condition(
        (
            (Term(close_1h, "<", Number(1.0)), Term(rsi_1h, ">", Number(2.0))),
            (Term(close_4h, ">", Number(3.0)),),
        )
    )


def test_a_condition_lists_what_must_be_computed_and_how_many_candles() -> None:
    condition = parse_invalidation("close_1h < 61200 or rsi_14_4h > 75 or ema_20_1h crosses_below close_1h")
    assert condition.timeframes == ("1h", "4h")
    assert [series.text for series in condition.series] == ["close_1h", "rsi_14_4h", "ema_20_1h"]
    # rsi 14: 14 + 7 x 14 settling candles, and the candle itself; ema 20: 19 + ceil(3.5 x 21).
    assert condition.warmup_bars("4h") == 14 + 98 + 1
    assert condition.warmup_bars("1h") == 19 + 74 + 1
    assert condition.warmup_bars("1d") == 0


def test_a_condition_is_hashable_and_equal_however_spelt() -> None:
    assert {parse_invalidation("RSI_4h > 75"), parse_invalidation("rsi_14_4h>75.0")} == {
        parse_invalidation("rsi_14_4h > 75")
    }


def test_only_single_output_indicators_may_be_named() -> None:
    assert single_output_indicators() == (
        "ema",
        "sma",
        "wma",
        "rsi",
        "atr",
        "cci",
        "mfi",
        "obv",
        "vwap",
        "roc",
        "willr",
    )


# --- what it refuses, and how it says so -------------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "message"),
    [
        (
            "foo_14_1h > 3",
            "unknown indicator 'foo' at 'foo_14_1h'; known: open, high, low, close, volume, "
            "ema, sma, wma, rsi, atr, cci, mfi, obv, vwap, roc, willr",
        ),
        ("close_1h 61200", "expected a comparator after 'close_1h', found '61200'"),
        ("close_1h", "expected a comparator after 'close_1h', found the end"),
        ("close_1h below 61200", "expected a comparator after 'close_1h', found 'below'"),
        (
            "close_1h crosses below 3",
            "expected a comparator after 'close_1h', found 'crosses' (crosses_above or crosses_below)",
        ),
        ("close_1h < 61,200", "thousands separator in '61,200': write 61200"),
        ("close_1h < 1,234,567.5", "thousands separator in '1,234,567.5': write 1234567.5"),
        ("rsi_14_1h > 75%", "percent sign at position 14: write plain numbers (rsi_14_1h > 75, not 75%)"),
        ("close_1h == 3", "'==' is not a comparator: use <, <=, >, >=, crosses_above or crosses_below"),
        ("close_1h < 1e999", "number '1e999' is not finite"),
        ("close_1h <", "expected a number or a series after '<', found the end"),
        ("close_1h < 3 or", "expected a number or a series after 'or', found the end"),
        ("close_1h < 3 rsi_1h > 4", "expected 'and' or 'or' before 'rsi_1h'"),
        (
            "(close_1h < 3)",
            "parenthesis at position 0: conditions have no brackets; 'and' binds tighter than 'or'",
        ),
        ("close_1h < $3", "unexpected character '$' at position 11"),
        ("close < 3", "'close' needs a timeframe at its end, e.g. close_1h"),
        ("close_1x < 3", "unknown timeframe '1x' in 'close_1x' (use 5m, 15m, 1h, 4h, 1d...)"),
        ("close_14_1h < 3", "'close_14_1h': a price takes no parameters, write close_1h"),
        ("1 < 2", "'1 < 2' compares two numbers: compare a series such as close_1h"),
        (
            "macd_1h > 0",
            "macd has several outputs (macd, signal, hist) and cannot be compared at 'macd_1h'; "
            "single-output indicators: ema, sma, wma, rsi, atr, cci, mfi, obv, vwap, roc, willr",
        ),
        (
            "rsi_1_4h > 30",
            "bad parameter in 'rsi_1_4h': rsi: length must be at least 2 (got 1). "
            "Accepted: length=14 (2..500)",
        ),
        ("rsi_14_20_4h > 30", "rsi takes 1 parameter (length), got 2 in 'rsi_14_20_4h'"),
        ("ema_2.5_1h > 1", "length must be a whole number in 'ema_2.5_1h', got '2.5'"),
        ("vwap_x_1h > 1", "anchor must be one of d|w|m in 'vwap_x_1h', got 'x'"),
        (
            "4h close below the EMA20 (61200)",
            "'4h' at position 0 is neither a number nor a series "
            "(a series is written name_timeframe, e.g. close_1h)",
        ),
        ("   ", "the invalidation is empty: write a condition such as close_1h < 61200"),
        ("close_1h < ٣", "unexpected character '٣' at position 11"),
    ],
)
def test_a_bad_condition_says_what_and_where_in_one_line(written: str, message: str) -> None:
    with pytest.raises(InvalidationError) as caught:
        parse_invalidation(written)
    assert caught.value.message == message
    assert "\n" not in caught.value.one_line()
    assert isinstance(caught.value, RezError)


def test_input_from_a_model_is_bounded() -> None:
    with pytest.raises(InvalidationError, match=f"401 characters long; at most {MAX_CHARS}"):
        parse_invalidation("close_1h < 1" + " " * (MAX_CHARS - 11))
    many = " or ".join(["close_1h < 1"] * (MAX_TERMS + 1))
    with pytest.raises(InvalidationError, match=f"more than {MAX_TERMS} comparisons"):
        parse_invalidation(many)
    assert len(parse_invalidation(" or ".join(["close_1h < 1"] * MAX_TERMS)).clauses) == MAX_TERMS


def test_a_long_word_is_quoted_short() -> None:
    with pytest.raises(InvalidationError) as caught:
        parse_invalidation("close_1h < " + "x" * 300 + "_1h")
    assert caught.value.message.count("x") == 80


def test_a_trade_without_a_condition_has_no_problem_and_no_condition() -> None:
    assert invalidation_problem(None) is None
    assert invalidation_problem("  ") is None
    assert parse_optional(None) is None
    assert parse_optional("") is None
    assert invalidation_problem("close_1h < 3") is None
    assert invalidation_problem("close below 3") == "'close' needs a timeframe at its end, e.g. close_1h"


# --- properties --------------------------------------------------------------------------------------


def parse_or_error(text: str) -> Condition | InvalidationError:
    """The condition, or the error it raised: anything else escapes and fails the test."""
    try:
        return parse_invalidation(text)
    except InvalidationError as error:
        return error


_WORDS = st.sampled_from(
    [
        "close_1h",
        "rsi_4h",
        "ema_20_1h",
        "and",
        "or",
        "<",
        "<=",
        ">",
        ">=",
        "crosses_above",
        "crosses_below",
        "61200",
        "-1.5e3",
        "61,200",
        "75%",
        "(",
        ")",
        "macd_1h",
        "foo_1h",
        "vwap_d_15m",
        "==",
        "_",
        "1h",
        ".",
    ]
)


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.text(max_size=80), st.lists(_WORDS, max_size=12).map(" ".join)))
def test_any_text_parses_or_raises_only_an_invalidation_error(text: str) -> None:
    parsed = parse_or_error(text)
    if isinstance(parsed, InvalidationError):
        assert parsed.message
        assert "\n" not in parsed.message
    else:
        assert parse_invalidation(parsed.text) == parsed


_SERIES = st.one_of(
    st.builds(
        lambda price, tf: f"{price}_{tf}",
        st.sampled_from(["open", "high", "low", "close", "volume"]),
        st.sampled_from(["1m", "15m", "1h", "4h", "1d", "1w"]),
    ),
    st.builds(
        lambda name, length, tf: f"{name}_{length}_{tf}",
        st.sampled_from(["ema", "sma", "rsi", "atr", "roc"]),
        st.integers(2, 500),
        st.sampled_from(["5m", "1h", "4h", "1d"]),
    ),
)
_NUMBERS = st.floats(allow_nan=False, allow_infinity=False, width=64).map(repr)
_OPERANDS = st.one_of(_SERIES, _NUMBERS)
_COMPARATOR = st.sampled_from(["<", "<=", ">", ">=", "crosses_above", "crosses_below", "CROSSES_BELOW"])
_TERM = st.builds(lambda left, op, right: f"{left} {op} {right}", _SERIES, _COMPARATOR, _OPERANDS)
_CONDITION = st.lists(st.lists(_TERM, min_size=1, max_size=3).map(" and ".join), min_size=1, max_size=3).map(
    " OR ".join
)


@settings(max_examples=300, deadline=None)
@given(_CONDITION)
def test_a_valid_condition_round_trips_through_its_canonical_text(text: str) -> None:
    condition = parse_or_error(text)
    if isinstance(condition, InvalidationError):
        # Only the bounds may refuse a well-formed condition.
        assert (
            f"more than {MAX_TERMS} comparisons" in condition.message
            or "characters long" in condition.message
        )
        return
    assert parse_invalidation(condition.text) == condition
    assert parse_invalidation(condition.text).text == condition.text
    assert hash(parse_invalidation(condition.text)) == hash(condition)
