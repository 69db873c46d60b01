"""``rez doctor`` against SmolLM2-135M on llama.cpp, configured with the README's llama.cpp recipe.

What the doctor must find there (measured on this server): the model is listed; a request with a tool
is accepted, but SmolLM2's chat template has no tools (``/props``: ``supports_tools`` false), so
llama.cpp drops them and the model answers in prose: Rez is to use the text protocol, and says so as a
warning; a strict ``json_schema`` is enforced (llama.cpp turns it into a grammar).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.support.cli import run
from tests.support.llama_server import LlamaServer, wait_until_idle
from tests.support.readme_recipes import write_recipe

pytestmark = pytest.mark.realmodel

# Two tiny requests of 32 tokens at most, one after the other in the server's one slot: a few seconds
# on 2 cores, well under the doctor's own bound.
DOCTOR_BUDGET_S = 15


def test_doctor_finds_the_text_protocol_and_an_enforced_schema(
    capsys: pytest.CaptureFixture[str], llama_server: LlamaServer, tmp_path: Path
) -> None:
    assert wait_until_idle(llama_server), "an earlier request still holds the server's slot"
    config = tmp_path / "llama-cpp.toml"
    write_recipe("llama.cpp", config, base_url=llama_server.base_url)

    started = time.monotonic()
    result = run(capsys, "doctor", "--config", str(config), "--exchange", "sim", "--json")
    elapsed = time.monotonic() - started
    [report] = result.json_lines()
    checks = {check["name"]: check for check in report["checks"]}
    print(checks["tools"], checks["schema"], f"{elapsed:.1f} s", sep="\n")  # for `pytest -rP`

    assert result.exit_code == 0, result
    assert elapsed < DOCTOR_BUDGET_S
    assert checks["model"]["status"] == "ok"
    assert f"{llama_server.model} is listed" in checks["model"]["detail"]

    tools = checks["tools"]
    assert tools["status"] == "warn"
    assert tools["facts"]["protocol"] == "text"
    assert tools["facts"]["probe"] == "prose"
    assert tools["facts"]["reports_tools"] is False
    assert "llama.cpp's /props" in tools["detail"]
    assert "Rez uses the text protocol" in tools["detail"]

    schema = checks["schema"]
    assert schema["status"] == "ok"
    assert schema["facts"]["json_schema"] == "enforced"
    assert schema["detail"].startswith("json_schema (strict) enforced")
