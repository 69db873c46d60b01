"""A reasoning mode is one file and one registration: a plugin's mode runs through ``rez decide``
and ``rez backtest`` like Rez's own, and ``--help`` lists it.

The mode here is what a plugin would ship: a function of the reasoning manager's contract that reads
the cycle's services (the typed context) and writes its trace, registered with ``register_mode``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from rez_cli import available_modes, register_mode, unregister_mode
from rez_cli.reasoning.modes import CycleServices
from tests.support.cli import run

AS_OF = "2021-03-01T12:00"
SIM = ("--exchange", "sim")
TOY = "fade"


async def fade_mode(payload: dict[str, Any], context: Any, timeout_ms: int) -> list[dict[str, Any]]:
    """Sells at the last price, stop 2 ATR above, target 4 ATR below, whatever the market does."""
    assert isinstance(context, CycleServices)
    price, atr = context.context.last_price, context.context.primary_atr
    assert atr is not None
    context.trace.mode = TOY
    context.trace.notes.append(f"faded {price:g} with ATR {atr:g}")
    answer = {
        "action": "sell",
        "entry_price": price,
        "tp_price": round(price - 4 * atr, 2),
        "sl_price": round(price + 2 * atr, 2),
        "leverage": 1,
        "confidence": 0.55,
        "rationale": "fade: every rally is sold",
        "invalidation": f"close_1h > {round(price + 2 * atr, 2)}",
    }
    return [
        {"signal_type": "decision", "payload": {"answer": answer, "source": "native"}, "confidence": 0.55}
    ]


@pytest.fixture
def toy_mode() -> Iterator[str]:
    register_mode(TOY, lambda: fade_mode, needs_model=False, help="sells every rally")
    try:
        yield TOY
    finally:
        unregister_mode(TOY)


def test_a_registered_mode_decides_through_the_cli_and_is_journaled(
    capsys: pytest.CaptureFixture[str], toy_mode: str
) -> None:
    result = run(capsys, "decide", "BTC/USDT", *SIM, "--as-of", AS_OF, "--mode", toy_mode, "--json")
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""  # asked for by name: no note about the model
    [decision] = result.json_lines()
    assert (decision["mode"], decision["action"], decision["source"], decision["error"]) == (
        toy_mode,
        "sell",
        "native",
        None,
    )
    assert decision["sl_price"] > decision["entry_price"] > decision["tp_price"]
    assert decision["size_pct"] > 0  # sized by the profile's policy, as any decision is
    record = run(capsys, "traces", "export", decision["trace_id"]).json_lines()[0]
    assert record["mode"] == toy_mode
    assert record["trace"]["mode"] == toy_mode
    [note] = record["trace"]["notes"]
    assert note.startswith("faded ")
    assert [verdict["error"] for verdict in record["trace"]["verdicts"]] == [None]

    shown = run(capsys, "decide", "BTC/USDT", *SIM, "--as-of", AS_OF, "--mode", toy_mode, "--no-paper")
    assert shown.exit_code == 0
    assert f"mode {toy_mode}" in shown.stdout
    assert "fade: every rally is sold" in shown.stdout


def test_a_registered_mode_backtests(capsys: pytest.CaptureFixture[str], toy_mode: str) -> None:
    result = run(
        capsys, "backtest", "BTC/USDT", *SIM, "--mode", toy_mode,
        "--from", "2021-02-01", "--to", "2021-02-03", "--every", "6", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    [report] = result.json_lines()
    assert report["mode"] == toy_mode
    assert report["decisions"]
    # It sells every time; while its short is open the policy holds that (position_open).
    assert {row["action"] for row in report["decisions"] if row["error"] is None} == {"sell"}
    assert {row["error"] for row in report["decisions"] if row["action"] == "hold"} <= {"position_open"}
    assert report["baselines"]["rules"] is not None  # the rules baseline is walked beside it


def test_an_unregistered_mode_is_unknown_again(capsys: pytest.CaptureFixture[str]) -> None:
    register_mode(TOY, lambda: fade_mode, needs_model=False, help="sells every rally")
    assert TOY in available_modes()
    unregister_mode(TOY)
    assert TOY not in available_modes()
    for command in (["decide", "BTC/USDT"], ["backtest", "BTC/USDT"]):
        result = run(capsys, *command, *SIM, "--mode", TOY)
        assert result.exit_code == 2
        assert result.stderr == (f"rez: error: unknown mode {TOY!r} (use --mode react or --mode rules)\n")


def _help(capsys: pytest.CaptureFixture[str], command: str) -> str:
    result = run(capsys, command, "--help")
    assert result.exit_code == 0
    # The help is a table: its cells wrap, and each line is framed by the table's borders.
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", result.stdout).split())


@pytest.mark.parametrize("command", ["decide", "backtest"])
def test_help_lists_the_available_modes(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, command: str
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    assert available_modes()[:2] == ["react", "rules"]
    text = _help(capsys, command)
    assert "react (the model reasons with tools) or rules (deterministic baseline)." in text
    assert "Default: react when a model is configured, else rules." in text
    register_mode(TOY, lambda: fade_mode, needs_model=False, help="sells every rally")
    try:
        text = _help(capsys, command)
    finally:
        unregister_mode(TOY)
    assert (
        "react (the model reasons with tools), rules (deterministic baseline) or fade (sells every rally)."
        in text
    )
