"""How numbers read: prices at their instrument's precision, signed changes, shares, JSON without NaN."""

from __future__ import annotations

import json
import math

import pytest

from rez_cli.formatting import json_ready, price, share, signed_pct


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
