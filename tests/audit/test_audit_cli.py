"""``rez audit`` end to end against loopback fake models (issue 11, "Done when").

Two fakes with distinct styles trade the same simulated candles. One "remembers": it reads the true
date from the prompt and answers from the real future of the candles (which the test gives it), and
continues a probe's window with the real closes. The other reasons only from the context: an RSI
rule on the RSI the prompt shows, and a probe answered with the last close. The first must be graded
D, the second not.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from rez_cli.journal.store import Journal
from rez_cli.market.sim import SimSource
from tests.support.cli import Result, run
from tests.support.openai_server import FakeOpenAI, Reply, reply

HOUR_MS = 3_600_000
SPAN = ("--from", "2021-01-01", "--to", "2021-01-08", "--every", "2")
# The cutoff inside the span, so that the split has two sides.
CUTOFF = ("--training-cutoff", "2021-01-05")
AUDIT_OPTIONS = ("--sample", "16", "--probes", "3", "--horizon", "6")

Script = Callable[[dict[str, Any]], Reply]


def true_closes() -> dict[int, float]:
    """The sim market's 1h closes by close time: what the remembering model 'has seen'."""

    async def fetch() -> dict[int, float]:
        source = SimSource(now_ms=1_610_236_800_000)
        frame = (await source.fetch("BTC/USDT", ["1h"], 1000, until_ms=1_610_236_800_000))["1h"]
        await source.close()
        return {
            int(ts) + HOUR_MS: float(close)
            for ts, close in zip(frame["timestamp"], frame["close"], strict=True)
        }

    return asyncio.run(fetch())


def _ms(text: str) -> int:
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).replace(tzinfo=UTC).timestamp() * 1000)


def _decision(action: str, last: float) -> Reply:
    if action == "hold":
        return reply(json.dumps({"action": "hold", "confidence": 0.5, "rationale": "nothing to do"}))
    side = 1 if action == "buy" else -1
    answer = {
        "action": action,
        "entry_price": round(last, 2),
        # Reward 1.5 times the risk: the profile's least.
        "tp_price": round(last * (1 + side * 0.045), 2),
        "sl_price": round(last * (1 - side * 0.03), 2),
        "leverage": 1,
        "confidence": 0.7,
        "rationale": "see the numbers",
        "invalidation": f"close_1h {'<' if side > 0 else '>'} {round(last * (1 - side * 0.03), 2)}",
    }
    return reply(json.dumps(answer))


def _is_probe(body: dict[str, Any]) -> bool:
    return "history of financial markets" in str(body["messages"][0]["content"])


def _probe_count(question: str) -> int:
    found = re.search(r"with (\d+) numbers", question)
    assert found is not None
    return int(found[1])


def remembering(closes: dict[int, float]) -> Script:
    """Answers from the real future: buys before a rise, sells before a fall, knows nothing of other dates."""

    def answer(body: dict[str, Any]) -> Reply:
        text = str(body["messages"][-1]["content"]) if _is_probe(body) else _user_text(body)
        if _is_probe(body):
            opened = re.search(r"that opened (\d{4}-\d\d-\d\d \d\d:\d\d)", text)
            assert opened is not None
            first_close = _ms(opened[1].replace(" ", "T") + ":00Z") + HOUR_MS
            count = _probe_count(text)
            future = [closes.get(first_close + i * HOUR_MS) for i in range(count)]
            if any(value is None for value in future):
                return reply('{"closes": []}')
            return reply(json.dumps({"closes": future}))
        as_of = re.search(r"as of (\S+Z)", text)
        last = re.search(r"Last price (\d+(?:\.\d+)?)", text)
        assert as_of is not None
        assert last is not None
        moment = _ms(as_of[1])
        now, later = closes.get(moment), closes.get(moment + 6 * HOUR_MS)
        if now is None or later is None:
            return _decision("hold", float(last[1]))  # a date it never saw
        move = later / now - 1
        action = "buy" if move > 0.002 else "sell" if move < -0.002 else "hold"
        return _decision(action, float(last[1]))

    return answer


