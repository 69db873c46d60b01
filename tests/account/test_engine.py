"""The engine's new moves, by hand-made candles: adding to a position, a close order, an invalidation
that holds, and a walk carried from one run to the next through its stored state."""

from __future__ import annotations

import json

import pytest

from rez_cli.account.fills import Account, AccountState, Candle, FillConfig, Order

HOUR = 3_600_000
NO_COSTS = FillConfig(fee_pct=0.0, slippage_pct=0.0)


def candles(*rows: tuple[float, float, float, float]) -> list[Candle]:
    return [Candle(i * HOUR, o, h, low, c) for i, (o, h, low, c) in enumerate(rows)]


def buy(placed_ms: int, *, add: bool = False, invalidation: str | None = None, size: float = 10.0) -> Order:
    return Order(
        1, None, 150.0, 50.0, 1.0, size, placed_ms, ref=f"b{placed_ms}", add=add, invalidation=invalidation
    )


class ClosesUnder:
    """A Watch: the condition is a price; it holds when the candle closing at the moment is under it."""

    def __init__(self, bars: list[Candle]) -> None:
        self.closes = {bar.ts_ms + HOUR: bar.close for bar in bars}
        self.asked: list[tuple[int, int]] = []

    def holds(self, condition: str, previous_ms: int, moment_ms: int) -> str | None:
        self.asked.append((previous_ms, moment_ms))
        return (
            f"close {self.closes[moment_ms]:g} < {condition}"
            if self.closes[moment_ms] < float(condition)
            else None
        )


def test_an_add_joins_the_position_at_the_average_entry() -> None:
    bars = candles((100, 101, 99, 100), (100, 101, 99, 100), (120, 121, 119, 120), (120, 121, 119, 120))
    account = Account(1_000.0, NO_COSTS, bars, HOUR)
    account.submit(buy(0))
    account.advance(2 * HOUR)
    refused = account.submit(buy(2 * HOUR))
    assert refused.status == "position_open"  # not marked as an add
    added = account.submit(buy(2 * HOUR, add=True))
    assert added.status == "pending"
    account.advance(4 * HOUR)
    position = account.position
    assert position is not None
    # 100 of notional at 100 (1 unit), then 10% of 1,000 at 120 (0.8333 units).
    assert position.qty == pytest.approx(1 + 100 / 120)
    assert position.entry_price == pytest.approx(200 / position.qty)
    assert position.adds == 1
    account.finish()
    assert account.trades[0].pnl == pytest.approx(position.qty * 120 - 200)


def test_a_close_order_exits_at_the_next_open() -> None:
    bars = candles((100, 101, 99, 100), (100, 110, 99, 108), (105, 106, 104, 105))
    account = Account(1_000.0, FillConfig(fee_pct=0.0, slippage_pct=0.1), bars, HOUR)
    account.submit(buy(0))
    account.advance(2 * HOUR)
    closing = account.submit(Order(1, None, None, None, 1.0, 0.0, 2 * HOUR, kind="close"))
    assert closing.status == "pending"
    assert (
        account.submit(Order(1, None, None, None, 1.0, 0.0, 2 * HOUR, kind="close")).status == "position_open"
    )
    account.advance(3 * HOUR)
    (trade,) = account.trades
    assert (trade.reason, trade.exit_ms) == ("close", 2 * HOUR)
    assert trade.exit_price == pytest.approx(105 * 0.999)
    assert closing.trade is trade
    nothing = account.submit(Order(1, None, None, None, 1.0, 0.0, 3 * HOUR, kind="close"))
    assert nothing.status == "no_position"


def test_an_invalidation_closes_at_the_next_open_and_crossings_start_where_it_was_decided() -> None:
    bars = candles((100, 101, 99, 100), (100, 101, 97, 98), (99, 100, 98, 99), (101, 102, 100, 101))
    watch = ClosesUnder(bars)
    account = Account(1_000.0, NO_COSTS, bars, HOUR, watch=watch)
    account.submit(buy(0, invalidation="99"))
    account.advance(4 * HOUR)
    (trade,) = account.trades
    # Checked at the entry candle's close (100: no), then at 98 < 99: closed at the 99 open after it.
    assert (trade.reason, trade.exit_ms, trade.exit_price) == ("invalidation", 2 * HOUR, 99)
    assert watch.asked == [(0, HOUR), (HOUR, 2 * HOUR)]
    assert any("close 98 < 99" in note for note in account.notes)


def test_a_walk_goes_on_from_its_stored_state_as_if_never_stopped() -> None:
    bars = candles(
        (100, 101, 99, 100), (100, 103, 99, 102), (102, 104, 101, 103), (103, 104, 96, 97), (97, 98, 96, 97)
    )
    whole = Account(1_000.0, FillConfig(), bars, HOUR, watch=ClosesUnder(bars))
    whole.submit(buy(0, invalidation="98"))
    whole.advance(5 * HOUR)

    first = Account(1_000.0, FillConfig(), bars[:2], HOUR, watch=ClosesUnder(bars))
    first.submit(buy(0, invalidation="98"))
    first.advance(2 * HOUR)
    stored = json.loads(json.dumps(AccountState.of(first).to_json()))
    rest = Account.resume(
        first.equity,
        FillConfig(),
        bars[2:],
        HOUR,
        state=AccountState.from_json(stored),
        watch=ClosesUnder(bars),
    )
    rest.advance(5 * HOUR)
    assert rest.trades == whole.trades
    assert rest.equity == whole.equity
