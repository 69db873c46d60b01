"""Fill rules on hand-made candles: every number below is worked out by hand in the comments."""

from __future__ import annotations

import pytest

from rez_cli.account.fills import (
    BEYOND_LEVELS,
    FILLED,
    NOT_TOUCHED,
    POSITION_OPEN,
    Account,
    Candle,
    FillConfig,
    Order,
    close,
    enter,
    exit_on,
)

HOUR = 3_600_000
FREE = FillConfig(fee_pct=0.0, slippage_pct=0.0)


def candle(i: int, o: float, h: float, low: float, c: float) -> Candle:
    return Candle(i * HOUR, o, h, low, c)


def long(**changes: float) -> Order:
    values = {"entry_price": 100.0, "tp_price": 110.0, "sl_price": 95.0, "leverage": 1.0, "size_pct": 100.0}
    values.update(changes)
    return Order(side=1, placed_ms=0, ref="t", **values)


def short(**changes: float) -> Order:
    values = {"entry_price": 100.0, "tp_price": 90.0, "sl_price": 105.0, "leverage": 1.0, "size_pct": 100.0}
    values.update(changes)
    return Order(side=-1, placed_ms=0, ref="t", **values)


def test_market_entry_fills_at_the_next_open_with_slippage() -> None:
    position, status = enter(long(), candle(0, 100, 101, 99, 100), 10_000, FillConfig(0.0, 0.5))
    assert status == FILLED
    assert position is not None
    # 100 × (1 + 0.5%) = 100.5; all of 10,000 at 1x: 10,000 / 100.5 units.
    assert position.entry_price == pytest.approx(100.5)
    assert position.qty == pytest.approx(10_000 / 100.5)


def test_tp_and_sl_in_one_candle_assume_the_stop_first() -> None:
    position, _ = enter(long(), candle(0, 100, 101, 99, 100), 10_000, FREE)
    assert position is not None
    exit_ = exit_on(position, candle(1, 100, 112, 94, 105), FREE)
    assert exit_ is not None
    assert exit_.reason == "stop"
    assert exit_.price == 95


def test_a_gap_through_the_stop_fills_at_the_open_worse_than_the_stop() -> None:
    config = FillConfig(fee_pct=0.0, slippage_pct=0.1)
    position, _ = enter(long(), candle(0, 100, 101, 99, 100), 10_000, FREE)
    assert position is not None
    exit_ = exit_on(position, candle(1, 90, 92, 88, 91), config)
    assert exit_ is not None
    assert exit_.reason == "stop_gap"
    # A stop-market sell at the 90 open, 0.1% slippage: 89.91, well under the 95 stop.
    assert exit_.price == pytest.approx(89.91)


def test_a_short_gapped_through_its_stop_buys_back_at_the_open() -> None:
    position, _ = enter(short(), candle(0, 100, 101, 99, 100), 10_000, FREE)
    assert position is not None
    exit_ = exit_on(position, candle(1, 108, 109, 107, 108), FREE)
    assert exit_ is not None
    assert (exit_.reason, exit_.price) == ("stop_gap", 108)
    trade = close(position, exit_, 2 * HOUR, FREE)
    # 100 units short from 100, bought back at 108: -800, R = -800 / (100 × 5) = -1.6.
    assert trade.pnl == pytest.approx(-800)
    assert trade.r_multiple == pytest.approx(-1.6)


def test_a_gap_through_the_target_fills_at_the_better_open() -> None:
    position, _ = enter(long(), candle(0, 100, 101, 99, 100), 10_000, FREE)
    assert position is not None
    exit_ = exit_on(position, candle(1, 113, 115, 112, 114), FREE)
    assert exit_ is not None
    assert (exit_.reason, exit_.price) == ("target_gap", 113)


# A candle opening just under the target, whose fill after slippage is past it: 100.09 × 1.0005 =
# 100.14 for a buy with its target at 100.1; 99.91 × 0.9995 = 99.86 for a sell targeting 99.9.
SLIPPY = FillConfig(fee_pct=0.1, slippage_pct=0.05)


@pytest.mark.parametrize(
    ("order", "first"),
    [
        (long(tp_price=100.1), candle(0, 100.09, 100.2, 100.0, 100.1)),
        (short(tp_price=99.9), candle(0, 99.91, 100.0, 99.8, 99.9)),
    ],
)
def test_a_fill_past_the_target_after_slippage_is_not_traded(order: Order, first: Candle) -> None:
    account = Account(10_000, SLIPPY, [first, candle(1, 100, 100.3, 99.7, 100)], HOUR)
    state = account.submit(order)
    account.advance(2 * HOUR)
    account.finish()
    # Filled, it would have "reached its target" at once, at a loss: 0.04 past the fill, plus fees.
    assert state.status == BEYOND_LEVELS
    assert account.trades == []
    assert account.equity == 10_000


def test_a_gap_through_the_target_after_a_slipped_fill_is_a_win() -> None:
    account = Account(
        10_000, SLIPPY, [candle(0, 100, 100.5, 99.5, 100), candle(1, 113, 114, 112.5, 113.5)], HOUR
    )
    account.submit(long())
    account.advance(2 * HOUR)
    [trade] = account.trades
    # In at 100 × 1.0005 = 100.05, 99.95 units; out at the 113 open, past the 110 target (a resting
    # limit: no slippage). Fees: 10 in, 99.95 × 113 × 0.1% out.
    qty = 10_000 / 100.05
    assert (trade.reason, trade.exit_price) == ("target_gap", 113)
    assert trade.pnl == pytest.approx(qty * (113 - 100.05) - 10 - qty * 113 * 0.001)
    assert trade.pnl > 0


