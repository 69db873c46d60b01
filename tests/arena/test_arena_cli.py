"""``rez arena TAPE`` as a user runs it: a tape of the sim market, fake models of distinct styles."""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from rez_cli.config.settings import load_settings
from rez_cli.market.candles import parse_time
from rez_cli.market.view import open_source
from rez_cli.tape import load_tape, record_tape, save_tape
from tests.arena.test_run import styles
from tests.support.cli import run
from tests.support.openai_server import FakeOpenAI


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeOpenAI]:
    with FakeOpenAI.start([styles], repeat_last=True) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test-arena-cli")
        monkeypatch.setenv("REZ__LLM__MAX_RETRIES", "0")
        monkeypatch.setenv("REZ__LLM__PRICES", json.dumps({"eager": {"input": 1, "output": 2}}))
        yield server


@pytest.fixture
def tape(tmp_path: Path) -> Path:
    settings = load_settings().value

    async def record() -> Path:
        source = open_source(settings, exchange="sim")
        try:
            made = await record_tape(
                settings,
                source,
                "BTC/USDT",
                start_ms=parse_time("2021-02-01"),
                end_ms=parse_time("2021-02-04"),
                every=6,
            )
        finally:
            await source.close()
        return save_tape(made, tmp_path / "btc.tape")

    return asyncio.run(record())


def arena_json(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, object], str]:
    result = run(capsys, "arena", *args, "--json")
    lines = result.json_lines()
    assert len(lines) == 1, result
    return result.exit_code, lines[0], result.stderr


def test_an_arena_over_a_tape_then_its_rerun_from_the_caches(
    capsys: pytest.CaptureFixture[str], fake: FakeOpenAI, tape: Path, tmp_path: Path
) -> None:
    args = (str(tape), "--contestant", "eager=eager", "--contestant", "rsi=rsi", "--repeats", "2")
    code, first, stderr = arena_json(capsys, *args, "--report", str(tmp_path / "arena.html"))
    assert code == 0, stderr
    assert "sk-test-arena-cli" not in json.dumps(first) + stderr
    assert first["tape_hash"] == load_tape(tape).hash
    moments = len(load_tape(tape).meta.moments)
    assert first["moments"] == moments
    board = {row["name"]: row for row in first["leaderboard"]}  # type: ignore[attr-defined]
    assert list(board) == ["rules", "always-hold", "buy-and-hold", "eager", "rsi"]
    # Every contestant walked exactly the tape's moments.
    assert {row["cycles"] for name, row in board.items() if name != "buy-and-hold"} == {moments}
    assert board["eager"]["repeats"] == 2
    assert (tmp_path / "arena.html").read_text().count("<td>eager</td>") == 1
    calls = len(fake.bodies)

    code, second, stderr = arena_json(capsys, *args)
    assert code == 0, stderr
    assert len(fake.bodies) == calls
    assert (second["calls"], second["spent_usd"]) == (0, 0)
    assert second["leaderboard"] == first["leaderboard"]

    shown = run(capsys, "arena", *args)
    assert shown.exit_code == 0
    for name in board:
        assert name in shown.stdout
    assert "  #2 seed 1" in shown.stdout


def test_a_damaged_tape_is_refused_with_one_line(capsys: pytest.CaptureFixture[str], tape: Path) -> None:
    data = gzip.decompress(tape.read_bytes())
    tape.write_bytes(gzip.compress(data.replace(b'"BTC/USDT"', b'"ETH/USDT"', 1)))
    result = run(capsys, "arena", str(tape), "--json")
    assert result.exit_code == 2
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1


def test_max_cost_ends_the_arena_with_exit_3_and_what_was_done(
    capsys: pytest.CaptureFixture[str], fake: FakeOpenAI, tape: Path
) -> None:
    code, payload, _ = arena_json(
        capsys,
        str(tape),
        "--contestant",
        "a=eager",
        "--contestant",
        "b=eager,profile=aggressive",
        "--max-cost",
        "0.005",
    )
    assert code == 3
    assert payload["budget_exceeded"] is True
    assert 0 < payload["spent_usd"] <= 0.005  # type: ignore[operator]
