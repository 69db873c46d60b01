"""How numbers read: prices at their instrument's precision, signed changes, shares, JSON without NaN,
and the compact JSON the journal writes."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rez_cli.formatting import compact_json, json_ready, price, share, signed_pct


@pytest.mark.parametrize(
    ("value", "reference", "shown"),
    [
        (35_123.4567, 35_000.0, "35,123.46"),
        (1.95344, None, "1.9534"),
        (0.0000123456, 0.00001234, "0.000012346"),
        # An ATR or a level far below the price keeps the price's decimals, not its own.
        (12.3456789, 35_000.0, "12.35"),
        # A tiny negative rounds to zero without a sign: "-0.00" would read as a level below zero.
        (-0.001, 100.0, "0.00"),
    ],
)
def test_a_price_reads_at_its_precision(value: float, reference: float | None, shown: str) -> None:
    assert price(value, reference) == shown


def test_a_missing_value_says_so() -> None:
    assert price(None, 100.0) == "n/a"
    assert price(None, missing="none") == "none"
    assert signed_pct(None) == "n/a"
    assert share(None) == "n/a"


def test_changes_are_signed_and_shares_are_percentages() -> None:
    assert signed_pct(1.25) == "+1.25%"
    assert signed_pct(-0.4) == "-0.40%"
    assert signed_pct(0.01234, 3) == "+0.012%"
    assert share(0.375) == "37.5%"
    assert share(1.0) == "100.0%"


def test_json_ready_output_has_no_nan_or_infinity() -> None:
    value = {"sharpe": math.nan, "curve": [1.0, math.inf, (2.0, -math.inf)], "trades": 3, "name": "x"}
    ready = json_ready(value)
    assert ready == {"sharpe": None, "curve": [1.0, None, [2.0, None]], "trades": 3, "name": "x"}
    assert json.loads(json.dumps(ready, allow_nan=False)) == ready


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


@given(_JSON)
def test_compact_json_is_what_json_writes_read_back_and_refuses_what_json_refuses(value: object) -> None:
    """Text, NaN and infinities among it (words "NaN" and "Infinity" in strings too), lone surrogates."""
    try:
        expected = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except ValueError:
        assert compact_json(value) is None
        return
    written = compact_json(value)
    assert written is not None
    # The same values read back, to the bit (-0.0 and 0.0 differ), but for the spelling of some
    # numbers (1e-05, 0.00001).
    assert json.dumps(json.loads(written)) == json.dumps(json.loads(expected))


def test_compact_json_writes_text_as_it_is_and_no_nan_even_beside_its_name() -> None:
    assert compact_json({"a": "é NaN Infinity", "b": [1, 2.5, None, True]}) == (
        '{"a":"é NaN Infinity","b":[1,2.5,null,true]}'
    )
    assert compact_json({"x": "NaN", "y": math.nan}) is None
    assert compact_json([-math.inf]) is None
    assert compact_json({"model said": "\ud800"}) == '{"model said":"\ud800"}'


def test_compact_json_of_a_value_that_may_hold_anything_is_json_s_own() -> None:
    """A plugin mode's payload: keys that are not strings, bytes and sets are json's to judge."""
    assert compact_json({None: 1}, own=False) == '{"null":1}'
    assert compact_json({"raw": b"x"}, own=False) is None
    assert compact_json({"tags": {1, 2}}, own=False) is None
    assert compact_json({"ok": [1.5, "é"]}, own=False) == '{"ok":[1.5,"é"]}'
