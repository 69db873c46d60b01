"""A GGUF file Rez is to serve itself that cannot be served: exit 2, one line, before any market call
and before anything is journaled (issue 9, section 8)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from rez_cli.config.settings import LLMSettings
from rez_cli.cycle.choice import choose_model
from rez_cli.llm import local_model
from tests.support.cli import Result, run

AS_OF = "2021-07-01T00:00"


@pytest.fixture
def market_calls(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every market source a run opens; a refused run must open none."""
    import rez_cli.cycle.run
    import rez_cli.market.view

    opened: list[Any] = []
    real = rez_cli.market.view.open_source

    def spy(*args: Any, **kwargs: Any) -> Any:
        opened.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(rez_cli.cycle.run, "open_source", spy)
    monkeypatch.setattr(rez_cli.market.view, "open_source", spy)
    return opened


def refused(result: Result, home: Path, opened: list[Any]) -> str:
    assert result.exit_code == 2, result
    assert result.stdout == ""
    [line] = result.stderr.strip().splitlines()
    assert "Traceback" not in result.stderr
    assert opened == []
    assert not list(home.rglob("*.sqlite*")), "a refused run journaled something"
    return line


def decide(capsys: pytest.CaptureFixture[str], *args: str) -> Result:
    return run(capsys, "decide", "BTC/USDT", "--exchange", "sim", "--as-of", AS_OF, "--json", *args)


def fake_gguf(path: Path, size: int = 64) -> Path:
    path.write_bytes(local_model.GGUF_MAGIC + b"\x03\x00\x00\x00" + bytes(size - 8))
    return path


def test_a_missing_file_given_to_model(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, isolated_env: Path, market_calls: list[Any]
) -> None:
    missing = tmp_path / "nowhere" / "model.gguf"
    line = refused(decide(capsys, "--model", str(missing)), isolated_env, market_calls)
    assert f"--model {missing} does not exist" in line


