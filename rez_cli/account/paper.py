"""The paper account: the positions ``rez decide`` opens, kept in the journal from run to run.

One account per exchange (``sim`` apart from ``binance``), shared by every symbol decided on it,
starting with ``[paper] equity``. Each symbol has a book: the candles of the primary timeframe walked
so far and what they left (a position, an order waiting for the next open, a close due at the next
open). A cycle first ``settle``s its symbol: the candles closed since the book's last walk go through
the backtest's engine (``fills``: next-open entries, TP/SL with the stop first, gaps at the open,
fees, slippage, liquidation, and the invalidation on every closed candle), so exits between runs
happen where the candles say, without the model. Only then is the model asked, with the position in
its prompt; the order its decision places is ``admit``ted with the account's limits checked in the
same transaction that writes it.

Candles the market does not have (an outage, a gap in the files) are never invented: the walk goes
over the candles that exist and the trace says how many were missing. A run killed mid-update loses
nothing: each step is one transaction, and the next cycle walks from where the book was left.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from rez_cli.account.book import PositionView, decision_order, order_exposure_problem, order_notional
from rez_cli.account.fills import (
    Account,
    AccountState,
    Candle,
    FillConfig,
    Trade,
)
from rez_cli.account.watch import FrameWatch, condition_of
from rez_cli.clock import iso
from rez_cli.config.settings import RiskProfile, Settings
from rez_cli.decision.codes import Hold
from rez_cli.decision.model import Decision
from rez_cli.errors import ExchangeUnavailable, UsageError
from rez_cli.journal.paper import BookRow, PaperLedger, PaperTx
from rez_cli.market.source import MarketSource
from rez_cli.timeframes import timeframe_ms

# A book left alone longer than this many candles is walked over its last ones only (and says so).
MAX_REPLAY_CANDLES = 5_000


@dataclass
class Settlement:
    """What settling one symbol did: the trades it closed, the orders it filled, what it noticed."""

    symbol: str
    walked_from_ms: int
    walked_to_ms: int
    candles: int = 0
    missing: int = 0
    trades: list[Trade] = field(default_factory=list)
    filled: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def trade_json(symbol: str, trade: Trade) -> dict[str, Any]:
    return {
        "symbol": symbol,
        "trace_id": trade.ref or None,
        "side": "long" if trade.side > 0 else "short",
        "entry_ms": trade.entry_ms,
        "entry_price": trade.entry_price,
        "exit_ms": trade.exit_ms,
        "exit_price": trade.exit_price,
        "reason": trade.reason,
        "qty": trade.qty,
        "pnl": trade.pnl,
        "fees": trade.fees,
        "r_multiple": trade.r_multiple,
        "return_pct": trade.return_pct,
    }


def _candles(frame: pd.DataFrame, after_ms: int, until_ms: int, step: int) -> list[Candle]:
    """The candles that opened at or after ``after_ms`` and closed by ``until_ms``."""
    # Column arrays, not a filtered frame: a cycle walks a candle or two, and pandas' filtering and
    # row iteration cost milliseconds for them.
    opens_ms = frame["timestamp"].to_numpy(dtype="int64")
    first = int(opens_ms.searchsorted(after_ms, side="left"))
    last = int(opens_ms.searchsorted(until_ms - step, side="right"))
    if first >= last:
        return []
    columns = [frame[name].to_numpy(dtype="float64")[first:last] for name in ("open", "high", "low", "close")]
    return [
        Candle(int(ts), float(o), float(h), float(low), float(c))
        for ts, o, h, low, c in zip(opens_ms[first:last], *columns, strict=True)
    ]


class PaperBook:
    """The paper account as the cycles of one ``rez decide`` run see it (a ``Book``).

    Args:
        ledger: the journal's paper rows.
        settings: ``[paper]``, the primary timeframe and the candles of warm-up.
        profile: the limits ``admit`` checks, and the maintenance margin of the fills.
        account: the account's name: the exchange's.
        persist: false for a dry run: the walk is done in memory and nothing is written.
    """

    def __init__(
        self,
        ledger: PaperLedger,
        settings: Settings,
        profile: RiskProfile,
        *,
        account: str,
        persist: bool = True,
    ) -> None:
        self.ledger = ledger
        self.settings = settings
        self.profile = profile
        self.account_name = account
        self.persist = persist
        self.timeframe = settings.market.timeframe
        self.step = timeframe_ms(self.timeframe)
        self.fills = FillConfig(maintenance_margin_pct=profile.maintenance_margin_pct)
        self.settlements: dict[str, Settlement] = {}
        self._states: dict[str, AccountState] = {}
        self._equity: dict[str, float] = {}

    # -- before the model -------------------------------------------------------------------------

    async def settle(self, source: MarketSource, symbol: str, now_ms: int) -> Settlement:
        """Walk the candles of ``symbol`` closed since its book's last walk, up to ``now_ms``.

        Raises:
            UsageError: ``now_ms`` lies before the book's last walk (a ``--as-of`` in its past).
            DataError, ExchangeError: the candles cannot be had (an unreachable exchange is noted
                instead, and the book stays as it was).
        """
        step = self.step
        last_close = now_ms // step * step
        stored = self._stored(symbol)
        if stored is None:
            return self._open_book(symbol, last_close)
        if last_close < stored.walked_ms:
            raise UsageError(
                f"the paper account's {symbol} book on {self.account_name} has walked to "
                f"{iso(stored.walked_ms)}, after the moment asked ({iso(now_ms)})",
                hint="decide with --no-paper for a moment in its past, or start over with rez paper reset",
            )
        state = AccountState.from_json(stored.state)
        settlement = Settlement(symbol, stored.walked_ms, stored.walked_ms)
        expected = (last_close - stored.walked_ms) // step
        if expected <= 0:
            self._remember(symbol, state, None)
            return self._keep(settlement)
        if expected > MAX_REPLAY_CANDLES:
            settlement.notes.append(
                f"the book was last walked {expected} candles ago: "
                f"only the last {MAX_REPLAY_CANDLES} are walked"
            )
        try:
            candles, watch = await self._fetch(source, symbol, state, stored.walked_ms, now_ms, expected)
        except ExchangeUnavailable as error:
            settlement.notes.append(
                f"the candles since {iso(stored.walked_ms)} could not be had: {error.one_line()}"
            )
            self._remember(symbol, state, None)
            return self._keep(settlement)
        settlement.candles = len(candles)
        settlement.missing = max(0, min(expected, MAX_REPLAY_CANDLES) - len(candles))
        if settlement.missing:
            settlement.notes.append(
                f"{settlement.missing} of {min(expected, MAX_REPLAY_CANDLES)} {self.timeframe} candles since "
                f"{iso(stored.walked_ms)} are missing from the market: the position was walked over the "
                f"{len(candles)} that exist"
            )
        walked_to = candles[-1].ts_ms + step if candles else stored.walked_ms
        settlement.walked_to_ms = walked_to
        if not self.persist:
            account = self._walk(symbol, state, candles, watch, self._equity_now(), now_ms, settlement)
            self._remember(symbol, AccountState.of(account), account.equity)
            return self._keep(settlement)
        with self.ledger.transaction() as tx:
            row = tx.account(self.account_name, initial_equity=self.settings.paper.equity)
            book = tx.book(self.account_name, symbol)
            if book is None or book.walked_ms != stored.walked_ms:
                # Another run moved this book since it was read (the symbol lock makes this rare):
                # its walk stands, and this cycle goes on from it without walking again.
                fresh = AccountState.from_json(book.state) if book is not None else AccountState()
                self._remember(symbol, fresh, row.equity)
                return self._keep(settlement)
            account = self._walk(symbol, state, candles, watch, row.equity, now_ms, settlement)
            tx.add_equity(self.account_name, account.equity - row.equity)
            after = AccountState.of(account)
            tx.save_book(self.account_name, symbol, self.timeframe, walked_to, _stored_state(after, candles))
            self._record(tx, symbol, state, account, settlement)
        self._remember(symbol, after, row.equity + (account.equity - row.equity))
        return self._keep(settlement)

    def _keep(self, settlement: Settlement) -> Settlement:
        self.settlements[settlement.symbol] = settlement
        return settlement

    def _stored(self, symbol: str) -> BookRow | None:
        return next((book for book in self.ledger.books(self.account_name) if book.symbol == symbol), None)

    def _equity_now(self) -> float:
        row = self.ledger.account(self.account_name)
        return row.equity if row is not None else self.settings.paper.equity

    def _open_book(self, symbol: str, last_close: int) -> Settlement:
        settlement = Settlement(symbol, last_close, last_close)
        if self.persist:
            with self.ledger.transaction() as tx:
                row = tx.account(self.account_name, initial_equity=self.settings.paper.equity)
                if tx.book(self.account_name, symbol) is None:
                    tx.save_book(
                        self.account_name, symbol, self.timeframe, last_close, AccountState().to_json()
                    )
                equity = row.equity
        else:
            equity = self._equity_now()
        self._remember(symbol, AccountState(), equity)
        return self._keep(settlement)

    async def _fetch(
        self,
        source: MarketSource,
        symbol: str,
        state: AccountState,
        walked_ms: int,
        now_ms: int,
        expected: int,
    ) -> tuple[list[Candle], FrameWatch | None]:
        count = min(expected, MAX_REPLAY_CANDLES)
        primary = (await source.fetch(symbol, [self.timeframe], count + 1, until_ms=now_ms))[self.timeframe]
        candles = _candles(primary, walked_ms, now_ms, self.step)
        texts = [
            state.position.invalidation if state.position else None,
            state.pending.invalidation if state.pending else None,
        ]
        conditions = [condition for condition in map(condition_of, texts) if condition is not None]
        if not conditions:
            return candles, None
        frames: dict[str, pd.DataFrame] = {}
        for condition in conditions:
            for timeframe in condition.timeframes:
                if timeframe in frames:
                    continue
                span = -(-(now_ms - walked_ms) // timeframe_ms(timeframe)) + 1
                limit = span + max(self.settings.market.candles, condition.warmup_bars(timeframe))
                frames[timeframe] = (await source.fetch(symbol, [timeframe], limit, until_ms=now_ms))[
                    timeframe
                ]
        return candles, FrameWatch(frames)

    def _walk(
        self,
        symbol: str,
        state: AccountState,
        candles: list[Candle],
        watch: FrameWatch | None,
        equity: float,
        now_ms: int,
        settlement: Settlement,
    ) -> Account:
        account = Account.resume(equity, self.fills, candles, self.step, state=state, watch=watch)
        account.advance(now_ms)
        settlement.trades.extend(account.trades)
        settlement.notes.extend(account.notes)
        if watch is not None:
            settlement.notes.extend(watch.unchecked)
        pending = state.pending
        if pending is not None and account.pending is None and pending.kind == "open":
            held = account.position
            filled = next((trade for trade in account.trades if trade.ref == pending.ref), None) or held
            if filled is not None:
                settlement.filled.append(pending.ref)
                side = "long" if filled.side > 0 else "short"
                settlement.notes.append(
                    f"opened the {side} at {filled.entry_price:.10g} ({iso(filled.entry_ms)})"
                )
            else:
                settlement.notes.append("the order placed by the last decision was not filled")
        for trade in account.trades:
            r = f" ({trade.r_multiple:+.2f}R)" if trade.r_multiple is not None else ""
            settlement.notes.append(
                f"closed the {'long' if trade.side > 0 else 'short'} by {trade.reason} at "
                f"{trade.exit_price:.10g}{r}, P&L {trade.pnl:+.2f}"
            )
        return account

    def _record(
        self, tx: PaperTx, symbol: str, before: AccountState, account: Account, settlement: Settlement
    ) -> None:
        name = self.account_name
        for ref in settlement.filled:
            position = account.position
            filled = next((trade for trade in account.trades if trade.ref == ref), None)
            source = position if position is not None and position.ref == ref else filled
            detail: dict[str, Any] = {"trace_id": ref}
            at = settlement.walked_from_ms
            if source is not None:
                side = "long" if source.side > 0 else "short"
                detail.update(entry_price=source.entry_price, qty=source.qty, side=side)
                at = source.entry_ms
            tx.event(name, symbol, at, "fill", detail, trace_id=ref or None)
        for trade in account.trades:
            tx.event(
                name, symbol, trade.exit_ms, "close", trade_json(symbol, trade), trace_id=trade.ref or None
            )
        for note in settlement.notes:
            # Closes and fills have events of their own.
            if not note.startswith(("closed the ", "opened the ")):
                tx.event(name, symbol, settlement.walked_to_ms, "note", {"note": note})

    def _remember(self, symbol: str, state: AccountState, equity: float | None) -> None:
        self._states[symbol] = state
        self._equity[symbol] = equity if equity is not None else self._equity_now()

    # -- the Book the orchestrator uses -----------------------------------------------------------

    def view(self, symbol: str, as_of_ms: int, last_price: float) -> PositionView | None:
        state = self._states.get(symbol)
        if state is None:
            return None
        equity = self._equity.get(symbol, self.settings.paper.equity)
        if state.position is not None:
            closing = state.closing
            pending_close = state.pending is not None and state.pending.kind == "close"
            return PositionView.of_position(
                symbol,
                state.position,
                equity=equity,
                last_price=last_price,
                age_candles=max(0, (as_of_ms - state.position.entry_ms) // self.step),
                closing=(closing.detail or closing.reason)
                if closing is not None
                else ("a close order waits" if pending_close else None),
            )
        if state.pending is not None and state.pending.kind == "open":
            return PositionView.of_order(symbol, state.pending, equity=equity, last_price=last_price)
        return None

    def notes(self, symbol: str) -> tuple[str, ...]:
        settlement = self.settlements.get(symbol)
        return tuple(settlement.notes) if settlement is not None else ()

    def admit(self, decision: Decision) -> tuple[Hold, str] | None:
        """Write the order of a buy, sell or close, after checking the account's limits with every
        book's position in the same transaction (a run on another symbol waits for it)."""
        symbol = decision.symbol
        if not self.persist:
            return None
        with self.ledger.transaction() as tx:
            row = tx.account(self.account_name, initial_equity=self.settings.paper.equity)
            books = {book.symbol: AccountState.from_json(book.state) for book in tx.books(self.account_name)}
            state = books.get(symbol, AccountState())
            held = state.position
            order = decision_order(decision, decision.timestamp, add=held is not None)
            if order is None:
                return None
            if order.kind == "close":
                if held is None or state.closing is not None or state.pending is not None:
                    return (
                        Hold.NO_POSITION,
                        "close: no position is open on the paper account (or it is closing)",
                    )
            else:
                if state.pending is not None:
                    return (
                        Hold.POSITION_OPEN,
                        "an order placed by an earlier decision waits for the next open",
                    )
                if held is not None and not (
                    order.add and order.side == held.side and self.profile.allow_adding
                ):
                    return Hold.POSITION_OPEN, "a position is already open on the paper account"
                open_notionals = [
                    notional for other in books.values() if (notional := _committed(other, row.equity)) > 0
                ]
                refused = order_exposure_problem(self.profile, order, row.equity, open_notionals)
                if refused is not None:
                    return refused
            after = AccountState(held, order, state.closing, state.checked_ms)
            stored = tx.book(self.account_name, symbol)
            walked = stored.walked_ms if stored is not None else decision.as_of or decision.timestamp
            kept = {**stored.state, **after.to_json()} if stored is not None else after.to_json()
            tx.save_book(self.account_name, symbol, self.timeframe, walked, kept)
            tx.event(
                self.account_name,
                symbol,
                decision.timestamp,
                "order",
                {
                    "action": decision.action,
                    "entry_price": decision.entry_price,
                    "tp_price": decision.tp_price,
                    "sl_price": decision.sl_price,
                    "leverage": decision.leverage,
                    "size_pct": decision.size_pct,
                    "invalidation": decision.invalidation,
                },
                trace_id=decision.trace_id,
            )
        self._states[symbol] = after
        settlement = self.settlements.get(symbol)
        if settlement is not None:
            # Said to the user after the decision (the trace's notes were taken before it).
            what = (
                "close the position"
                if order.kind == "close"
                else f"{decision.action} ({decision.size_pct:g}% of equity)"
            )
            settlement.notes.append(f"order placed: {what} at the next candle's open")
        return None


