"""``--model FILE.gguf``: Rez serves SmolLM2-135M itself through llama.cpp and decides with it.

No server is started by the test: the run loads the file (once, for every symbol), serves it on a
free loopback port and unloads it when it ends.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from rez_cli.decision.model import Decision
from rez_cli.llm import local_model
from tests.support.cli import run
from tests.support.llama_server import _mode, _xllamacpp, cached_gguf

pytestmark = pytest.mark.realmodel

AS_OF = "2021-07-01T00:00"


@pytest.fixture
def gguf(monkeypatch: pytest.MonkeyPatch) -> Path:
    if _mode() == "off":
        pytest.skip("real-model tier switched off (REZ_TEST_REALMODEL=off)")
    _xllamacpp()
    # The limits of the other realmodel tests (the llama.cpp recipe's): SmolLM2 on 2 cores writes
    # 25-30 tokens a second and reads the ~2,700 tokens of a cycle's first request in about 34 s.
    monkeypatch.setenv("REZ__LLM__MAX_OUTPUT_TOKENS", "256")
    monkeypatch.setenv("REZ__LLM__TIMEOUT_S", "90")
    monkeypatch.setenv("REZ__LLM__MAX_TURNS", "2")
    monkeypatch.setenv("REZ__LLM__MAX_RETRIES", "0")
    return cached_gguf()


def test_two_symbols_decide_on_one_loaded_file(capsys: pytest.CaptureFixture[str], gguf: Path) -> None:
    starts = local_model.starts
    result = run(
        capsys,
        "decide",
        "BTC/USDT",
        "ETH/USDT",
        "--exchange",
        "sim",
        "--as-of",
        AS_OF,
        "--json",
        "--model",
        str(gguf),
    )
    assert result.exit_code in (0, 3), result
    assert local_model.starts == starts + 1, "the model was not loaded exactly once for the run"
    decisions = [Decision.model_validate(line) for line in result.json_lines()]
    assert [decision.symbol for decision in decisions] == ["BTC/USDT", "ETH/USDT"]
    for decision in decisions:
        print(decision.symbol, decision.action, decision.source, decision.error)
        # The file was served and answered: no cycle ended for want of a model.
        assert decision.error not in ("model_timeout", "llm_not_configured", "no_model"), decision
        assert decision.usage.llm_calls >= 1, decision
        exported = run(capsys, "traces", "export", decision.trace_id)
        assert exported.exit_code == 0, exported
        [record] = exported.json_lines()
        assert record["model"] == gguf.stem


def test_doctor_loads_the_file(
    capsys: pytest.CaptureFixture[str], gguf: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REZ__LLM__GGUF", str(gguf))
    result = run(capsys, "doctor", "--exchange", "sim")
    assert result.exit_code == 0, result
    [line] = [line for line in result.stdout.splitlines() if "model" in line.split()[:2]]
    assert f"{gguf.stem} (served from {gguf} by llama.cpp (embedded)): loaded in" in line
    threads, prompt = local_model.default_threads(), local_model.default_prompt_threads()
    assert f"({threads} thread" in line
    # With a core to spare, the prompt is read on every core, and doctor says so.
    assert (f", {prompt} reading the prompt" in line) == (prompt > threads)
