"""Liquidation and honest exits on hand-made candles: every number is worked out in the comments.

Isolated margin, maintenance margin mm = 0.5% unless said otherwise. The liquidation price is
entry × (1 - 1/leverage) / (1 - mm) for a long and entry × (1 + 1/leverage) / (1 + mm) for a short:
at 10x from 100, 90/0.995 = 90.4523 and 110/1.005 = 109.4527.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rez_cli.account.fills import (
    FILLED,
    LIQUIDATION,
    Account,
    Candle,
    FillConfig,
    Order,
    liquidation_price,
)
from rez_cli.backtest.metrics import compute_metrics

HOUR = 3_600_000
EQUITY = 10_000.0
FEE_ONLY = FillConfig(fee_pct=0.1, slippage_pct=0.0)


def candle(i: int, o: float, h: float, low: float, c: float) -> Candle:
    return Candle(i * HOUR, o, h, low, c)


def order(
    side: int, tp: float | None, sl: float | None, *, leverage: float = 10.0, size: float = 10.0
) -> Order:
    return Order(side, 100.0, tp, sl, leverage, size, 0, "t")


def walk(config: FillConfig, new_order: Order, candles: list[Candle]) -> Account:
    account = Account(EQUITY, config, candles, HOUR)
    account.submit(new_order)
    account.advance(len(candles) * HOUR)
    account.finish()
    return account


def test_the_liquidation_price_of_a_long_and_a_short() -> None:
    assert liquidation_price(1, 100.0, 10.0, 0.005) == pytest.approx(90 / 0.995)
    assert liquidation_price(-1, 100.0, 10.0, 0.005) == pytest.approx(110 / 1.005)
    # Without a maintenance margin it is the bankruptcy price: the whole margin gone.
    assert liquidation_price(1, 100.0, 4.0, 0.0) == pytest.approx(75)
    # A long at 1x cannot be liquidated by any positive price; a short at 1x can (at about twice).
    assert liquidation_price(1, 100.0, 1.0, 0.005) is None
    assert liquidation_price(-1, 100.0, 1.0, 0.005) == pytest.approx(200 / 1.005)


def test_a_long_wicking_through_its_liquidation_and_recovering_is_liquidated() -> None:
    # 10% of 10,000 at 10x: margin 1,000, notional 10,000, 100 units at 100; target 105, no stop.
    account = walk(
        FEE_ONLY,
        order(1, 105.0, None),
        [
            candle(0, 100, 101, 99, 100),  # the fill, at the open
            candle(1, 100, 100.5, 90, 99),  # wicks to 90, under 90.4523
            candle(2, 99, 106, 98, 105),  # recovers through the target: too late
        ],
    )
    [trade] = account.trades
    liquidation = 90 / 0.995
    assert trade.reason == LIQUIDATION
    assert trade.exit_price == pytest.approx(liquidation)
    assert trade.exit_ms == 2 * HOUR
    # The whole margin, the entry fee (10,000 × 0.1% = 10) and the exit fee (100 × 90.4523 × 0.1%).
    fees = 10 + 100 * liquidation * 0.001
    assert trade.fees == pytest.approx(fees)
    assert trade.pnl == pytest.approx(-1_000 - fees)
    assert trade.r_multiple is None  # no stop, no R
    assert trade.return_pct == pytest.approx((-1_000 - fees) / 100)
    assert account.equity == pytest.approx(EQUITY - 1_000 - fees)
    assert account.curve == pytest.approx([EQUITY, EQUITY - 10, EQUITY - 1_000 - fees, EQUITY - 1_000 - fees])
    metrics = compute_metrics(
        account.curve, account.trades, timeframe_ms=HOUR, exposed_candles=2, actions=["buy"]
    )
    assert (metrics.trades, metrics.liquidations, metrics.win_rate) == (1, 1, 0.0)
    assert metrics.final_equity == pytest.approx(EQUITY - 1_000 - fees)


def test_a_short_wicking_through_its_liquidation_and_recovering_is_liquidated() -> None:
    account = walk(
        FEE_ONLY,
        order(-1, 95.0, None),
        [
            candle(0, 100, 101, 99, 100),
            candle(1, 100, 110, 99.5, 101),  # wicks to 110, over 109.4527
            candle(2, 101, 101.5, 94, 95),  # falls through the 95 target
        ],
    )
    [trade] = account.trades
    liquidation = 110 / 1.005
    fees = 10 + 100 * liquidation * 0.001
    assert (trade.reason, trade.side) == (LIQUIDATION, -1)
    assert trade.exit_price == pytest.approx(liquidation)
    assert trade.pnl == pytest.approx(-1_000 - fees)
    assert account.equity == pytest.approx(EQUITY - 1_000 - fees)


# The aggressive profile's shape: 10x, a stop 9.4% under the decision's entry of 100, a 1.2R target.
# From 100 the liquidation price is 90.4523, under the 90.6 stop. But the next candle opens at 102:
# the market fill is 102 × 1.0002 = 102.0204, whose liquidation price is 102.0204 × 0.9/0.995 = 92.2818,
# now above the stop. 20% of equity: margin 2,000, notional 20,000.
FILL = 102 * 1.0002
FILL_LIQUIDATION = FILL * 0.9 / 0.995
QTY = 20_000 / FILL
AGGRESSIVE = FillConfig(fee_pct=0.1, slippage_pct=0.02)


def aggressive(sl: float, wick_low: float) -> Account:
    return walk(
        AGGRESSIVE,
        order(1, 112.0, sl, size=20.0),
        [
            candle(0, 102, 102.5, 101.5, 102),
            candle(1, 102, 102.5, wick_low, 101),
            candle(2, 101, 113, 100.5, 112.5),
        ],
    )


def test_the_stop_is_checked_against_liquidation_from_the_fill_not_the_decision() -> None:
    # The wick to 91 reaches 92.2818 but not the 90.6 stop: liquidated, not a winner at the target.
    [trade] = aggressive(sl=90.6, wick_low=91).trades
    fees = 20_000 * 0.001 + QTY * FILL_LIQUIDATION * 0.001
    assert trade.entry_price == pytest.approx(FILL)
    assert trade.liquidation_price == pytest.approx(FILL_LIQUIDATION)
    assert trade.reason == LIQUIDATION
    assert trade.exit_price == pytest.approx(FILL_LIQUIDATION)
    assert trade.pnl == pytest.approx(-2_000 - fees)
    # R is still measured from the fill to the stop: 196.04 units × 11.4204.
    assert trade.r_multiple == pytest.approx((-2_000 - fees) / (QTY * (FILL - 90.6)))


def test_a_stop_beyond_liquidation_never_saves_the_position() -> None:
    # Even a wick through both: the price meets liquidation (92.2818) before the 90.6 stop.
    [trade] = aggressive(sl=90.6, wick_low=80).trades
    assert trade.reason == LIQUIDATION
    assert trade.pnl == pytest.approx(-2_000 - 20 - QTY * FILL_LIQUIDATION * 0.001)


def test_a_stop_between_the_fill_and_liquidation_closes_first() -> None:
    # A 93 stop lies between the fill and 92.2818: the falling price crosses it first. A stop-market
    # sell at 93 × 0.9998 = 92.9814, a loss smaller than the margin.
    [trade] = aggressive(sl=93.0, wick_low=80).trades
    exit_price = 93 * 0.9998
    assert (trade.reason, trade.exit_price) == ("stop", pytest.approx(exit_price))
    fees = 20_000 * 0.001 + QTY * exit_price * 0.001
    assert trade.pnl == pytest.approx(QTY * (exit_price - FILL) - fees)
    assert trade.pnl > -2_000


def test_a_stop_whose_slipped_fill_passes_liquidation_is_a_liquidation() -> None:
    # 92.29 is above 92.2818, but the stop-market sell fills at 92.29 × 0.9998 = 92.2715, beyond it.
    [trade] = aggressive(sl=92.29, wick_low=92).trades
    assert trade.reason == LIQUIDATION


def test_a_candle_opening_beyond_liquidation_liquidates_whatever_the_stop() -> None:
    account = walk(
        FEE_ONLY,
        order(1, 110.0, 95.0),
        [candle(0, 100, 101, 99, 100), candle(1, 85, 86, 84, 85)],
    )
    [trade] = account.trades
    # Not a stop_gap at 85 losing 1,500 on a 1,000 margin: a liquidation at 90.4523.
    assert (trade.reason, trade.exit_price) == (LIQUIDATION, pytest.approx(90 / 0.995))
    assert trade.pnl == pytest.approx(-1_000 - 10 - 100 * (90 / 0.995) * 0.001)


def test_no_liquidation_at_1x_whatever_the_fall() -> None:
    account = walk(
        FEE_ONLY,
        order(1, 200.0, None, leverage=1.0, size=100.0),
        [candle(0, 100, 101, 99, 100), candle(1, 100, 100, 5, 50)],
    )
    [trade] = account.trades
    assert trade.reason == "end"
    assert trade.liquidation_price is None


def test_a_higher_maintenance_margin_liquidates_earlier() -> None:
    # mm 5% at 10x: 100 × 0.9 / 0.95 = 94.7368; a wick to 94 liquidates, one to 95 does not.
    config = FillConfig(fee_pct=0.0, slippage_pct=0.0, maintenance_margin_pct=5.0)
    wicked = walk(config, order(1, 110.0, None), [candle(0, 100, 101, 99, 100), candle(1, 100, 100, 94, 99)])
    spared = walk(config, order(1, 110.0, None), [candle(0, 100, 101, 99, 100), candle(1, 100, 100, 95, 99)])
    assert wicked.trades[0].reason == LIQUIDATION
    assert wicked.trades[0].exit_price == pytest.approx(90 / 0.95)
    assert spared.trades[0].reason == "end"


@st.composite
def market(draw: st.DrawFn) -> tuple[list[Candle], Order, FillConfig]:
    price = draw(st.floats(1.0, 1_000.0))
    candles = []
    for i in range(draw(st.integers(1, 8))):
        open_ = price * (1 + draw(st.floats(-0.2, 0.2)))
        close = open_ * (1 + draw(st.floats(-0.3, 0.3)))
        high = max(open_, close) * (1 + draw(st.floats(0, 0.3)))
        low = min(open_, close) * (1 - draw(st.floats(0, 0.6)))
        candles.append(Candle(i * HOUR, open_, high, low, close))
        price = close
    side = draw(st.sampled_from([1, -1]))
    reference = candles[0].open
    tp = draw(st.none() | st.floats(0.001, 0.5).map(lambda d: reference * (1 + side * d)))
    sl = draw(st.none() | st.floats(0.001, 0.5).map(lambda d: reference * (1 - side * d)))
    leverage = draw(st.floats(1.0, 125.0))
    new_order = Order(side, reference, tp, sl, leverage, draw(st.floats(0.1, 100.0)), 0, "p")
    config = FillConfig(
        fee_pct=draw(st.floats(0, 0.5)),
        slippage_pct=draw(st.floats(0, 1)),
        entry=draw(st.sampled_from(["open", "limit"])),
        maintenance_margin_pct=draw(st.floats(0, 0.75)),
    )
    return candles, new_order, config


@settings(max_examples=300, deadline=None)
@given(market())
def test_every_exit_is_honest(case: tuple[list[Candle], Order, FillConfig]) -> None:
    candles, new_order, config = case
    account = Account(EQUITY, config, candles, HOUR)
    state = account.submit(new_order)
    account.advance(len(candles) * HOUR)
    account.finish()
    if state.status != FILLED:
        assert account.trades == []
        return
    [trade] = account.trades
    side, liquidation = trade.side, trade.liquidation_price
    margin = trade.qty * trade.entry_price / new_order.leverage
    # No loss beyond the margin and the fees; a liquidation is exactly that loss.
    assert trade.pnl >= -margin - trade.fees - 1e-6 * margin
    if trade.reason == LIQUIDATION:
        assert trade.pnl == pytest.approx(-margin - trade.fees)
        assert trade.exit_price == liquidation
    # A target is reached beyond the fill: a gain before fees.
    if trade.reason in ("target", "target_gap"):
        assert side * (trade.exit_price - trade.entry_price) > 0
    # A stop closes the position short of its liquidation price.
    if trade.reason in ("stop", "stop_gap") and liquidation is not None:
        assert side * (trade.exit_price - liquidation) > 0
    # Every candle the position lived through, before the one that closed it, stayed short of liquidation.
    if liquidation is not None:
        last = len(candles) if trade.reason == "end" else trade.exit_ms // HOUR - 1
        for held in candles[trade.entry_ms // HOUR : last]:
            adverse = held.low if side > 0 else held.high
            assert side * (adverse - liquidation) > 0
