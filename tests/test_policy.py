from __future__ import annotations

import math

import pytest

from rez_cli.decision import ModelAnswer
from rez_cli.policy import evaluate, position_size_pct
from rez_cli.settings import load_profile

LAST = 30_000.0


@pytest.fixture(scope="module")
def moderate():  # type: ignore[no-untyped-def]
    return load_profile("moderate").value


def answer(**changes: object) -> ModelAnswer:
    base: dict[str, object] = {
        "action": "buy",
        "entry_price": 30_000,
        "tp_price": 31_000,
        "sl_price": 29_500,
        "leverage": 2,
        "confidence": 0.6,
        "rationale": "r",
    }
    base.update(changes)
    return ModelAnswer.model_validate(base)


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"tp_price": 29_900}, "tp_not_above_entry"),
        ({"action": "sell", "tp_price": 30_500, "sl_price": 30_400}, "tp_not_below_entry"),
        ({"sl_price": 30_100}, "sl_wrong_side"),
        ({"action": "sell", "tp_price": 29_000, "sl_price": 29_900}, "sl_wrong_side"),
        ({"sl_price": None}, "stop_loss_required"),
        ({"tp_price": None}, "take_profit_required"),
        ({"entry_price": None}, "entry_price_required"),
        ({"leverage": 6}, "leverage_above_profile"),
        ({"leverage": 0.5}, "leverage_below_one"),
        ({"tp_price": 30_600}, "reward_risk_below_profile"),
        ({"entry_price": 30_400, "tp_price": 31_500, "sl_price": 29_900}, "entry_too_far_from_market"),
        ({"tp_price": math.inf}, "non_finite_number"),
        ({"confidence": math.nan}, "non_finite_number"),
        ({"entry_price": -1}, "non_positive_price"),
        ({"leverage": 5, "sl_price": 23_000, "tp_price": 42_000}, "stop_beyond_liquidation"),
    ],
)
def test_each_rule_names_its_failure(moderate, changes: dict[str, object], code: str) -> None:  # type: ignore[no-untyped-def]
    verdict = evaluate(answer(**changes), moderate, LAST)
    assert verdict.error == code
    assert verdict.size_pct == 0
    assert verdict.checks[-1].rule == code
    assert not verdict.checks[-1].passed


def test_action_not_allowed(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "longonly.toml"
    path.write_text(
        "max_leverage = 3\nrisk_per_trade_pct = 1\nmax_position_pct = 20\nmin_reward_risk = 1\n"
        "max_entry_deviation_pct = 1\nallowed_actions = ['buy', 'hold']\n"
    )
    profile = load_profile(str(path)).value
    verdict = evaluate(answer(action="sell", tp_price=29_000, sl_price=30_500), profile, LAST)
    assert verdict.error == "action_not_allowed"


def test_valid_buy_is_sized_from_risk_and_stop(moderate) -> None:  # type: ignore[no-untyped-def]
    verdict = evaluate(answer(leverage=4), moderate, LAST)
    assert verdict.passed
    assert verdict.reward_risk == 2
    # 1% risk over a 1/60 stop at 4x: 1 / (4 * 0.016667) = 15% of equity.
    assert verdict.size_pct == pytest.approx(15.0)


def test_size_is_capped_by_the_profile(moderate) -> None:  # type: ignore[no-untyped-def]
    assert position_size_pct(moderate, 30_000, 29_990, 1) == 25


def test_a_hold_passes_without_prices(moderate) -> None:  # type: ignore[no-untyped-def]
    verdict = evaluate(ModelAnswer(action="hold"), moderate, LAST)
    assert verdict.passed
    assert verdict.size_pct == 0