def test_a_missing_file_in_the_config(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    isolated_env: Path,
    market_calls: list[Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    missing = tmp_path / "model.gguf"
    monkeypatch.setenv("REZ__LLM__GGUF", str(missing))
    line = refused(decide(capsys), isolated_env, market_calls)
    assert f"[llm] gguf {missing} does not exist" in line


def test_a_file_that_is_not_gguf(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, isolated_env: Path, market_calls: list[Any]
) -> None:
    other = tmp_path / "model.gguf"
    other.write_bytes(b"PK\x03\x04 a zip, or safetensors, or anything else")
    line = refused(decide(capsys, "--model", str(other)), isolated_env, market_calls)
    assert "is not a GGUF model file" in line
    empty = tmp_path / "empty.gguf"
    empty.write_bytes(b"")
    line = refused(decide(capsys, "--model", str(empty)), isolated_env, market_calls)
    assert "is not a GGUF model file" in line


def test_an_existing_file_without_the_suffix_is_a_path(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, isolated_env: Path, market_calls: list[Any]
) -> None:
    weights = tmp_path / "weights.bin"
    weights.write_bytes(b"\x00" * 16)
    line = refused(decide(capsys, "--model", str(weights)), isolated_env, market_calls)
    assert "is not a GGUF model file" in line


def test_a_directory(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    isolated_env: Path,
    market_calls: list[Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    folder = tmp_path / "models.gguf"
    folder.mkdir()
    line = refused(decide(capsys, "--model", str(folder)), isolated_env, market_calls)
    assert "is a directory" in line
    monkeypatch.setenv("REZ__LLM__GGUF", str(tmp_path))
    line = refused(decide(capsys), isolated_env, market_calls)
    assert f"[llm] gguf {tmp_path} is a directory" in line


@pytest.mark.skipif(sys.platform == "win32", reason="chmod does not take read access away on Windows")
def test_an_unreadable_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, isolated_env: Path, market_calls: list[Any]
) -> None:
    locked = fake_gguf(tmp_path / "locked.gguf")
    locked.chmod(0)
    try:
        with locked.open("rb"):
            readable = True  # root reads anything
    except PermissionError:
        readable = False
    if readable:
        pytest.skip("this user can read a file of mode 000")
    line = refused(decide(capsys, "--model", str(locked)), isolated_env, market_calls)
    assert "cannot be read" in line


def test_a_file_too_big_for_the_memory(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    isolated_env: Path,
    market_calls: list[Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    model = fake_gguf(tmp_path / "big.gguf", size=4_000_000)
    monkeypatch.setattr(local_model, "available_memory", lambda: 1_500_000)
    line = refused(decide(capsys, "--model", str(model)), isolated_env, market_calls)
    assert "is 4.0 MB but only 1.5 MB of memory is available" in line


def test_without_the_local_extra(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    isolated_env: Path,
    market_calls: list[Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    model = fake_gguf(tmp_path / "model.gguf")
    monkeypatch.setitem(sys.modules, "xllamacpp", None)  # what `import` makes of it: ImportError
    line = refused(decide(capsys, "--model", str(model)), isolated_env, market_calls)
    assert line.endswith("needs the local extra: pip install 'rez-cli[local]'")


def test_a_gguf_llama_cpp_cannot_load(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, isolated_env: Path, market_calls: list[Any]
) -> None:
    pytest.importorskip("xllamacpp", reason="llama.cpp's loader comes with the local extra")
    broken = fake_gguf(tmp_path / "broken.gguf")
    starts = local_model.starts
    result = decide(capsys, "--model", str(broken))
    assert result.exit_code == 2, result
    [line] = result.stderr.strip().splitlines()
    assert f"llama.cpp could not load {broken}" in line
    assert market_calls == []
    assert local_model.starts == starts


def test_a_backtest_refuses_it_too(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, isolated_env: Path, market_calls: list[Any]
) -> None:
    missing = tmp_path / "model.gguf"
    result = run(
        capsys,
        "backtest",
        "BTC/USDT",
        "--exchange",
        "sim",
        "--from",
        "2021-06-01",
        "--to",
        "2021-06-02",
        "--model",
        str(missing),
    )
    line = refused(result, isolated_env, market_calls)
    assert "does not exist" in line


def test_the_choice_names_the_file() -> None:
    choice = choose_model(LLMSettings(gguf=Path("models/tiny.gguf"), model="gpt-4o-mini"), None)
    assert choice.model == "tiny"
    assert choice.gguf == Path("models/tiny.gguf")
    assert choice.reason == f"served from {Path('models/tiny.gguf')} by llama.cpp (embedded)"
    # A model name given for one run overrides the configured file, as it overrides [llm] model.
    assert choose_model(LLMSettings(gguf=Path("tiny.gguf")), "gpt-4o").model == "gpt-4o"
    assert choose_model(LLMSettings(), "./x.GGUF").gguf == Path("x.GGUF")


def test_doctor_names_the_file_that_cannot_be_served(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REZ__LLM__GGUF", str(tmp_path / "model.gguf"))
    result = run(capsys, "doctor", "--exchange", "sim")
    assert result.exit_code == 2, result
    [line] = [line for line in result.stdout.splitlines() if "model" in line.split()[:2]]
    assert "does not exist" in line


def test_max_cost_with_a_served_file_is_no_error_a_local_model_costs_nothing() -> None:
    from rez_cli.config.settings import load_settings
    from rez_cli.cycle.choice import require_price_for_limit
    from rez_cli.errors import UsageError

    llm = load_settings().value.llm
    require_price_for_limit(llm, "SmolLM2-135M-Instruct.Q4_1", 0.01, local=True)
    with pytest.raises(UsageError, match="no price is known"):
        require_price_for_limit(llm, "SmolLM2-135M-Instruct.Q4_1", 0.01)
