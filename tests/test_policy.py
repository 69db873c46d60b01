from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from rez_cli.config.settings import load_profile
from rez_cli.decision.model import ModelAnswer, answer_problem
from rez_cli.decision.policy import evaluate, position_size_pct

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
        ({"leverage": 6}, "leverage_above_profile"),
        ({"leverage": 0.5}, "leverage_below_one"),
        ({"tp_price": 30_600}, "reward_risk_below_profile"),
        ({"entry_price": 30_400, "tp_price": 31_500, "sl_price": 29_900}, "entry_too_far_from_market"),
        ({"tp_price": math.inf}, "non_finite_number"),
        ({"leverage": math.nan}, "non_finite_number"),
        ({"tp_price": 1e308}, "tp_too_far_from_market"),
        ({"tp_price": 30_000 * 1.51}, "tp_too_far_from_market"),
        ({"sl_price": 29_999.999}, "sl_too_close_to_entry"),
        ({"action": "sell", "tp_price": 29_000, "sl_price": 1e308}, "sl_too_far_from_market"),
        ({"leverage": 1e308}, "leverage_above_profile"),
        ({"entry_price": -1}, "non_positive_price"),
    ],
)
def test_each_rule_names_its_failure(moderate, changes: dict[str, object], code: str) -> None:  # type: ignore[no-untyped-def]
    verdict = evaluate(answer(**changes), moderate, LAST)
    assert verdict.error == code
    assert verdict.size_pct == 0
    assert verdict.checks[-1].rule == code
    assert not verdict.checks[-1].passed


def test_a_stop_past_liquidation_is_refused() -> None:
    aggressive = load_profile("aggressive").value
    verdict = evaluate(answer(leverage=10, sl_price=26_700, tp_price=34_000), aggressive, LAST)
    assert verdict.error == "stop_beyond_liquidation"
    assert evaluate(answer(leverage=5, sl_price=26_700, tp_price=34_000), aggressive, LAST).passed


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


def test_a_2_00r_trade_meets_a_2r_profile(moderate) -> None:  # type: ignore[no-untyped-def]
    """Levels rounded to the tick leave the exact ratio a hair under 2; a trader reads 2.00R."""
    strict = moderate.model_copy(update={"min_reward_risk": 2.0})
    verdict = evaluate(answer(entry_price=30_000, sl_price=29_500.1, tp_price=30_999.7), strict, LAST)
    assert verdict.reward_risk == pytest.approx(1.9998, abs=1e-4)
    assert verdict.passed
    below = evaluate(answer(entry_price=30_000, sl_price=29_500, tp_price=30_990), strict, LAST)
    assert below.error == "reward_risk_below_profile"


def test_levels_are_bounded_in_atr_multiples_where_the_profile_says_so(moderate) -> None:  # type: ignore[no-untyped-def]
    profile = moderate.model_copy(update={"max_target_atr": 10.0, "max_stop_atr": 4.0})
    # ATR 100: the 1,000 target is exactly 10 ATR away, the 500 stop 5 ATR.
    verdict = evaluate(answer(), profile, LAST, atr=100.0)
    assert verdict.error == "sl_too_far_from_market"
    assert "5.0 ATR" in (verdict.detail or "")
    assert evaluate(answer(sl_price=29_600), profile, LAST, atr=100.0).passed
    assert evaluate(answer(), profile, LAST, atr=None).passed  # no ATR known: only the % bounds


@pytest.mark.parametrize(
    ("missing", "require_stop", "problem"),
    [
        ("entry_price", True, "a buy needs entry_price"),
        ("tp_price", True, "a buy needs tp_price"),
        ("leverage", True, "a buy needs leverage"),
        ("confidence", True, "a buy needs confidence"),
        ("sl_price", True, "a buy needs sl_price"),
        ("sl_price", False, None),
    ],
)
def test_a_trade_missing_a_field_goes_to_repair(
    missing: str, require_stop: bool, problem: str | None
) -> None:
    incomplete = answer(**{missing: None})
    assert answer_problem(incomplete, require_stop=require_stop, truncated=False) == problem


def test_a_trade_cut_off_by_the_output_limit_goes_to_repair_and_a_hold_stands() -> None:
    assert "cut off" in (answer_problem(answer(), require_stop=True, truncated=True) or "")
    hold = ModelAnswer(action="hold")
    assert answer_problem(hold, require_stop=True, truncated=True) is None


