"""The risk profile's hard limits, applied to what the model answered.

Each rule has a stable code. The first rule broken turns the answer into a hold with that code; the
verdict keeps every check so the trace can show why. Nothing is fixed up silently: ``size_pct`` is
Rez's own computation, never the model's, and every number that reaches a trade is finite and within
the profile's distance from the market.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from rez_cli.actions import ALWAYS_ALLOWED
from rez_cli.config.settings import RiskProfile
from rez_cli.decision.codes import Hold
from rez_cli.decision.model import ModelAnswer


@dataclass(frozen=True)
class Check:
    rule: Hold
    passed: bool
    detail: str


@dataclass(frozen=True)
class Verdict:
    """The outcome of the policy on one answer."""

    error: Hold | None
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


def liquidation_price(side: int, entry: float, leverage: float, maintenance_margin: float) -> float | None:
    """Where an isolated position opened at ``entry`` is liquidated (Binance's first margin tier).

    The backtest closes positions there; the policy refuses a stop beyond it.

    Args:
        side: +1 long, -1 short.
        entry: the fill price.
        leverage: the notional over the margin.
        maintenance_margin: the maintenance rate as a fraction (0.005 for 0.5%).

    Returns:
        The price, or None for a long no positive price can liquidate (leverage 1 or less).
    """
    if side > 0:
        price = entry * (1 - 1 / leverage) / (1 - maintenance_margin)
        return price if price > 0 else None
    return entry * (1 + 1 / leverage) / (1 + maintenance_margin)


def reward_risk(entry: float, tp: float | None, sl: float | None) -> float | None:
    if tp is None or sl is None or entry == sl:
        return None
    return abs(tp - entry) / abs(entry - sl)


# Reward/risk is compared as a trader reads it, to two decimals: a 2.00R trade whose exact ratio is
# 1.9996 after rounding its levels to the tick is not "below the profile's 2".
REWARD_RISK_TOLERANCE = 0.005


def evaluate(
    answer: ModelAnswer,
    profile: RiskProfile,
    last_price: float,
    *,
    atr: float | None = None,
    position_side: int | None = None,
) -> Verdict:
    """Check an answer against the profile; the first broken rule names the hold.

    Args:
        answer: what the model answered.
        profile: the limits.
        last_price: the last closed price the cycle saw; every level's distance is measured from it.
        atr: ATR 14 of the primary timeframe, for the profile's limits in ATR multiples (skipped
            when unknown).
        position_side: the side of the position open on the symbol (+1 long, -1 short, with an
            order waiting to open one counted as open), or None. ``close`` needs one; a buy or
            sell meeting one is refused unless it adds on the same side and the profile allows it.
    """
    checks: list[Check] = []

    def check(rule: Hold, passed: bool, detail: str) -> bool:
        checks.append(Check(rule, passed, detail))
        return passed

    def fail() -> Verdict:
        broken = checks[-1]
        return Verdict(broken.rule, broken.detail, 0.0, None, checks)

    if not check(
        Hold.ACTION_NOT_ALLOWED,
        answer.action in profile.allowed_actions or answer.action in ALWAYS_ALLOWED,
        f"{answer.action!r} is not in the profile's allowed actions {profile.allowed_actions}",
    ):
        return fail()
    if answer.action == "close":
        if not check(Hold.NO_POSITION, position_side is not None, "close: no position is open"):
            return fail()
        return Verdict(None, None, 0.0, None, checks)
    if position_side is not None and answer.action != "hold":
        held = "a long" if position_side > 0 else "a short"
        adding = (position_side > 0) == (answer.action == "buy")
        if not check(
            Hold.POSITION_OPEN,
            adding and profile.allow_adding,
            f"{answer.action}: {held} is already open "
            + (
                "and the profile does not allow adding (hold keeps it, close ends it)"
                if adding
                else "(close it first: hold keeps it, close ends it)"
            ),
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
    if not check(Hold.NON_FINITE_NUMBER, not bad, f"{', '.join(bad)} must be finite numbers"):
        return fail()
    if answer.action == "hold":
        return Verdict(None, None, 0.0, None, checks)

    unstated = [name for name in ("leverage", "confidence") if getattr(answer, name) is None]
    if not check(Hold.TRADE_INCOMPLETE, not unstated, f"a {answer.action} needs {', '.join(unstated)}"):
        return fail()
    entry, tp, sl = answer.entry_price, answer.tp_price, answer.sl_price
    leverage = answer.leverage_or_one
    if not check(Hold.ENTRY_PRICE_REQUIRED, entry is not None, f"a {answer.action} needs an entry price"):
        return fail()
    assert entry is not None
    prices = {"entry_price": entry, "tp_price": tp, "sl_price": sl}
    not_positive = [name for name, value in prices.items() if value is not None and value <= 0]
    if not check(Hold.NON_POSITIVE_PRICE, not not_positive, f"{', '.join(not_positive)} must be above zero"):
        return fail()
    if not check(
        Hold.STOP_LOSS_REQUIRED,
        sl is not None or not profile.require_stop_loss,
        f"the {profile.name} profile requires a stop loss",
    ):
        return fail()
    if not check(
        Hold.TAKE_PROFIT_REQUIRED,
        tp is not None or profile.min_reward_risk <= 0,
        f"the {profile.name} profile needs a take profit to check reward/risk",
    ):
        return fail()
    if answer.action == "buy":
        if tp is not None and not check(
            Hold.TP_NOT_ABOVE_ENTRY, tp > entry, f"buy: tp {tp:g} must be above entry {entry:g}"
        ):
            return fail()
        if sl is not None and not check(
            Hold.SL_WRONG_SIDE, sl < entry, f"buy: sl {sl:g} must be below entry {entry:g}"
        ):
            return fail()
    else:
        if tp is not None and not check(
            Hold.TP_NOT_BELOW_ENTRY, tp < entry, f"sell: tp {tp:g} must be below entry {entry:g}"
        ):
            return fail()
        if sl is not None and not check(
            Hold.SL_WRONG_SIDE, sl > entry, f"sell: sl {sl:g} must be above entry {entry:g}"
        ):
            return fail()
    deviation = abs(entry / last_price - 1) * 100
    if not check(
        Hold.ENTRY_TOO_FAR_FROM_MARKET,
        deviation <= profile.max_entry_deviation_pct + 1e-9,
        f"entry {entry:g} is {deviation:.2f}% from the last close {last_price:g}, "
        f"more than the profile's {profile.max_entry_deviation_pct:g}%",
    ):
        return fail()
    if tp is not None and not _within_reach(
        check,
        Hold.TP_TOO_FAR_FROM_MARKET,
        "tp",
        tp,
        last_price,
        profile.max_target_distance_pct,
        profile.max_target_atr,
        atr,
    ):
        return fail()
    if sl is not None:
        if not _within_reach(
            check,
            Hold.SL_TOO_FAR_FROM_MARKET,
            "sl",
            sl,
            last_price,
            profile.max_stop_distance_pct,
            profile.max_stop_atr,
            atr,
        ):
            return fail()
        stop_gap_pct = abs(entry - sl) / entry * 100
        if not check(
            Hold.SL_TOO_CLOSE_TO_ENTRY,
            stop_gap_pct >= profile.min_stop_distance_pct - 1e-9,
            f"sl {sl:g} is {stop_gap_pct:.4f}% from entry {entry:g}, closer than the profile's "
            f"{profile.min_stop_distance_pct:g}%",
        ):
            return fail()
    if not check(Hold.LEVERAGE_BELOW_ONE, leverage >= 1, f"leverage {leverage:g} is below 1"):
        return fail()
    if not check(
        Hold.LEVERAGE_ABOVE_PROFILE,
        leverage <= profile.max_leverage,
        f"leverage {leverage:g} is above the profile's {profile.max_leverage:g}",
    ):
        return fail()
    if sl is not None:
        # Measured from the entry asked for: the fill is not known yet, and the backtest checks the
        # stop against liquidation again from the fill.
        side = 1 if answer.action == "buy" else -1
        liquidation = liquidation_price(side, entry, leverage, profile.maintenance_margin_pct / 100)
        stop_pct = abs(entry - sl) / entry * 100
        if liquidation is not None and not check(
            Hold.STOP_BEYOND_LIQUIDATION,
            side * (sl - liquidation) > 0,
            f"a {stop_pct:.2f}% stop at {leverage:g}x is past liquidation at {liquidation:g} "
            f"({abs(entry - liquidation) / entry * 100:.2f}% away with a "
            f"{profile.maintenance_margin_pct:g}% maintenance margin)",
        ):
            return fail()
    ratio = reward_risk(entry, tp, sl)
    if ratio is not None:
        if not check(Hold.NON_FINITE_NUMBER, math.isfinite(ratio), "reward/risk is not a finite number"):
            return fail()
        if not check(
            Hold.REWARD_RISK_BELOW_PROFILE,
            ratio >= profile.min_reward_risk - REWARD_RISK_TOLERANCE,
            f"reward/risk {ratio:.2f} is below the profile's {profile.min_reward_risk:g}",
        ):
            return fail()
    size = position_size_pct(profile, entry, sl, leverage)
    if not check(
        Hold.NON_FINITE_NUMBER,
        math.isfinite(size) and 0 < size <= profile.max_position_pct,
        f"the position size {size:g}% is not a usable share of equity",
    ):
        return fail()
    return Verdict(None, None, size, ratio, checks)


def _within_reach(
    check: Callable[[Hold, bool, str], bool],
    rule: Hold,
    label: str,
    level: float,
    last_price: float,
    max_pct: float,
    max_atr: float | None,
    atr: float | None,
) -> bool:
    """Whether a level is within the profile's distance of the last price, in % and in ATRs."""
    distance = abs(level - last_price)
    distance_pct = distance / last_price * 100
    if not check(
        rule,
        distance_pct <= max_pct + 1e-9,
        f"{label} {level:g} is {distance_pct:.2f}% from the last close {last_price:g}, "
        f"more than the profile's {max_pct:g}%",
    ):
        return False
    if max_atr is None or atr is None or not math.isfinite(atr) or atr <= 0:
        return True
    return check(
        rule,
        distance <= max_atr * atr * (1 + 1e-9),
        f"{label} {level:g} is {distance / atr:.1f} ATR from the last close {last_price:g}, "
        f"more than the profile's {max_atr:g} ATR",
    )


