"""The risk profile's hard limits, applied to what the model answered.

Each rule has a stable code. The first rule broken turns the answer into a hold with that code; the
verdict keeps every check so the trace can show why. Nothing is fixed up silently: the only value
Rez adjusts is ``confidence``, clipped to [0, 1] as the decision contract says, and ``size_pct`` is
Rez's own computation, never the model's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from rez_cli.decision import ModelAnswer
from rez_cli.settings import RiskProfile


@dataclass(frozen=True)
class Check:
    rule: str
    passed: bool
    detail: str


@dataclass(frozen=True)
class Verdict:
    """The outcome of the policy on one answer."""

    error: str | None
    detail: str | None
    size_pct: float
    reward_risk: float | None
    checks: list[Check] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.error is None


def position_size_pct(profile: RiskProfile, entry: float, stop: float | None, leverage: float) -> float:
    """Share of equity to commit so that hitting the stop loses ``risk_per_trade_pct`` of equity.

    The loss at the stop is size × leverage × stop distance; without a stop the whole position is at
    risk. Never above ``max_position_pct``.
    """
    stop_fraction = abs(entry - stop) / entry if stop is not None else 1.0
    if stop_fraction <= 0:
        return 0.0
    size = profile.risk_per_trade_pct / (leverage * stop_fraction)
    return round(min(size, profile.max_position_pct), 4)


def reward_risk(entry: float, tp: float | None, sl: float | None) -> float | None:
    if tp is None or sl is None or entry == sl:
        return None
    return abs(tp - entry) / abs(entry - sl)


def evaluate(answer: ModelAnswer, profile: RiskProfile, last_price: float) -> Verdict:
    """Check an answer against the profile; the first broken rule names the hold."""
    checks: list[Check] = []

    def check(rule: str, passed: bool, detail: str) -> bool:
        checks.append(Check(rule, passed, detail))
        return passed

    def fail() -> Verdict:
        broken = checks[-1]
        return Verdict(broken.rule, broken.detail, 0.0, None, checks)

    if not check(
        "action_not_allowed",
        answer.action in profile.allowed_actions,
        f"{answer.action!r} is not in the profile's allowed actions {profile.allowed_actions}",
    ):
        return fail()
    numbers = {
        "entry_price": answer.entry_price,
        "tp_price": answer.tp_price,
        "sl_price": answer.sl_price,
        "leverage": answer.leverage,
        "confidence": answer.confidence,
    }
    bad = [name for name, value in numbers.items() if value is not None and not math.isfinite(value)]
    if not check("non_finite_number", not bad, f"{', '.join(bad)} must be finite numbers"):
        return fail()
    if answer.action == "hold":
        return Verdict(None, None, 0.0, None, checks)

    entry, tp, sl, leverage = answer.entry_price, answer.tp_price, answer.sl_price, answer.leverage
    if not check("entry_price_required", entry is not None, f"a {answer.action} needs an entry price"):
        return fail()
    assert entry is not None
    prices = {"entry_price": entry, "tp_price": tp, "sl_price": sl}
    not_positive = [name for name, value in prices.items() if value is not None and value <= 0]
    if not check("non_positive_price", not not_positive, f"{', '.join(not_positive)} must be above zero"):
        return fail()
    if not check(
        "stop_loss_required",
        sl is not None or not profile.require_stop_loss,
        f"the {profile.name} profile requires a stop loss",
    ):
        return fail()
    if not check(
        "take_profit_required",
        tp is not None or profile.min_reward_risk <= 0,
        f"the {profile.name} profile needs a take profit to check reward/risk",
    ):
        return fail()
    if answer.action == "buy":
        if tp is not None and not check(
            "tp_not_above_entry", tp > entry, f"buy: tp {tp} must be above entry {entry}"
        ):
            return fail()
        if sl is not None and not check(
            "sl_wrong_side", sl < entry, f"buy: sl {sl} must be below entry {entry}"
        ):
            return fail()
    else:
        if tp is not None and not check(
            "tp_not_below_entry", tp < entry, f"sell: tp {tp} must be below entry {entry}"
        ):
            return fail()
        if sl is not None and not check(
            "sl_wrong_side", sl > entry, f"sell: sl {sl} must be above entry {entry}"
        ):
            return fail()
    if not check("leverage_below_one", leverage >= 1, f"leverage {leverage} is below 1"):
        return fail()
    if not check(
        "leverage_above_profile",
        leverage <= profile.max_leverage,
        f"leverage {leverage} is above the profile's {profile.max_leverage:g}",
    ):
        return fail()
    if sl is not None:
        stop_pct = abs(entry - sl) / entry * 100
        liquidation_pct = 100 / leverage
        if not check(
            "stop_beyond_liquidation",
            stop_pct < liquidation_pct,
            f"a {stop_pct:.2f}% stop at {leverage:g}x is past liquidation (~{liquidation_pct:.2f}%)",
        ):
            return fail()
    ratio = reward_risk(entry, tp, sl)
    if ratio is not None and not check(
        "reward_risk_below_profile",
        ratio >= profile.min_reward_risk - 1e-9,
        f"reward/risk {ratio:.2f} is below the profile's {profile.min_reward_risk:g}",
    ):
        return fail()
    deviation = abs(entry / last_price - 1) * 100
    if not check(
        "entry_too_far_from_market",
        deviation <= profile.max_entry_deviation_pct + 1e-9,
        f"entry {entry} is {deviation:.2f}% from the last close {last_price}, "
        f"more than the profile's {profile.max_entry_deviation_pct:g}%",
    ):
        return fail()
    return Verdict(None, None, position_size_pct(profile, entry, sl, leverage), ratio, checks)