def _user_text(body: dict[str, Any]) -> str:
    return "\n".join(str(m.get("content") or "") for m in body["messages"] if m["role"] == "user")


def reasoning(body: dict[str, Any]) -> Reply:
    """An RSI rule on the prompt's own numbers; a probe gets the last close, repeated."""
    text = _user_text(body)
    if _is_probe(body):
        shown = re.findall(r"^\d{4}-\d\d-\d\d \d\d:\d\d (\S+)$", text, flags=re.M)
        return reply(json.dumps({"closes": [float(shown[-1])] * _probe_count(text)}))
    row = re.search(r"^1h \| [^|]+\|[^|]+\|[^|]+\|[^|]+\|[^|]+\| ([\d.]+) \|", text, flags=re.M)
    last = re.search(r"Last price (\d+(?:\.\d+)?)", text)
    assert row is not None, text
    assert last is not None
    rsi = float(row[1])
    action = "buy" if rsi < 40 else "sell" if rsi > 60 else "hold"
    return _decision(action, float(last[1]))


@pytest.fixture
def fake_model(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[Script, str], FakeOpenAI]]:
    """Starts a fake serving ``script`` as the configured model ``model``."""
    with contextlib.ExitStack() as stack:

        def start(script: Script, model: str) -> FakeOpenAI:
            fake = stack.enter_context(FakeOpenAI.start([script], repeat_last=True))
            monkeypatch.setenv("OPENAI_BASE_URL", fake.base_url)
            monkeypatch.setenv("OPENAI_API_KEY", "sk-test-audit-key")
            monkeypatch.setenv("REZ__LLM__MODEL", model)
            return fake

        yield start