def _stored_state(state: AccountState, candles: list[Candle]) -> dict[str, Any]:
    """The book's state as stored, with the last close walked: ``rez paper status`` marks on it."""
    stored = state.to_json()
    if candles:
        stored["last_close"] = candles[-1].close
        stored["last_close_ms"] = candles[-1].ts_ms
    return stored


def _committed(state: AccountState, equity: float) -> float:
    """The notional a book holds or is about to: its position's, or its waiting order's."""
    if state.position is not None:
        return state.position.notional
    order = state.pending
    if order is not None and order.kind == "open":
        return order_notional(order, equity)
    return 0.0


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def account_status(ledger: PaperLedger, name: str) -> dict[str, Any] | None:
    """``rez paper status --json`` for one account: equity, P&L, positions and waiting orders.

    A position is marked at the last close its book walked (``marked_ms``), never at a price fetched
    now: the status reads the journal only. ``equity`` is the cash (closed trades and every fee paid,
    the open positions' entry fees included); ``marked_equity`` adds the open positions' unrealised
    P&L. ``realised_pnl`` sums the closed trades, both fees included.
    """
    row = ledger.account(name)
    if row is None:
        return None
    positions: list[dict[str, Any]] = []
    orders: list[dict[str, Any]] = []
    unrealised = 0.0
    for book in ledger.books(name):
        state = AccountState.from_json(book.state)
        last = _number(book.state.get("last_close"))
        position = state.position
        if position is not None:
            mark = last if last is not None else position.entry_price
            pnl = position.gross_pnl(mark)
            unrealised += pnl
            risk = position.risk
            positions.append(
                {
                    "symbol": book.symbol,
                    "side": "long" if position.side > 0 else "short",
                    "qty": position.qty,
                    "entry_price": position.entry_price,
                    "entry_ms": position.entry_ms,
                    "tp_price": position.tp_price,
                    "sl_price": position.sl_price,
                    "leverage": position.leverage,
                    "margin": position.margin,
                    "liquidation_price": position.liquidation_price,
                    "mark_price": mark,
                    "marked_ms": book.walked_ms,
                    "unrealised_pnl": pnl,
                    "unrealised_r": pnl / risk if risk else None,
                    "invalidation": position.invalidation,
                    "closing": state.closing.reason if state.closing is not None else None,
                    "trace_id": position.ref or None,
                }
            )
        if state.pending is not None:
            order = state.pending
            orders.append(
                {
                    "symbol": book.symbol,
                    "kind": order.kind,
                    "side": "long" if order.side > 0 else "short",
                    "entry_price": order.entry_price,
                    "tp_price": order.tp_price,
                    "sl_price": order.sl_price,
                    "leverage": order.leverage,
                    "size_pct": order.size_pct,
                    "placed_ms": order.placed_ms,
                    "trace_id": order.ref or None,
                }
            )
    realised = ledger.realised_pnl(name)
    return {
        "account": name,
        "initial_equity": row.initial_equity,
        "equity": row.equity,
        "realised_pnl": realised,
        "unrealised_pnl": unrealised,
        "marked_equity": row.equity + unrealised,
        "return_pct": (row.equity + unrealised - row.initial_equity) / row.initial_equity * 100,
        "positions": positions,
        "orders": orders,
        "created_ms": row.created_ms,
        "updated_ms": row.updated_ms,
    }
