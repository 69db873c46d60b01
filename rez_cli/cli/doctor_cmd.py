"""``rez doctor``: check what a decision needs, one line per check, with the fix for what fails."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated

import typer

from rez_cli.cli.options import ConfigOption, ExchangeOption, JournalOption, JsonOption

if TYPE_CHECKING:
    from rich.text import Text

    from rez_cli.doctor.checks import Check

_MARKS = {"ok": ("✓", "green"), "warn": ("!", "yellow"), "fail": ("✗", "red")}


def doctor(
    config: ConfigOption = None,
    exchange: ExchangeOption = None,
    symbol: Annotated[
        str, typer.Option("--symbol", "-s", help="The market that must be listed on the exchange.")
    ] = "BTC/USDT",
    journal: JournalOption = None,
    json_output: JsonOption = False,
) -> None:
    """Check Python, packages, config, profile, exchange, model endpoint and journal; say how to fix each.

    Example: rez doctor --exchange kraken --symbol ETH/USD

    Exit codes: 0 nothing failed (warnings allowed), 2 a check failed.
    """
    from rez_cli.cli.console import print_json_line, stdout_console
    from rez_cli.doctor.checks import failed, run_checks
    from rez_cli.errors import ExitCode
    from rez_cli.symbols import normalize_symbol

    checks = run_checks(config=config, exchange=exchange, symbol=normalize_symbol(symbol), journal=journal)
    if json_output:
        print_json_line({"ok": not failed(checks), "checks": [check.as_json() for check in checks]})
    else:
        console = stdout_console()
        for line in _lines(checks):
            console.print(line, soft_wrap=True)
    if failed(checks):
        raise typer.Exit(int(ExitCode.USAGE))


def _lines(checks: Sequence[Check]) -> list[Text]:
    from rich.text import Text

    from rez_cli.display import display_str

    width = max(len(check.name) for check in checks)
    lines = []
    for check in checks:
        mark, style = _MARKS[check.status]
        line = Text()
        line.append(mark, style=f"bold {style}")
        line.append(display_str(f" {check.name:<{width}}  ", multiline=False), style="bold")
        # A detail may quote a server's error message or a config value: shown, never obeyed.
        line.append(display_str(check.detail, multiline=False))
        if check.fix and check.status != "ok":
            line.append(display_str(f"  → {check.fix}", multiline=False), style=style)
        lines.append(line)
    failures = sum(check.status == "fail" for check in checks)
    warnings = sum(check.status == "warn" for check in checks)
    if failures:
        summary = f"{failures} check{'s' if failures > 1 else ''} failed"
    else:
        summary = "ready" + (f" ({warnings} warning{'s' if warnings > 1 else ''})" if warnings else "")
    lines.append(Text(summary, style="bold"))
    return lines
