"""What a cycle knows of the position on its symbol, and how its decision reaches the account.

A ``Book`` is the cycle's one door to an account: the paper account between runs, or a backtest's
account during its walk. The orchestrator asks it for the position before the model reasons (the
model is shown it, the policy checks the decision against it) and hands it the decision after the
policy passed it; the book may still refuse it (the account's limits across symbols) with a code.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from rez_cli.account.fills import Order, Position
from rez_cli.clock import iso
from rez_cli.config.settings import RiskProfile
from rez_cli.decision.codes import Hold
from rez_cli.decision.model import Decision
from rez_cli.decision.policy import exposure_problem
from rez_cli.formatting import price_decimals


@dataclass(frozen=True)
class PositionView:
    """An open position (or an order waiting to open one) as of a cycle's last closed candle.

    ``waiting``: the order has not filled yet (its entry, quantity and margin are the order's
    intentions, not a fill). ``closing``: why it will be closed at the next open, if it will.
    """

    symbol: str
    side: int
    entry_price: float
    tp_price: float | None
    sl_price: float | None
    qty: float
    leverage: float
    margin: float
    equity: float
    opened_ms: int
    age_candles: int
    last_price: float
    liquidation_price: float | None
    rationale: str
    invalidation: str | None
    waiting: bool = False
    closing: str | None = None

    @property
    def side_name(self) -> str:
        return "long" if self.side > 0 else "short"

    @property
    def unrealised_pnl(self) -> float:
        return self.side * self.qty * (self.last_price - self.entry_price)

    @property
    def unrealised_r(self) -> float | None:
        if self.sl_price is None or self.sl_price == self.entry_price:
            return None
        return self.unrealised_pnl / (self.qty * abs(self.entry_price - self.sl_price))

    @property
    def move_pct(self) -> float:
        """The price's move since the entry, in the position's favour, in percent."""
        return self.side * (self.last_price / self.entry_price - 1) * 100

    @property
    def equity_pct(self) -> float | None:
        return self.unrealised_pnl / self.equity * 100 if self.equity > 0 else None

    @property
    def notional(self) -> float:
        return self.qty * self.entry_price

    @classmethod
    def of_position(
        cls,
        symbol: str,
        position: Position,
        *,
        equity: float,
        last_price: float,
        age_candles: int,
        closing: str | None = None,
    ) -> PositionView:
        return cls(
            symbol=symbol,
            side=position.side,
            entry_price=position.entry_price,
            tp_price=position.tp_price,
            sl_price=position.sl_price,
            qty=position.qty,
            leverage=position.leverage,
            margin=position.margin,
            equity=equity,
            opened_ms=position.entry_ms,
            age_candles=age_candles,
            last_price=last_price,
            liquidation_price=position.liquidation_price,
            rationale=position.rationale,
            invalidation=position.invalidation,
            closing=closing,
        )

    @classmethod
    def of_order(cls, symbol: str, order: Order, *, equity: float, last_price: float) -> PositionView:
        """An order placed by the last cycle that the next candle's open will fill (or not)."""
        reference = order.entry_price if order.entry_price is not None else last_price
        notional = order_notional(order, equity)
        return cls(
            symbol=symbol,
            side=order.side,
            entry_price=reference,
            tp_price=order.tp_price,
            sl_price=order.sl_price,
            qty=notional / reference if reference > 0 else 0.0,
            leverage=order.leverage,
            margin=notional / order.leverage if order.leverage > 0 else 0.0,
            equity=equity,
            opened_ms=order.placed_ms,
            age_candles=0,
            last_price=last_price,
            liquidation_price=None,
            rationale=order.rationale,
            invalidation=order.invalidation,
            waiting=True,
        )


def _number(value: float | None) -> str:
    """A price as the model reads it: plain digits to about 5 significant figures, no separators."""
    if value is None:
        return "none"
    if not math.isfinite(value) or value <= 0:
        return "n/a" if not math.isfinite(value) else f"{value:g}"
    decimals = price_decimals(value)
    return f"{round(value, decimals):.{decimals}f}"