def test_the_policy_never_defaults_an_unstated_leverage(moderate) -> None:  # type: ignore[no-untyped-def]
    assert evaluate(answer(leverage=None), moderate, LAST).error == "trade_incomplete"


def test_a_hold_needs_no_levels_leverage_or_confidence() -> None:
    hold = ModelAnswer.model_validate({"action": "hold", "rationale": "chop"})
    assert (hold.leverage_or_one, hold.confidence_or_zero) == (1.0, 0.0)


@pytest.mark.parametrize(
    ("written", "fraction", "percent"),
    [
        (0.75, 0.75, None),
        (1, 1.0, None),
        (75, 0.75, 75),
        (100, 1.0, 100),
        ("80%", 0.8, 80.0),
        ("0.4", 0.4, None),
    ],
)
def test_confidence_on_a_0_to_100_scale_is_a_percent(
    written: object, fraction: float, percent: object
) -> None:
    parsed = answer(confidence=written)
    assert parsed.confidence == pytest.approx(fraction)
    assert parsed.confidence_percent == percent
    assert "confidence_percent" not in parsed.model_dump()


@pytest.mark.parametrize("written", [-0.1, 100.5, 1e308, math.nan, math.inf, "high", True])
def test_confidence_outside_both_scales_is_invalid(written: object) -> None:
    with pytest.raises(ValidationError, match="confidence"):
        answer(confidence=written)


def test_a_model_cannot_write_the_percent_note_itself() -> None:
    assert answer(confidence=0.5, confidence_percent=50).confidence_percent is None


_ANY_NUMBER = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=20_000, max_value=40_000),
    st.sampled_from([0.0, -1.0, 1e-300, 1e308, 30_000.0, 29_999.999, 30_000.001]),
)


@settings(max_examples=400, deadline=None)
@given(
    action=st.sampled_from(["buy", "sell"]),
    entry=_ANY_NUMBER,
    tp=_ANY_NUMBER,
    sl=st.one_of(st.none(), _ANY_NUMBER),
    leverage=_ANY_NUMBER,
    atr=st.one_of(st.none(), _ANY_NUMBER),
)
def test_no_absurd_number_becomes_a_trade(
    action: str, entry: float, tp: float, sl: float | None, leverage: float, atr: float | None
) -> None:
    """Whatever numbers a model writes, a passing trade has finite levels within the profile's range."""
    profile = load_profile("aggressive").value.model_copy(update={"require_stop_loss": sl is not None})
    raw = {"action": action, "entry_price": entry, "tp_price": tp, "sl_price": sl, "leverage": leverage}
    verdict = evaluate(ModelAnswer.model_validate({**raw, "confidence": 0.5}), profile, LAST, atr=atr)
    if not verdict.passed:
        assert verdict.size_pct == 0
        return
    levels = [value for value in (entry, tp, sl) if value is not None]
    assert all(math.isfinite(value) and value > 0 for value in levels)
    assert abs(entry / LAST - 1) * 100 <= profile.max_entry_deviation_pct + 1e-6
    assert abs(tp / LAST - 1) * 100 <= profile.max_target_distance_pct + 1e-6
    if sl is not None:
        assert abs(sl / LAST - 1) * 100 <= profile.max_stop_distance_pct + 1e-6
        assert abs(sl / entry - 1) * 100 >= profile.min_stop_distance_pct - 1e-6
    assert 1 <= leverage <= profile.max_leverage
    assert math.isfinite(verdict.size_pct)
    assert 0 < verdict.size_pct <= profile.max_position_pct
    assert verdict.reward_risk is None or math.isfinite(verdict.reward_risk)


def test_a_stop_between_the_naive_and_the_real_liquidation_is_refused() -> None:
    """At 10x with a 0.5% maintenance margin a long is liquidated 9.55% under its entry, not 10%."""
    aggressive = load_profile("aggressive").value
    tp = 30_000 * 1.13
    assert evaluate(answer(leverage=10, sl_price=30_000 * 0.906, tp_price=tp), aggressive, LAST).passed
    verdict = evaluate(answer(leverage=10, sl_price=30_000 * 0.903, tp_price=tp), aggressive, LAST)
    assert verdict.error == "stop_beyond_liquidation"
    assert "liquidation at 27135.7" in (verdict.detail or "")
    short = answer(action="sell", leverage=10, sl_price=30_000 * 1.097, tp_price=30_000 * 0.87)
    assert evaluate(short, aggressive, LAST).error == "stop_beyond_liquidation"
