"""The account's total exposure limit, one rule for the paper account and a backtest's walk: an add
that would take the open notionals past ``max_total_exposure_pct`` is a hold with ``exposure_limit``.

The scripted model buys at every cycle. Its buy (2x, stop 1% away, the moderate profile's 1% risk
capped at 25% of equity) commits half the equity, so a second buy adding to the position reaches
about 100% of equity: past a limit of 80%, within one of 120%.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.account.test_paper_account import BUY, answers, decide, use_model
from tests.account.test_paper_cron import DATA, HOUR, T1, T2
from tests.support.cli import run
from tests.support.openai_server import FakeOpenAI

__all__ = ["use_model"]  # the fixture, imported for the tests below

MODERATE = Path(__file__).parents[2] / "configs" / "profiles" / "moderate.toml"


def adding_profile(tmp_path: Path, max_total_exposure_pct: int) -> Path:
    profile = tmp_path / "adding.toml"
    text = MODERATE.read_text().replace("allow_adding = false", "allow_adding = true")
    text = text.replace("max_total_exposure_pct = 300", f"max_total_exposure_pct = {max_total_exposure_pct}")
    profile.write_text(text)
    return profile


def test_paper_account_refuses_an_add_past_the_total_exposure(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, use_model: Callable[[FakeOpenAI], None]
) -> None:
    journal = tmp_path / "j.sqlite"
    profile = str(adding_profile(tmp_path, 80))
    with FakeOpenAI.start([answers(BUY)], repeat_last=True) as fake:
        use_model(fake)
        first = decide(capsys, journal, T1, "--profile", profile)
        assert first.exit_code == 0, first.stderr
        assert first.json_lines()[0]["size_pct"] == 25
        add = decide(capsys, journal, T2, "--profile", profile)
    assert add.exit_code == 3, add.stderr
    decision = add.json_lines()[0]
    assert (decision["action"], decision["error"]) == ("hold", "exposure_limit")
    assert "more than the profile's 80%" in decision["rationale"]


@pytest.mark.parametrize(("limit_pct", "second_error"), [(80, "exposure_limit"), (120, None)])
def test_backtest_refuses_an_add_past_the_total_exposure_as_the_paper_account_does(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    use_model: Callable[[FakeOpenAI], None],
    limit_pct: int,
    second_error: str | None,
) -> None:
    profile = str(adding_profile(tmp_path, limit_pct))
    with FakeOpenAI.start([answers(BUY)], repeat_last=True) as fake:
        use_model(fake)
        result = run(
            capsys, "backtest", "BTC/USDT", "--data", str(DATA), "--timeframes", "1h",
            "--from", str(T1), "--to", str(T2 + HOUR), "--every", str((T2 - T1) // HOUR),
            "--profile", profile, "--journal", str(tmp_path / "j.sqlite"), "--no-baselines",
            "--no-llm-cache", "--json",
        )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    first, second = result.json_lines()[0]["decisions"]
    assert (first["action"], first["error"]) == ("buy", None)
    # The moments of the paper test: the first buy filled at the next open, the second adds to it.
    assert second["error"] == second_error
    assert second["action"] == ("hold" if second_error else "buy")
