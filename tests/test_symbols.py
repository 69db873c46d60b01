"""One canonical spelling per market: what the lock, the journal and every source see."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rez_cli.errors import UsageError
from rez_cli.symbols import MAX_SYMBOL_CHARS, normalize_symbol, normalize_symbols


@pytest.mark.parametrize(
    ("typed", "canonical"),
    [
        ("BTC/USDT", "BTC/USDT"),
        ("btc/usdt", "BTC/USDT"),
        ("  Btc/Usdt\n", "BTC/USDT"),
        ("BTC-USDT", "BTC/USDT"),
        ("btc_usdt", "BTC/USDT"),
        ("BTC/USDT:USDT", "BTC/USDT:USDT"),
        ("eth/usdt:usdt-240927", "ETH/USDT:USDT-240927"),
        ("BTCUSDT", "BTCUSDT"),
        ("1000PEPE/USDT", "1000PEPE/USDT"),
        ("币安人生/USDT", "币安人生/USDT"),
        ("A-B-C", "A-B-C"),  # more than one separator: no guess at which one splits base and quote
    ],
)
def test_spellings_of_one_market_are_one_symbol(typed: str, canonical: str) -> None:
    assert normalize_symbol(typed) == canonical


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "BTC USDT",
        "BTC/\nUSDT",
        "BTC/USDT\x00",
        "\x1b[31mBTC",
        "BTC/USDT\u202e",
        "///",
        "-",
        "'",
        "x" * 65,
    ],
)
def test_text_that_names_no_market_is_a_usage_error(text: str) -> None:
    with pytest.raises(UsageError) as caught:
        normalize_symbol(text)
    assert "\n" not in caught.value.one_line()


def test_a_list_is_put_in_canonical_form_once_each() -> None:
    assert normalize_symbols(["btc/usdt", "ETH/USDT", "BTC-USDT", "BTC/USDT"]) == ["BTC/USDT", "ETH/USDT"]
    with pytest.raises(UsageError):
        normalize_symbols([])


@given(st.text(max_size=80))
def test_any_text_is_a_canonical_symbol_or_a_one_line_usage_error(text: str) -> None:
    try:
        symbol = normalize_symbol(text)
    except UsageError as error:
        refused = error.one_line()
    else:
        refused = None
    if refused is not None:
        assert "\n" not in refused
        return
    assert normalize_symbol(symbol) == symbol  # canonical: normalising again changes nothing
    assert 0 < len(symbol) <= MAX_SYMBOL_CHARS * 2  # upper() may lengthen ("ß" is "SS")
    assert not any(char.isspace() or not char.isprintable() for char in symbol)
