"""``rez backtest`` as a user sees a liquidation: a scripted model over HTTP buys or sells at 10x once.

The candles are made here: 80 hours of a seeded market, then hand-made ones after the one decision
that trades (at the close of the 80th hour, when the script answers its first request): the fill's
candle, a wick through the liquidation price, and a recovery through the target that comes too late.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from tests.support.candles import START_MS, make_candles
from tests.support.cli import Result, run
from tests.support.openai_server import FakeOpenAI, Reply, reply

HOUR = 3_600_000
WARMUP = 80
DECIDED_MS = START_MS + WARMUP * HOUR
SPAN = ("--from", str(DECIDED_MS), "--to", str(DECIDED_MS + 6 * HOUR))  # ms since epoch
NO_STOP_10X = """
max_leverage = 10
risk_per_trade_pct = 50
max_position_pct = 50
require_stop_loss = false
min_reward_risk = 0
max_entry_deviation_pct = 2.0
"""


def write_market(directory: Path, moves: list[tuple[float, float, float, float]]) -> float:
    """The warm-up, then one candle per move (open, high, low, close as multiples of the last close)."""
    warmup = make_candles(WARMUP, seed=3, start_price=100.0)
    last = float(warmup["close"].iloc[-1])
    made = pd.DataFrame(
        [
            {
                "timestamp": DECIDED_MS + i * HOUR,
                "open": round(o * last, 6),
                "high": round(h * last, 6),
                "low": round(low * last, 6),
                "close": round(c * last, 6),
                "volume": 100.0,
            }
            for i, (o, h, low, c) in enumerate(moves)
        ]
    )
    directory.mkdir(parents=True, exist_ok=True)
    pd.concat([warmup, made], ignore_index=True).to_csv(directory / "SOL_USDT-1h.csv", index=False)
    return last


CALM = (1.0, 1.003, 0.997, 1.0)


def trader(action: str, stop: float | None, target: float) -> Any:
    """The first request gets a 10x trade at the last price (stop and target as fractions of it)."""
    asked = 0

    def step(body: dict[str, Any]) -> Reply:
        nonlocal asked
        asked += 1
        if asked > 1:
            return reply(json.dumps({"action": "hold", "confidence": 0.5, "rationale": "waiting"}))
        found = re.search(r"Last price ([\d,]+(?:\.\d+)?)", body["messages"][1]["content"])
        assert found is not None
        price = float(found[1].replace(",", ""))
        sign = 1 if action == "buy" else -1
        answer = {
            "action": action,
            "entry_price": price,
            "tp_price": round(price * (1 + sign * target), 6),
            "sl_price": None if stop is None else round(price * (1 - sign * stop), 6),
            "leverage": 10,
            "confidence": 0.7,
            "rationale": "a scripted 10x trade",
            "invalidation": None,
        }
        return reply(json.dumps(answer))

    return step


@pytest.fixture
def model(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    def start(step: Any) -> FakeOpenAI:
        fake = FakeOpenAI([step], repeat_last=True)
        fake.serve()
        started.append(fake)
        monkeypatch.setenv("OPENAI_BASE_URL", fake.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test-liquidation")
        monkeypatch.setenv("REZ__LLM__MODEL", "test-model")
        return fake

    started: list[FakeOpenAI] = []
    yield start
    for fake in started:
        fake.stop()


def backtest(capsys: pytest.CaptureFixture[str], data: Path, profile: str, *extra: str) -> Result:
    return run(
        capsys, "backtest", "SOL/USDT", "--data", str(data), "--timeframes", "1h", "--mode", "react",
        "--profile", profile, *SPAN, "--no-baselines", "--no-llm-cache", *extra,
    )  # fmt: skip


def only_trade(result: Result) -> tuple[dict[str, Any], dict[str, Any]]:
    assert result.exit_code == 0, result.stderr
    [report] = result.json_lines()
    assert report["cycles"] == 6
    assert report["decisions"][0]["action"] in ("buy", "sell"), report["decisions"][0]
    [trade] = report["trades"]
    return report, trade


@pytest.mark.parametrize(
    ("action", "moves"),
    [
        # Wick 12% under the close, then up through the 5% target.
        ("buy", [CALM, (1.0, 1.002, 0.88, 0.99), (0.99, 1.08, 0.985, 1.07), CALM, CALM, CALM]),
        # Wick 12% over it, then down through the target.
        ("sell", [CALM, (1.0, 1.12, 0.998, 1.01), (1.01, 1.015, 0.92, 0.93), CALM, CALM, CALM]),
    ],
)
def test_a_10x_position_wicking_through_liquidation_is_a_loss_of_its_margin(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    model: Any,
    action: str,
    moves: list[tuple[float, float, float, float]],
) -> None:
    last = write_market(tmp_path / "data", moves)
    (tmp_path / "tenx.toml").write_text(NO_STOP_10X)
    model(trader(action, stop=None, target=0.05))
    report, trade = only_trade(backtest(capsys, tmp_path / "data", str(tmp_path / "tenx.toml"), "--json"))
    side = 1 if action == "buy" else -1
    # A market order at the next open, 0.02% slippage against it.
    fill = last * (1 + side * 0.0002)
    liquidation = fill * 0.9 / 0.995 if side > 0 else fill * 1.1 / 1.005
    # No stop: the policy commits 50% risk / (10x × 100% at risk) = 5% of equity as margin.
    assert report["decisions"][0]["size_pct"] == 5
    margin = 10_000 * 0.05
    qty = margin * 10 / fill
    fees = margin * 10 * 0.001 + qty * liquidation * 0.001
    assert trade["side"] == ("long" if side > 0 else "short")
    assert trade["entry_price"] == pytest.approx(fill)
    assert trade["reason"] == "liquidation"
    assert trade["exit_price"] == pytest.approx(liquidation)
    assert trade["liquidation_price"] == pytest.approx(liquidation)
    assert trade["exit_ms"] == DECIDED_MS + 2 * HOUR  # the close of the wick's candle
    assert trade["fees"] == pytest.approx(fees)
    assert trade["pnl"] == pytest.approx(-margin - fees)
    metrics = report["metrics"]
    assert (metrics["trades"], metrics["liquidations"], metrics["win_rate"]) == (1, 1, 0)
    assert metrics["final_equity"] == pytest.approx(10_000 - margin - fees)
    assert metrics["total_return_pct"] == pytest.approx(-(margin + fees) / 100)
    assert report["fills"]["maintenance_margin_pct"] == 0.5


def test_the_aggressive_profile_stop_between_liquidation_and_entry_after_the_fill(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, model: Any
) -> None:
    # A 9.4% stop at 10x: from the decision's entry the liquidation (9.55% under it) lies beyond the
    # stop. The next candle opens 2% higher; from that fill it is 0.9045 × 1.0204 = 0.9229 of the
    # entry, above the 0.906 stop. The wick to 0.915 reaches it without touching the stop.
    moves = [
        (1.02, 1.025, 1.015, 1.02),
        (1.02, 1.025, 0.915, 1.01),
        (1.01, 1.13, 1.005, 1.125),
        CALM,
        CALM,
        CALM,
    ]
    last = write_market(tmp_path / "data", moves)
    model(trader("buy", stop=0.094, target=0.12))
    report, trade = only_trade(backtest(capsys, tmp_path / "data", "aggressive", "--json"))
    fill = last * 1.02 * 1.0002
    liquidation = fill * 0.9 / 0.995
    assert liquidation > report["decisions"][0]["sl_price"] > last * 0.9 / 0.995
    margin = 10_000 * report["decisions"][0]["size_pct"] / 100
    fees = margin * 10 * 0.001 + margin * 10 / fill * liquidation * 0.001
    assert (trade["reason"], trade["exit_price"]) == ("liquidation", pytest.approx(liquidation))
    assert trade["pnl"] == pytest.approx(-margin - fees)
    assert report["metrics"]["liquidations"] == 1


def test_the_terminal_summary_and_the_html_report_name_the_liquidation(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, model: Any
) -> None:
    write_market(
        tmp_path / "data", [CALM, (1.0, 1.002, 0.88, 0.99), (0.99, 1.08, 0.985, 1.07), CALM, CALM, CALM]
    )
    (tmp_path / "tenx.toml").write_text(NO_STOP_10X)
    model(trader("buy", stop=None, target=0.05))
    page = tmp_path / "report.html"
    result = backtest(capsys, tmp_path / "data", str(tmp_path / "tenx.toml"), "--report", str(page))
    assert result.exit_code == 0, result.stderr
    assert re.search(r"liquidations\W+1\b", result.stdout)
    assert "exits: 1 liquidation" in result.stdout
    assert "maintenance margin 0.5%" in result.stdout
    text = page.read_text(encoding="utf-8")
    assert "<td class='liquidation'>liquidation</td>" in text
    assert "<td>liquidations</td><td>1</td>" in text
    # The chart marks it apart from the other exits.
    assert '"name":"liquidation"' in text