def backtest_then_audit(capsys: pytest.CaptureFixture[str], journal: Path) -> tuple[dict[str, Any], Result]:
    result = run(
        capsys, "backtest", "BTC/USDT", "--exchange", "sim", "--mode", "react", *SPAN, *CUTOFF,
        "--journal", str(journal), "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    report = result.json_lines()[0]
    audited = run(capsys, "audit", report["backtest_id"], "--journal", str(journal), *AUDIT_OPTIONS, "--json")
    return report, audited


def test_a_model_that_remembers_the_future_is_graded_d(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, fake_model: Any
) -> None:
    fake_model(remembering(true_closes()), "memory-model")
    report, result = backtest_then_audit(capsys, tmp_path / "journal.sqlite")
    assert result.exit_code == 0, result.stderr
    audit = result.json_lines()[0]
    assert audit["grade"] == "D"
    reasons = "\n".join(audit["reasons"])
    # Seven days of 1h candles hold two windows of 48 shown and 12 asked.
    assert "D: memorisation probe: it continued 2 of 2 real windows" in reasons
    assert "D: shifted copy: its edge fell" in reasons
    shifted = next(row for row in audit["altered"]["results"] if row["copy"] == "shifted")
    assert shifted["trades"] == 0
    assert shifted["decisions_changed"] > 0
    # Renamed or rescaled, the dates are still there to remember by.
    for name in ("anonymised", "rescaled"):
        row = next(row for row in audit["altered"]["results"] if row["copy"] == name)
        assert row["decisions_changed"] == 0
    assert "sk-test-audit-key" not in result.stdout + result.stderr
    with Journal(tmp_path / "journal.sqlite") as journal:
        stored = journal.backtests().load(report["backtest_id"])
    assert (stored.grade, stored.grade_reasons) == ("D", audit["reasons"])


def test_a_model_that_reasons_from_the_context_is_not_graded_d_and_a_rerun_asks_nothing(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, fake_model: Any
) -> None:
    fake = fake_model(reasoning, "rsi-model")
    _, result = backtest_then_audit(capsys, tmp_path / "journal.sqlite")
    assert result.exit_code == 0, result.stderr
    audit = result.json_lines()[0]
    assert audit["grade"] != "D", audit["reasons"]
    assert not any(reason.startswith("D:") for reason in audit["reasons"])
    assert audit["probe"]["answered"] == 2
    assert audit["probe"]["remembered"] == 0
    assert all(row["decisions_changed"] == 0 for row in audit["altered"]["results"])
    assert audit["training_cutoff"] == {"date": "2021-01-05", "source": "--training-cutoff"}
    assert audit["cutoff_split"]["before"]["cycles"] + audit["cutoff_split"]["after"]["cycles"] == 84

    asked = len(fake.bodies)
    again = run(
        capsys,
        "audit",
        audit["backtest_id"],
        "--journal",
        str(tmp_path / "journal.sqlite"),
        *AUDIT_OPTIONS,
        "--json",
    )
    assert again.exit_code == 0, again.stderr
    assert len(fake.bodies) == asked  # every answer came from the cache
    assert again.json_lines()[0] == audit


PRICES = json.dumps({"rsi-model": {"input": 1, "output": 2}})
CALL_USD = 0.0024


def priced(body: dict[str, Any]) -> Reply:
    """``reasoning`` at 2,000 tokens in and 200 out: ``CALL_USD`` a call at ``PRICES``, under the
    estimate Rez makes before each call (its prompt as sent and a typical answer), so no call
    overshoots a budget."""
    return dataclasses.replace(reasoning(body), usage=(2_000, 200))


def test_max_cost_lets_the_audit_spend_up_to_the_budget_then_refuses(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, fake_model: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = fake_model(priced, "rsi-model")
    journal = tmp_path / "journal.sqlite"
    report, _ = backtest_then_audit(capsys, journal)
    # A new seed samples other cycles: calls the cache cannot answer.
    audit_of = ("audit", report["backtest_id"], "--journal", str(journal), *AUDIT_OPTIONS, "--seed", "9")
    unpriced = run(capsys, *audit_of, "--max-cost", "0.02")
    assert unpriced.exit_code == 2
    assert "[llm.prices]" in unpriced.stderr

    monkeypatch.setenv("REZ__LLM__PRICES", PRICES)
    asked = len(fake.bodies)
    budget = 0.02
    stopped = run(capsys, *audit_of, "--max-cost", str(budget), "--json")
    assert stopped.exit_code == 3, stopped.stderr
    audit = stopped.json_lines()[0]
    made = len(fake.bodies) - asked
    assert made >= 3
    assert audit["spent_usd"] == pytest.approx(made * CALL_USD)
    assert audit["spent_usd"] <= budget
    assert audit["stopped"] == "budget_exceeded"
    assert audit["reasons"][0].startswith("incomplete: --max-cost $0.02 stopped the model calls")
    assert any(row["errors"] > 0 for row in audit["altered"]["results"])
    with Journal(journal) as opened:
        assert opened.backtests().load(report["backtest_id"]).grade_reasons == audit["reasons"]
    shown = run(capsys, *audit_of, "--max-cost", str(budget))
    assert shown.exit_code == 3
    assert "incomplete: --max-cost" in shown.stdout

    # The calls it made are cached: a larger budget finishes the audit, paying only for the rest.
    finished = run(capsys, *audit_of, "--max-cost", "10", "--json")
    assert finished.exit_code == 0, finished.stderr
    assert "stopped" not in finished.json_lines()[0]


def test_backtest_max_cost_bounds_its_audit_with_what_the_backtest_left(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, fake_model: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_model(priced, "rsi-model")
    monkeypatch.setenv("REZ__LLM__PRICES", PRICES)
    budget = 0.22  # the 84 cycles' $0.2016, and less than the audit would need on top
    result = run(
        capsys, "backtest", "BTC/USDT", "--exchange", "sim", "--mode", "react", *SPAN, *CUTOFF,
        "--journal", str(tmp_path / "journal.sqlite"), "--max-cost", str(budget), "--audit", "--json",
    )  # fmt: skip
    assert result.exit_code == 3, result.stderr
    payload = result.json_lines()[0]
    assert payload["stopped"] is None
    assert payload["cost_usd"] == pytest.approx(84 * CALL_USD)
    assert payload["audit"]["stopped"] == "budget_exceeded"
    assert payload["cost_usd"] + payload["audit"]["spent_usd"] <= budget