def position_text(view: PositionView) -> str:
    """The position as the model reads it: levels, unrealised P&L in R and %, age, its own thesis."""
    base = view.symbol.split("/")[0]
    quote = view.symbol.split("/")[1].split(":")[0] if "/" in view.symbol else ""
    if view.waiting:
        lines = [
            f"An order to open a {view.side_name} waits for the next candle's open: entry about "
            f"{_number(view.entry_price)}, TP {_number(view.tp_price)}, SL {_number(view.sl_price)}, "
            f"{view.leverage:g}x, margin {view.margin / view.equity * 100:.2f}% of equity."
            if view.equity > 0
            else f"An order to open a {view.side_name} waits for the next candle's open."
        ]
    else:
        r = view.unrealised_r
        equity_pct = view.equity_pct
        lines = [
            f"{view.side_name} {view.qty:.6g} {base} since {iso(view.opened_ms)} "
            f"({view.age_candles} candles): entry {_number(view.entry_price)}, TP {_number(view.tp_price)}, "
            f"SL {_number(view.sl_price)}, {view.leverage:.3g}x, "
            + (f"margin {view.margin / view.equity * 100:.2f}% of equity, " if view.equity > 0 else "")
            + f"liquidation {_number(view.liquidation_price)}.",
            f"Unrealised at the last close {_number(view.last_price)}: {view.unrealised_pnl:+.2f} {quote}"
            + (f", {r:+.2f}R" if r is not None else "")
            + f", {view.move_pct:+.2f}% on price"
            + (f", {equity_pct:+.2f}% of equity" if equity_pct is not None else "")
            + ".",
        ]
    if view.rationale:
        lines.append(f"Your rationale when you opened it: {view.rationale}")
    if view.invalidation:
        lines.append(f"Its invalidation, which Rez checks on every closed candle: {view.invalidation}")
    if view.closing:
        lines.append(f"It will be closed at the next candle's open: {view.closing}.")
    else:
        lines.append(
            "hold keeps it open (TP, SL and the invalidation still apply); close ends it at the next "
            "candle's open; a new buy or sell is refused while it is open."
        )
    return "\n".join(lines)


def decision_order(decision: Decision, placed_ms: int, *, add: bool = False) -> Order | None:
    """The order a decision places: None for a hold."""
    if decision.action == "hold":
        return None
    return Order(
        side=1 if decision.action == "buy" else -1,
        entry_price=decision.entry_price,
        tp_price=decision.tp_price,
        sl_price=decision.sl_price,
        leverage=decision.leverage,
        size_pct=decision.size_pct,
        placed_ms=placed_ms,
        ref=decision.trace_id or "",
        kind="close" if decision.action == "close" else "open",
        add=add,
        rationale=decision.rationale,
        invalidation=decision.invalidation,
    )


def order_notional(order: Order, equity: float) -> float:
    """What an order commits once filled: its share of ``equity`` times its leverage, in quote currency."""
    return equity * order.size_pct / 100 * order.leverage


def order_exposure_problem(
    profile: RiskProfile, order: Order, equity: float, open_notionals: Sequence[float]
) -> tuple[Hold, str] | None:
    """Whether an account may take an order opening or adding to a position, or why not.

    One rule for the paper account and a backtest's walk, so that a backtest refuses exactly what
    the paper account would.

    Args:
        profile: the limits across symbols (``max_open_positions``, ``max_total_exposure_pct``).
        order: an ``open`` order from ``decision_order``; ``order.add`` marks an add to the position
            already held on its symbol, which counts as no new position.
        equity: the account's equity, in quote currency.
        open_notionals: the notional of every position open, and every order waiting to open one,
            on the account, the order's own symbol included.
    """
    return exposure_problem(
        profile, open_notionals, equity, order_notional(order, equity), new_position=not order.add
    )


class Book(Protocol):
    """An account as one cycle sees it (see the module's doc)."""

    def view(self, symbol: str, as_of_ms: int, last_price: float) -> PositionView | None:
        """The position (or waiting order) on ``symbol`` at the cycle's market moment, or None."""
        ...

    def notes(self, symbol: str) -> tuple[str, ...]:
        """What the account did on ``symbol`` since the previous cycle, for the trace."""
        ...

    def admit(self, decision: Decision) -> tuple[Hold, str] | None:
        """Take a buy, sell or close the policy passed; or refuse it with a code and one line."""
        ...