def test_fees_leverage_and_size_over_a_whole_trade() -> None:
    config = FillConfig(fee_pct=0.1, slippage_pct=0.0)
    account = Account(
        10_000,
        config,
        [candle(0, 100, 101, 99, 100), candle(1, 100, 111, 100, 110), candle(2, 110, 111, 109, 110)],
        HOUR,
    )
    account.submit(long(leverage=2.0, size_pct=50.0))
    account.advance(3 * HOUR)
    [trade] = account.trades
    # Margin 50% of 10,000 at 2x: 10,000 notional = 100 units at 100.
    # Entry fee 10,000 × 0.1% = 10; exit at the 110 target: fee 100 × 110 × 0.1% = 11.
    # Gross 100 × 10 = 1,000; net 1,000 - 21 = 979; risk 100 × 5 = 500, so 1.958 R.
    assert trade.reason == "target"
    assert trade.fees == pytest.approx(21)
    assert trade.pnl == pytest.approx(979)
    assert trade.r_multiple == pytest.approx(1.958)
    assert trade.return_pct == pytest.approx(9.79)
    assert account.equity == pytest.approx(10_979)
    # Equity at each close: start, after candle 0 (entry fee paid, flat at 100), after the exit, flat.
    assert account.curve == pytest.approx([10_000, 9_990, 10_979, 10_979])
    assert account.exposed_candles == 2


def test_no_entry_when_the_open_is_already_beyond_the_stop() -> None:
    position, status = enter(long(), candle(0, 94, 96, 93, 95), 10_000, FREE)
    assert position is None
    assert status == BEYOND_LEVELS


def test_a_limit_entry_untouched_by_the_next_candle_is_not_filled() -> None:
    config = FillConfig(fee_pct=0.0, slippage_pct=0.0, entry="limit")
    position, status = enter(long(entry_price=98.0), candle(0, 100, 101, 99, 100), 10_000, config)
    assert position is None
    assert status == NOT_TOUCHED


def test_a_limit_entry_fills_at_its_price_without_slippage_and_checks_only_the_stop() -> None:
    config = FillConfig(fee_pct=0.0, slippage_pct=0.5, entry="limit")
    entry_candle = candle(0, 100, 111, 97, 100)
    position, status = enter(long(entry_price=98.0), entry_candle, 10_000, config)
    assert status == FILLED
    assert position is not None
    assert position.entry_price == 98.0
    # The target traded in this candle, but maybe before the fill: not taken.
    assert exit_on(position, entry_candle, config, entry_candle=True) is None
    # The stop is taken even in the fill's own candle: the pessimistic order.
    stopped = exit_on(position, candle(0, 100, 101, 94, 100), config, entry_candle=True)
    assert stopped is not None
    assert stopped.reason == "stop"


def test_a_limit_buy_above_the_open_fills_at_the_open() -> None:
    config = FillConfig(fee_pct=0.0, slippage_pct=0.5, entry="limit")
    position, _ = enter(long(entry_price=101.0), candle(0, 100, 101, 99, 100), 10_000, config)
    assert position is not None
    assert position.entry_price == 100.0


def test_one_position_per_symbol() -> None:
    account = Account(
        10_000,
        FREE,
        [candle(0, 100, 101, 99, 100), candle(1, 100, 101, 99, 100), candle(2, 100, 101, 99, 100)],
        HOUR,
    )
    first = account.submit(long())
    account.advance(HOUR)
    second = account.submit(short())
    account.advance(3 * HOUR)
    assert first.status == FILLED
    assert second.status == POSITION_OPEN
    assert account.position is not None
    assert account.position.side == 1


def test_finish_closes_at_the_last_close_as_a_market_order() -> None:
    config = FillConfig(fee_pct=0.0, slippage_pct=1.0)
    account = Account(10_000, config, [candle(0, 100, 101, 99, 100), candle(1, 100, 104, 99, 103)], HOUR)
    account.submit(long(size_pct=50.0))
    account.advance(2 * HOUR)
    account.finish()
    [trade] = account.trades
    # In at 101 (1% slippage), out at 103 × 0.99 = 101.97: 5,000 / 101 units × 0.97.
    assert trade.reason == "end"
    assert trade.exit_price == pytest.approx(101.97)
    assert trade.pnl == pytest.approx(5_000 / 101 * 0.97)
    assert account.curve[-1] == pytest.approx(account.equity)


def test_a_loss_never_exceeds_the_margin() -> None:
    position, _ = enter(
        long(leverage=10.0, size_pct=10.0, sl_price=99.0), candle(0, 100, 100, 100, 100), 10_000, FREE
    )
    assert position is not None
    exit_ = exit_on(position, candle(1, 80, 81, 79, 80), FREE)
    assert exit_ is not None
    # 1,000 of margin at 10x: a 20% gap would lose 2,000; isolated margin stops the loss at 1,000.
    assert close(position, exit_, HOUR, FREE).pnl == pytest.approx(-1_000)


def test_candles_not_closed_by_the_moment_are_not_walked() -> None:
    account = Account(10_000, FREE, [candle(0, 100, 101, 99, 100), candle(1, 100, 101, 99, 100)], HOUR)
    account.advance(HOUR + HOUR // 2)
    assert account.processed == 1


def test_bad_costs_are_refused() -> None:
    with pytest.raises(ValueError, match="fee_pct"):
        FillConfig(fee_pct=-1)
