"""``rez paper``: the paper account ``rez decide`` keeps: its status, its history, a fresh start.

What the account holds goes to stdout (``--json``: one JSON object); questions and notes to stderr.
"""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

from rez_cli.cli.options import ConfigOption, JournalOption, JsonOption

app = typer.Typer(
    help="The paper account rez decide opens, keeps and closes positions on.", no_args_is_help=True
)

AccountOption = Annotated[
    str | None,
    typer.Option(
        "--exchange",
        "-e",
        help="The account to show: each exchange (sim, binance, ...) has its own. Default: every account.",
        show_default=False,
    ),
]


def _money(value: float) -> str:
    return f"{value:,.2f}"


@app.command("status")
def status(
    exchange: AccountOption = None,
    json_output: JsonOption = False,
    journal: JournalOption = None,
    config: ConfigOption = None,
) -> None:
    """Equity, realised and unrealised P&L, open positions and orders waiting for the next open.

    Positions are marked at the last close their book walked (rez decide walks it), not at a price
    fetched now.

    Example: rez paper status --json
    """
    from rez_cli.account.paper import account_status
    from rez_cli.cli.console import print_json_line, stdout_console
    from rez_cli.cli.traces_cmd import open_journal
    from rez_cli.clock import iso
    from rez_cli.errors import DataNotFound

    with open_journal(journal, config) as opened:
        ledger = opened.paper()
        names = [exchange] if exchange else [row.name for row in ledger.accounts()]
        found = [item for name in names if (item := account_status(ledger, name)) is not None]
    if exchange and not found:
        raise DataNotFound(
            f"no paper account for {exchange} in {opened.path}", hint="rez decide opens one on its first run"
        )
    if json_output:
        print_json_line({"accounts": found})
        return
    console = stdout_console()
    if not found:
        console.print(f"no paper account yet in {opened.path}: rez decide opens one", markup=False)
        return
    for item in found:
        console.print(
            f"{item['account']}: equity {_money(item['marked_equity'])} ({item['return_pct']:+.2f}% since "
            f"{_money(item['initial_equity'])}), cash {_money(item['equity'])}, realised "
            f"{item['realised_pnl']:+,.2f}, unrealised {item['unrealised_pnl']:+,.2f}",
            markup=False,
            soft_wrap=True,
        )
        for position in item["positions"]:
            r = position["unrealised_r"]
            console.print(
                f"  {position['symbol']} {position['side']} {position['qty']:.6g} at "
                f"{position['entry_price']:.10g} since {iso(position['entry_ms'])}: "
                f"TP {position['tp_price']}, SL {position['sl_price']}, {position['leverage']:.3g}x; "
                f"marked {position['mark_price']:.10g} "
                f"at {iso(position['marked_ms'])}: {position['unrealised_pnl']:+,.2f}"
                + (f" ({r:+.2f}R)" if r is not None else "")
                + (f"; invalidation: {position['invalidation']}" if position["invalidation"] else "")
                + (f"; closing at the next open ({position['closing']})" if position["closing"] else ""),
                markup=False,
                soft_wrap=True,
            )
        for order in item["orders"]:
            what = "close" if order["kind"] == "close" else f"open a {order['side']}"
            console.print(
                f"  {order['symbol']}: an order to {what} waits for the next open "
                f"(placed {iso(order['placed_ms'])})",
                markup=False,
                soft_wrap=True,
            )
        if not item["positions"] and not item["orders"]:
            console.print("  no position open", markup=False)