def exposure_problem(
    profile: RiskProfile,
    open_notionals: Sequence[float],
    equity: float,
    new_notional: float,
    *,
    new_position: bool = True,
) -> tuple[Hold, str] | None:
    """Whether one more position breaks the account's limits across symbols, and how.

    Args:
        profile: ``max_open_positions`` and ``max_total_exposure_pct``.
        open_notionals: the notional of every position open (and every order waiting to open one)
            on the account's other symbols and this one.
        equity: the account's equity, in quote currency.
        new_notional: the notional the new order would commit (size x leverage x equity).
        new_position: false for an add to a position already counted in ``open_notionals``.
    """
    if new_position and len(open_notionals) + 1 > profile.max_open_positions:
        return (
            Hold.MAX_OPEN_POSITIONS,
            f"{len(open_notionals)} positions are open, "
            f"the profile's maximum is {profile.max_open_positions}",
        )
    if not (math.isfinite(equity) and equity > 0):
        return Hold.EXPOSURE_LIMIT, f"the account's equity {equity:g} leaves no room for a position"
    total = (sum(open_notionals) + new_notional) / equity * 100
    if not total <= profile.max_total_exposure_pct + 1e-9:
        return (
            Hold.EXPOSURE_LIMIT,
            f"open notionals would reach {total:.1f}% of equity, "
            f"more than the profile's {profile.max_total_exposure_pct:g}%",
        )
    return None
