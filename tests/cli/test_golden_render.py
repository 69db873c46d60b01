"""What ``rez`` prints, to the character, at a fixed width: the safety net of "behaviour unchanged".

Each test runs real commands in-process (``tests.support.cli.run``) on the seeded offline ``sim``
market at a fixed ``--as-of``, with COLUMNS=100 and no colour, the model played by the scripted
fake OpenAI server, and compares stdout, stderr and the exit code with a file in
tests/golden/render/. Covered: ``rez decide`` with a model that calls ``fetch_indicator`` once, the
same with ``--dry-run``, a model that answers garbage (a hold forced by a failure, exit 3), the
rules mode with no model, ``rez context`` (table and ``--text``) and ``rez traces show`` of the
model and rules cycles.

Only what changes from run to run is normalised, by ``tests.support.golden.normalise``:

- trace ids (random per cycle): each is learnt from ``rez traces list --json`` and replaced, exactly
  as written, by ``<trace-id>``;
- measured durations (``77 ms``): ``<n> ms``; and the usage footer below the decision panel is
  compared unwrapped, since where the terminal wraps it depends on how many digits those have;
- the tmp REZ_HOME, should any message name a path in it: ``<REZ_HOME>``.

The dry run names the model endpoint: it is given a fixed address it never calls, rather than the
fake server's random port, so it needs no normalising.

When a change of output is intended, rewrite the golden files and review their diff::

    REZ_UPDATE_GOLDEN=1 .venv/bin/pytest tests/cli/test_golden_render.py
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.cli import run
from tests.support.golden import assert_golden, normalise, render
from tests.support.openai_server import FakeOpenAI, reply, tool_calls

AS_OF = "2021-07-01T00:00"
MARKET = ("--exchange", "sim", "--as-of", AS_OF)
BUY = json.dumps(
    {
        "action": "buy",
        "entry_price": 134400,
        "tp_price": 137500,
        "sl_price": 132800,
        "leverage": 2,
        "confidence": 0.7,
        "rationale": "RSI turning up from 33 at the 1h low;\nthe 4h trend is still up.",
        "invalidation": "close_1h < 132800",
    }
)
GARBAGE = "I think the market might go up, or down. Hard to say really."


@pytest.fixture(autouse=True)
def terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "100")
    monkeypatch.setenv("NO_COLOR", "1")


@pytest.fixture
def model(fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> FakeOpenAI:
    monkeypatch.setenv("OPENAI_BASE_URL", fake_openai.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-golden-test")
    monkeypatch.setenv("REZ__LLM__MODEL", "golden-model")
    return fake_openai


def check(
    capsys: pytest.CaptureFixture[str], home: Path, golden: str, *args: str, exit_code: int = 0
) -> None:
    """Run ``rez *args``, normalise what it printed, and compare it with tests/golden/render/``golden``."""
    result = run(capsys, *args)
    listed = run(capsys, "traces", "list", "--json", "--limit", "1000")
    ids = {line["trace_id"]: "<trace-id>" for line in listed.json_lines()} if listed.exit_code == 0 else {}
    text = normalise(render(args, result), replace={**ids, str(home): "<REZ_HOME>"}, durations=True)
    assert_golden(f"render/{golden}", text)
    assert result.exit_code == exit_code, text


def only_trace_id(capsys: pytest.CaptureFixture[str]) -> str:
    [line] = run(capsys, "traces", "list", "--json").json_lines()
    return str(line["trace_id"])


def test_decide_with_a_model_that_calls_a_tool(
    capsys: pytest.CaptureFixture[str], model: FakeOpenAI, isolated_env: Path
) -> None:
    model.push(
        tool_calls([("fetch_indicator", {"indicator": "rsi", "timeframe": "1h", "lookback": 3})]),
        reply("RSI is turning.\n" + BUY),
    )
    check(capsys, isolated_env, "decide_model.txt", "decide", "BTC/USDT", *MARKET)
    check(capsys, isolated_env, "traces_show_model.txt", "traces", "show", only_trace_id(capsys))


def test_decide_dry_run_shows_what_the_model_would_be_sent(
    capsys: pytest.CaptureFixture[str], isolated_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Port 9 (discard): a fixed address in the output; a dry run calls no model, so nothing listens.
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-golden-test")
    monkeypatch.setenv("REZ__LLM__MODEL", "golden-model")
    check(capsys, isolated_env, "decide_dry_run.txt", "decide", "BTC/USDT", *MARKET, "--dry-run")


def test_decide_with_a_model_that_answers_garbage_is_a_forced_hold(
    capsys: pytest.CaptureFixture[str], model: FakeOpenAI, isolated_env: Path
) -> None:
    model.repeat_last = True
    model.push(reply(GARBAGE))
    check(capsys, isolated_env, "decide_garbage.txt", "decide", "SOL/USDT", *MARKET, exit_code=3)


def test_decide_in_rules_mode_without_a_model(capsys: pytest.CaptureFixture[str], isolated_env: Path) -> None:
    check(capsys, isolated_env, "decide_rules.txt", "decide", "ETH/USDT", *MARKET)
    check(capsys, isolated_env, "traces_show_rules.txt", "traces", "show", only_trace_id(capsys))


@pytest.mark.parametrize(
    ("golden", "options"),
    [("context.txt", ()), ("context_text.txt", ("--text",))],
)
def test_context(
    capsys: pytest.CaptureFixture[str], isolated_env: Path, golden: str, options: tuple[str, ...]
) -> None:
    check(capsys, isolated_env, golden, "context", "BTC/USDT", *MARKET, *options)