def _event_line(detail: dict[str, Any], kind: str) -> str:
    if kind == "close":
        r = detail.get("r_multiple")
        return (
            f"closed {detail.get('side')} by {detail.get('reason')}: {detail.get('entry_price')} -> "
            f"{detail.get('exit_price')}, P&L {float(detail.get('pnl') or 0):+,.2f}"
            + (f" ({float(r):+.2f}R)" if isinstance(r, int | float) else "")
        )
    if kind == "order":
        levels = ", ".join(
            f"{name} {detail[key]}"
            for name, key in (("entry", "entry_price"), ("tp", "tp_price"), ("sl", "sl_price"))
            if detail.get(key) is not None
        )
        return f"order: {detail.get('action')}" + (f" ({levels})" if levels else "")
    if kind == "fill":
        return f"filled at {detail.get('entry_price')}" if detail.get("entry_price") else "filled"
    return str(detail.get("note") or kind)


@app.command("history")
def history(
    exchange: AccountOption = None,
    symbol: Annotated[str | None, typer.Option("--symbol", "-s", help="Only this market.")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="The latest this many events.")] = 50,
    json_output: JsonOption = False,
    journal: JournalOption = None,
    config: ConfigOption = None,
) -> None:
    """The account's orders, fills, exits and notes, oldest first.

    Example: rez paper history --symbol BTC/USDT --json
    """
    from rez_cli.cli.console import print_json_line, stdout_console
    from rez_cli.cli.traces_cmd import open_journal
    from rez_cli.clock import iso
    from rez_cli.symbols import normalize_symbol

    wanted = normalize_symbol(symbol) if symbol is not None else None
    with open_journal(journal, config) as opened:
        ledger = opened.paper()
        names = [exchange] if exchange else [row.name for row in ledger.accounts()]
        events = [event for name in names for event in ledger.events(name, symbol=wanted, limit=limit)]
    if json_output:
        for event in events:
            print_json_line(
                {
                    "account": event.account,
                    "symbol": event.symbol,
                    "time": iso(event.ts_ms),
                    "ts_ms": event.ts_ms,
                    "kind": event.kind,
                    "trace_id": event.trace_id,
                    **event.detail,
                }
            )
        return
    console = stdout_console()
    if not events:
        console.print("no paper history yet", markup=False)
    for event in events:
        console.print(
            f"{iso(event.ts_ms)}  {event.account}  {event.symbol}  {_event_line(event.detail, event.kind)}",
            markup=False,
            soft_wrap=True,
        )


@app.command("reset")
def reset(
    exchange: AccountOption = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Reset without asking first.")] = False,
    journal: JournalOption = None,
    config: ConfigOption = None,
) -> None:
    """Throw the account's positions, orders and history away; the next rez decide starts afresh.

    Asks first, unless --yes. Without --exchange, every account is reset.

    Example: rez paper reset --exchange sim --yes
    """
    from rez_cli.cli.console import stderr_console, stdout_console
    from rez_cli.cli.traces_cmd import open_journal
    from rez_cli.errors import UsageError

    with open_journal(journal, config) as opened:
        ledger = opened.paper()
        names = [exchange] if exchange else [row.name for row in ledger.accounts()]
        names = [name for name in names if ledger.account(name) is not None]
        if not names:
            stdout_console().print("nothing to reset: no paper account", markup=False)
            return
        open_positions = sum(
            1 for name in names for book in ledger.books(name) if book.state.get("position") is not None
        )
        question = (
            f"reset the paper account{'s' if len(names) > 1 else ''} {', '.join(names)} "
            f"({open_positions} open position{'s' if open_positions != 1 else ''}) in {opened.path}?"
        )
        if not yes:
            if not sys.stdin.isatty():
                raise UsageError(
                    f"rez paper reset would {question.rstrip('?')}, and asks first",
                    hint="pass --yes to reset without asking",
                )
            stderr_console().print(f"{question} [y/N] ", end="", soft_wrap=True, markup=False)
            if sys.stdin.readline().strip().lower() not in ("y", "yes"):
                stderr_console().print("nothing reset", markup=False)
                return
        for name in names:
            books, events = ledger.reset(name)
            stdout_console().print(
                f"reset {name}: {books} book{'s' if books != 1 else ''} and {events} events deleted",
                markup=False,
            )
