"""A repair's prices must be ones the model saw or wrote: the one check the cycle and replay share."""

from __future__ import annotations

from rez_cli.decision.grounding import invented_prices
from rez_cli.decision.model import ModelAnswer


def _answer(entry: float, tp: float, sl: float | None) -> ModelAnswer:
    return ModelAnswer(action="buy", entry_price=entry, tp_price=tp, sl_price=sl, leverage=2, confidence=0.6)


def test_prices_read_anywhere_in_what_the_model_saw_are_grounded() -> None:
    seen = ["I would buy near 35,123.40", "ATR14 | 412.5", "resistance at 36000."]
    assert invented_prices(_answer(35_123.4, 36_000.0, None), seen) == []


def test_a_price_written_nowhere_is_named() -> None:
    seen = ["buy at 35123.4, target 36000", "stop under the low"]
    assert invented_prices(_answer(35_123.4, 36_000.0, 34_500.0), seen) == ["sl_price=34500.0"]


def test_nothing_seen_grounds_nothing() -> None:
    assert invented_prices(_answer(100.0, 104.0, 98.0), []) == [
        "entry_price=100.0",
        "tp_price=104.0",
        "sl_price=98.0",
    ]
