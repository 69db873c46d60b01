"""How a decision would have traded: entries, exits, fees and slippage, on candles only.

Candles say where the price went within an interval, not in which order, so every rule here errs
against the strategy:

- An order is placed when the cycle ends, at the close of the last candle it saw, and lives for one
  candle: the next one. ``entry="open"`` (the default) fills at that candle's open as a market order;
  ``entry="limit"`` rests at the decision's entry price and fills only if that candle trades through
  it (at the open when the open is already better, as an exchange would fill a marketable limit).
- No entry when the open or the fill (the open after slippage) would already be at or beyond the
  stop or the target: the market gapped past the plan before the order could work, and a buy whose
  slipped fill lands above its own target could only "reach" it at a loss.
- Exits: the stop and the target rest from the moment of the fill. When one candle reaches both, the
  stop is assumed first. A candle that opens beyond the stop fills at its open, worse than the stop;
  one that opens beyond the target fills at its open (a resting limit gets the better price). Since
  the fill is short of the target, a ``target`` or ``target_gap`` exit always gains before fees. On
  the candle of a limit entry only the stop is checked: the target may have traded before the fill.
- Market fills (entry at the open, stops, the close at the end) pay ``slippage_pct`` against the
  trader; limit fills (targets, limit entries) do not. Every fill pays ``fee_pct`` of its notional.
- Size: ``size_pct`` of equity is committed as margin and multiplied by ``leverage`` (the notional).
- Liquidation (isolated margin): the position is closed when its margin plus its loss falls to the
  maintenance margin, ``maintenance_margin_pct`` of the notional at that price. With margin
  ``entry × qty / leverage`` and maintenance rate ``mm`` that is Binance's isolated formula with no
  maintenance amount (the first tier of its brackets)::

      long:  entry × (1 - 1/leverage) / (1 - mm)
      short: entry × (1 + 1/leverage) / (1 + mm)

  (10x, 0.5%: 9.55% under a long's entry, 9.45% over a short's.) It is computed from the fill, not
  from the decision's entry. The whole margin is lost (what the maintenance margin leaves goes to the
  exchange's insurance fund) plus both fees; the exit price shown is the liquidation price. A candle
  reaching it liquidates before anything else in it: before the target, and before a stop unless the
  stop's fill (after slippage) lies strictly between the fill and the liquidation price, since the
  price must cross such a stop first. A stop beyond liquidation never saves the position, and a
  candle opening beyond the liquidation price liquidates whatever the stop. Candles show the traded
  price, not the mark price exchanges liquidate on: a wick can liquidate here that an exchange's
  mark price would have smoothed away, which errs against the strategy like every rule here.
- One position per symbol. An order to open while a position is open is not traded, unless it is
  an ``add`` on the same side (the profile allows adding): it then fills like any entry and the two
  become one position at the average entry, with the new order's target, stop and invalidation.
- A ``close`` order is a market order at the next candle's open (a candle that opens beyond the
  liquidation price has liquidated the position first).
- Invalidation: a position may carry a condition (``rez_cli.invalidation``) that a ``Watch`` checks
  at the close of every candle it lives through, the entry candle included, after the stop, target
  and liquidation had their chance in that candle. When it holds, the position is closed at the next
  candle's open as a ``close`` order would be, with the reason ``invalidation``.
Funding and borrowing costs are not modelled.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal, Protocol

from rez_cli.decision.policy import liquidation_price

EntryRule = Literal["open", "limit"]
OrderKind = Literal["open", "close"]

# Why an order did (not) become a position; shown per decision in the report.
FILLED = "filled"
NOT_TOUCHED = "not_touched"
BEYOND_LEVELS = "beyond_levels"
POSITION_OPEN = "position_open"
ZERO_SIZE = "zero_size"
NO_CANDLE = "no_candle"
NO_POSITION = "no_position"
PENDING = "pending"


@dataclass(frozen=True)
class FillConfig:
    """Costs and the entry rule.

    Args:
        fee_pct: fee per fill, as a percentage of its notional (0.1 = 0.1%, a taker fee).
        slippage_pct: how much worse than the reference price a market fill is, in percent.
        entry: ``open`` (market order at the next candle's open) or ``limit`` (at the decision's
            entry price if the next candle trades through it).
        maintenance_margin_pct: the maintenance margin rate, in percent of the notional, that sets
            the liquidation price (a backtest takes it from the risk profile).
    """

    fee_pct: float = 0.1
    slippage_pct: float = 0.02
    entry: EntryRule = "open"
    maintenance_margin_pct: float = 0.5

    def __post_init__(self) -> None:
        for name in ("fee_pct", "slippage_pct", "maintenance_margin_pct"):
            value = getattr(self, name)
            if not (math.isfinite(value) and 0 <= value < 100):
                raise ValueError(f"{name} must be a percentage in [0, 100), got {value!r}")
        if self.entry not in ("open", "limit"):
            raise ValueError(f"entry must be 'open' or 'limit', got {self.entry!r}")

    @property
    def fee(self) -> float:
        return self.fee_pct / 100

    @property
    def slippage(self) -> float:
        return self.slippage_pct / 100

    @property
    def maintenance_margin(self) -> float:
        return self.maintenance_margin_pct / 100


@dataclass(frozen=True)
class Candle:
    """One candle of the primary timeframe (``ts_ms``: its open time)."""

    ts_ms: int
    open: float
    high: float
    low: float
    close: float


@dataclass(frozen=True)
class Order:
    """What a buy, sell or close decision asks for. ``side`` is +1 for buy (long), -1 for sell (short).

    ``kind`` ``close`` closes the open position (its side and levels are not read). ``add``: an
    opening order that may join an open position on its side. ``rationale`` and ``invalidation``
    (a condition's text, or None) go with the position it opens.
    """

    side: int
    entry_price: float | None
    tp_price: float | None
    sl_price: float | None
    leverage: float
    size_pct: float
    placed_ms: int
    ref: str = ""
    kind: OrderKind = "open"
    add: bool = False
    rationale: str = ""
    invalidation: str | None = None


@dataclass(frozen=True)
class Position:
    """An open position; ``fill_at_open`` is False for a limit entry filled inside its candle.

    ``liquidation_price`` is None when no price can reach it (a long at 1x).
    """

    side: int
    qty: float
    entry_price: float
    entry_ms: int
    tp_price: float | None
    sl_price: float | None
    leverage: float
    margin: float
    entry_fee: float
    equity_at_entry: float
    fill_at_open: bool
    ref: str = ""
    liquidation_price: float | None = None
    rationale: str = ""
    invalidation: str | None = None
    # When the decision that opened it was made: where an invalidation's crossings start from.
    decided_ms: int = 0
    adds: int = 0

    @property
    def notional(self) -> float:
        return self.qty * self.entry_price

    @property
    def risk(self) -> float | None:
        """What hitting the stop would lose before fees (the R of the R multiple), or None."""
        if self.sl_price is None:
            return None
        return self.qty * abs(self.entry_price - self.sl_price)

    def gross_pnl(self, price: float) -> float:
        """Profit at ``price`` before fees, never losing more than the margin."""
        return max(self.side * self.qty * (price - self.entry_price), -self.margin)


ExitReason = Literal[
    "stop", "target", "stop_gap", "target_gap", "invalidation", "close", "liquidation", "end"
]
# Every reason a trade can close for, in the order a summary lists them.
EXIT_REASONS: tuple[ExitReason, ...] = (
    "target",
    "target_gap",
    "stop",
    "stop_gap",
    "invalidation",
    "close",
    "liquidation",
    "end",
)
LIQUIDATION: ExitReason = "liquidation"
INVALIDATION: ExitReason = "invalidation"
CLOSE: ExitReason = "close"


class Watch(Protocol):
    """Checks a position's invalidation condition at the close of one candle."""

    def holds(self, condition: str, previous_ms: int, moment_ms: int) -> str | None:
        """What made ``condition`` hold at ``moment_ms`` (a line for the trace), or None.

        ``previous_ms``: the moment it was last checked at (or decided at), for crossings. Only
        candles closed by ``moment_ms`` may be read.
        """
        ...


@dataclass(frozen=True)
class Exit:
    price: float
    reason: ExitReason


@dataclass(frozen=True)
class Trade:
    """A closed position. ``pnl`` is net of both fees; ``r_multiple`` is ``pnl`` over the risk.

    ``reason`` is one of ``EXIT_REASONS``; ``liquidation_price`` is where the position would have been
    (or was) liquidated, None when no price could.
    """

    ref: str
    side: int
    entry_ms: int
    entry_price: float
    exit_ms: int
    exit_price: float
    reason: str
    qty: float
    pnl: float
    fees: float
    r_multiple: float | None
    return_pct: float
    liquidation_price: float | None = None


def _market(price: float, side: int, config: FillConfig, *, opening: bool) -> float:
    """A market fill: buying pays more, selling gets less."""
    buying = (side > 0) == opening
    return price * (1 + config.slippage) if buying else price * (1 - config.slippage)


def _beyond_levels(price: float, side: int, tp: float | None, sl: float | None) -> bool:
    if sl is not None and side * (price - sl) <= 0:
        return True
    return tp is not None and side * (tp - price) <= 0


def enter(order: Order, candle: Candle, equity: float, config: FillConfig) -> tuple[Position | None, str]:
    """Try to open ``order`` on ``candle`` (the first candle after the decision).

    Returns:
        The position (or None) and why: ``filled``, ``not_touched`` (a limit the candle never
        reached), ``beyond_levels`` (the fill would be past the stop or the target), ``zero_size``.
    """
    notional = equity * order.size_pct / 100 * order.leverage
    if notional <= 0 or equity <= 0:
        return None, ZERO_SIZE
    side = order.side
    if config.entry == "limit" and order.entry_price is not None:
        limit = order.entry_price
        if side * (limit - candle.open) >= 0:
            price, at_open = candle.open, True
        elif candle.low <= limit <= candle.high:
            price, at_open = limit, False
        else:
            return None, NOT_TOUCHED
    else:
        price, at_open = _market(candle.open, side, config, opening=True), True
    # The open too: a long whose open is under the stop is refused even if slippage lifts its fill.
    seen = (candle.open, price) if at_open else (price,)
    if any(_beyond_levels(level, side, order.tp_price, order.sl_price) for level in seen):
        return None, BEYOND_LEVELS
    qty = notional / price
    position = Position(
        side=side,
        qty=qty,
        entry_price=price,
        entry_ms=candle.ts_ms,
        tp_price=order.tp_price,
        sl_price=order.sl_price,
        leverage=order.leverage,
        margin=notional / order.leverage,
        entry_fee=notional * config.fee,
        equity_at_entry=equity,
        fill_at_open=at_open,
        ref=order.ref,
        liquidation_price=liquidation_price(side, price, order.leverage, config.maintenance_margin),
        rationale=order.rationale,
        invalidation=order.invalidation,
        decided_ms=order.placed_ms,
    )
    return position, FILLED


def merge(held: Position, added: Position, config: FillConfig) -> Position:
    """One position from an open one and an add on its side: the average entry, the add's levels."""
    qty = held.qty + added.qty
    entry = (held.qty * held.entry_price + added.qty * added.entry_price) / qty
    margin = held.margin + added.margin
    leverage = qty * entry / margin
    return replace(
        held,
        qty=qty,
        entry_price=entry,
        tp_price=added.tp_price,
        sl_price=added.sl_price,
        leverage=leverage,
        margin=margin,
        entry_fee=held.entry_fee + added.entry_fee,
        fill_at_open=added.fill_at_open,
        liquidation_price=liquidation_price(held.side, entry, leverage, config.maintenance_margin),
        rationale=added.rationale,
        invalidation=added.invalidation,
        decided_ms=added.decided_ms,
        adds=held.adds + 1,
    )


def exit_on(
    position: Position, candle: Candle, config: FillConfig, *, entry_candle: bool = False
) -> Exit | None:
    """Whether ``candle`` closes ``position`` by liquidation, its stop or its target, and at what price.

    Args:
        position: the open position.
        candle: a candle after the entry, or the entry candle itself with ``entry_candle``.
        config: for the slippage of a stop (a stop-market order).
        entry_candle: the candle the position was opened in: no gap is possible (the entry already
            refused those), and after a limit fill inside the candle only the stop and liquidation
            are checked.
    """
    side, sl, tp = position.side, position.sl_price, position.tp_price
    liquidation = position.liquidation_price
    low_side, high_side = (candle.low, candle.high) if side > 0 else (candle.high, candle.low)

    def liquidation_at(price: float) -> Exit | None:
        if liquidation is not None and side * (price - liquidation) <= 0:
            return Exit(liquidation, LIQUIDATION)
        return None

    def stop_or_liquidation(reference: float, reason: ExitReason) -> Exit:
        # A stop-market order that would fill at or past the liquidation price is too late: the
        # exchange has closed the position first.
        fill = _market(reference, side, config, opening=False)
        return liquidation_at(fill) or Exit(fill, reason)

    if not entry_candle:
        if (gapped := liquidation_at(candle.open)) is not None:
            return gapped
        if sl is not None and side * (candle.open - sl) <= 0:
            return stop_or_liquidation(candle.open, "stop_gap")
        if tp is not None and side * (candle.open - tp) >= 0:
            return Exit(candle.open, "target_gap")
    if sl is not None and side * (low_side - sl) <= 0:
        return stop_or_liquidation(sl, "stop")
    if (wicked := liquidation_at(low_side)) is not None:
        return wicked
    target_allowed = not entry_candle or position.fill_at_open
    if target_allowed and tp is not None and side * (high_side - tp) >= 0:
        return Exit(tp, "target")
    return None


def close(position: Position, exit_: Exit, ts_ms: int, config: FillConfig) -> Trade:
    """The trade that closing ``position`` at ``exit_`` makes, fees included."""
    # A liquidation costs the whole margin: what the maintenance margin leaves is the exchange's.
    gross = -position.margin if exit_.reason == LIQUIDATION else position.gross_pnl(exit_.price)
    exit_fee = position.qty * exit_.price * config.fee
    fees = position.entry_fee + exit_fee
    pnl = gross - fees
    risk = position.risk
    return Trade(
        ref=position.ref,
        side=position.side,
        entry_ms=position.entry_ms,
        entry_price=position.entry_price,
        exit_ms=ts_ms,
        exit_price=exit_.price,
        reason=exit_.reason,
        qty=position.qty,
        pnl=pnl,
        fees=fees,
        r_multiple=pnl / risk if risk else None,
        return_pct=pnl / position.equity_at_entry * 100,
        liquidation_price=position.liquidation_price,
    )


@dataclass
class OrderState:
    """What became of one order; ``status`` is ``pending`` until the next candle is seen."""

    order: Order
    status: str = PENDING
    trade: Trade | None = None


@dataclass(frozen=True)
class Closing:
    """A close decided at a candle's close, to be done at the next open: ``close`` or ``invalidation``."""

    reason: ExitReason
    detail: str = ""


@dataclass
class Account:
    """One symbol's account, walked candle by candle; it only ever sees candles it was given.

    Args:
        equity: the starting equity, in quote currency.
        config: fees, slippage and the entry rule.
        candles: the primary timeframe's candles of the span, oldest first.
        timeframe_ms: their interval, so that ``advance(until_ms)`` knows which have closed.
        watch: checks the positions' invalidation conditions; None never checks them.
    """

    equity: float
    config: FillConfig
    candles: Sequence[Candle]
    timeframe_ms: int
    position: Position | None = None
    trades: list[Trade] = field(default_factory=list)
    curve: list[float] = field(default_factory=list)
    curve_ms: list[int] = field(default_factory=list)
    exposed_candles: int = 0
    watch: Watch | None = None
    # What the walk did besides trading, for a trace: invalidations that held, adds, closes.
    notes: list[str] = field(default_factory=list)
    _next: int = 0
    _pending: OrderState | None = None
    _open_state: OrderState | None = None
    _closing: Closing | None = None
    _closing_state: OrderState | None = None
    _checked_ms: int | None = None

    def __post_init__(self) -> None:
        self.curve = [self.equity]
        self.curve_ms = [self.candles[0].ts_ms if self.candles else 0]

    @classmethod
    def resume(
        cls,
        equity: float,
        config: FillConfig,
        candles: Sequence[Candle],
        timeframe_ms: int,
        *,
        state: AccountState,
        watch: Watch | None = None,
    ) -> Account:
        """An account that goes on from ``state`` (``AccountState.of`` an earlier walk) over ``candles``."""
        account = cls(equity, config, candles, timeframe_ms, position=state.position, watch=watch)
        if state.pending is not None:
            account._pending = OrderState(state.pending)
        account._closing = state.closing
        account._checked_ms = state.checked_ms
        return account

    @property
    def processed(self) -> int:
        """How many candles the account has walked through."""
        return self._next

    @property
    def pending(self) -> Order | None:
        """The order waiting for the next candle, if any."""
        return self._pending.order if self._pending is not None else None

    @property
    def closing(self) -> Closing | None:
        """A close the next candle's open will do (a close order is ``pending`` instead)."""
        return self._closing

    @property
    def last_close(self) -> float | None:
        return self.candles[self._next - 1].close if self._next else None

    def mark(self) -> float:
        """Equity with the open position valued at the last close seen."""
        last = self.last_close
        return self.equity if last is None else self.mark_at(last)

    def mark_at(self, price: float) -> float:
        """Equity with the open position valued at ``price``."""
        if self.position is None:
            return self.equity
        return self.equity + self.position.gross_pnl(price)

    def submit(self, order: Order) -> OrderState:
        """Place an order to be worked on the next candle.

        An opening order is refused (``position_open``) while another order waits or a position is
        open, unless it is an ``add`` on the open position's side; a close with nothing open or
        already closing is ``no_position``.
        """
        state = OrderState(order)
        if self._pending is not None:
            state.status = POSITION_OPEN
        elif order.kind == "close":
            if self.position is None or self._closing is not None:
                state.status = NO_POSITION
            else:
                self._pending = state
        elif self.position is not None and not (order.add and order.side == self.position.side):
            state.status = POSITION_OPEN
        else:
            self._pending = state
        return state

    def advance(self, until_ms: int) -> None:
        """Walk every candle that has closed by ``until_ms`` and was not walked yet."""
        while (
            self._next < len(self.candles) and self.candles[self._next].ts_ms + self.timeframe_ms <= until_ms
        ):
            self._step(self.candles[self._next])
            self._next += 1

    def finish(self) -> None:
        """Close what is still open at the last close walked (a market order) and expire the pending order."""
        if self._pending is not None:
            self._pending.status = NO_CANDLE
            self._pending = None
        if self.position is not None and self._next:
            last = self.candles[self._next - 1]
            price = _market(last.close, self.position.side, self.config, opening=False)
            self._close(Exit(price, "end"), last.ts_ms + self.timeframe_ms)
            self.curve[-1] = self.equity

    def _step(self, candle: Candle) -> None:
        entered = False
        pending = self._pending
        if pending is not None and pending.order.placed_ms <= candle.ts_ms:
            self._pending = None
            if pending.order.kind == "close":
                self._closing, self._closing_state, pending.status = Closing(CLOSE), pending, FILLED
            else:
                entered = self._enter(pending, candle)
        if self._closing is not None:
            self._close_at_open(candle, self._closing)
        if self.position is not None:
            self.exposed_candles += 1
            exit_ = exit_on(self.position, candle, self.config, entry_candle=entered)
            if exit_ is not None:
                self._close(exit_, candle.ts_ms + self.timeframe_ms)
            else:
                self._check_invalidation(self.position, candle.ts_ms + self.timeframe_ms)
        self.curve.append(self.mark_at(candle.close))
        self.curve_ms.append(candle.ts_ms + self.timeframe_ms)

    def _enter(self, state: OrderState, candle: Candle) -> bool:
        held = self.position
        position, state.status = enter(state.order, candle, self.equity, self.config)
        if position is None:
            return False
        self.equity -= position.entry_fee
        if held is None:
            self.position, self._open_state, self._checked_ms = position, state, None
            return True
        # An add: the candle is the entry candle of the added part only, so it is walked as any other
        # candle of the position (a gap at its open was refused by ``enter``).
        self.position = merge(held, position, self.config)
        self._checked_ms = None
        self.notes.append(f"added to the {_side(held.side)} at {position.entry_price:.10g}")
        return False

    def _close_at_open(self, candle: Candle, closing: Closing) -> None:
        self._closing = None
        position = self.position
        if position is None:
            return
        liquidation = position.liquidation_price
        if liquidation is not None and position.side * (candle.open - liquidation) <= 0:
            self._close(Exit(liquidation, LIQUIDATION), candle.ts_ms)
            return
        price = _market(candle.open, position.side, self.config, opening=False)
        self._close(Exit(price, closing.reason), candle.ts_ms)

    def _check_invalidation(self, position: Position, moment_ms: int) -> None:
        if position.invalidation is None or self.watch is None:
            return
        previous = self._checked_ms if self._checked_ms is not None else position.decided_ms
        self._checked_ms = moment_ms
        detail = self.watch.holds(position.invalidation, previous, moment_ms)
        if detail is not None:
            self._closing = Closing(INVALIDATION, detail)
            self.notes.append(f"invalidation held: {detail}; closing at the next open")

    def _close(self, exit_: Exit, ts_ms: int) -> None:
        assert self.position is not None
        trade = close(self.position, exit_, ts_ms, self.config)
        # The entry fee was taken from equity at the fill; only the rest of the result lands now.
        self.equity += trade.pnl + self.position.entry_fee
        self.trades.append(trade)
        for state in (self._open_state, self._closing_state):
            if state is not None:
                state.trade = trade
        self.position, self._open_state, self._closing, self._checked_ms = None, None, None, None
        self._closing_state = None


def _side(side: int) -> str:
    return "long" if side > 0 else "short"


@dataclass(frozen=True)
class AccountState:
    """What an account carries from one walk to the next: the paper account stores it between runs."""

    position: Position | None = None
    pending: Order | None = None
    closing: Closing | None = None
    checked_ms: int | None = None

    @classmethod
    def of(cls, account: Account) -> AccountState:
        return cls(account.position, account.pending, account.closing, account._checked_ms)

    def to_json(self) -> dict[str, Any]:
        return {
            "position": asdict(self.position) if self.position else None,
            "pending": asdict(self.pending) if self.pending else None,
            "closing": asdict(self.closing) if self.closing else None,
            "checked_ms": self.checked_ms,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AccountState:
        position, pending, closing = data.get("position"), data.get("pending"), data.get("closing")
        return cls(
            Position(**position) if position else None,
            Order(**pending) if pending else None,
            Closing(**closing) if closing else None,
            data.get("checked_ms"),
        )
