"""``--contestant NAME=MODEL[,prompt=FILE][,profile=...]``: what is accepted, and what a mistake gets."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rez_cli.arena.contestants import Contestant, check_names, check_prompt, parse_contestant
from rez_cli.config.settings import load_profile
from rez_cli.errors import UsageError
from rez_cli.reasoning.prompts import system_prompt
from tests.support.cli import run


def test_a_full_contestant_is_read(tmp_path: Path) -> None:
    prompt = tmp_path / "terse.txt"
    prompt.write_text("Trade {profile} with leverage up to {max_leverage}x. Answer like {example}")
    found = parse_contestant(f"terse=gpt-4o-mini,prompt={prompt},profile=aggressive")
    assert (found.name, found.model, found.profile, found.prompt_path) == (
        "terse",
        "gpt-4o-mini",
        "aggressive",
        prompt,
    )
    assert not found.baseline
    profile = load_profile("aggressive").value
    check_prompt(found, profile)
    text = system_prompt(profile, template=found.prompt)
    assert text.startswith(f"Trade aggressive with leverage up to {profile.max_leverage}x.")


def test_the_fingerprint_changes_with_prompt_profile_and_seed() -> None:
    plain = Contestant("a", "m")
    prints = {
        plain.fingerprint(0),
        plain.fingerprint(1),
        Contestant("a", "m", prompt="x").fingerprint(0),
        Contestant("a", "m", profile="aggressive").fingerprint(0),
    }
    assert len(prints) == 4
    # The name is not in it: renaming a contestant keeps what it costs apart in its file name only.
    assert Contestant("b", "m").fingerprint(0) == plain.fingerprint(0)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("gpt-4o", "is not NAME=MODEL"),
        ("a=", "is not NAME=MODEL"),
        ("../x=gpt", "must be 1-40 letters"),
        ("a=gpt,temperature=2", "unknown option"),
        ("a=gpt,profile=x,profile=y", "profile is given twice"),
        ("a=rules,prompt=p.txt", "takes no prompt"),
        ("a=gpt,prompt=/nonexistent/p.txt", "cannot read the prompt"),
    ],
)
def test_a_malformed_contestant_is_refused_with_one_line(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse_contestant(text)


def test_a_prompt_with_an_unknown_placeholder_is_refused(tmp_path: Path) -> None:
    prompt = tmp_path / "p.txt"
    prompt.write_text("You trade {symbol_of_the_day}.")
    with pytest.raises(UsageError, match=r"unknown placeholder \{symbol_of_the_day\}"):
        check_prompt(parse_contestant(f"a=m,prompt={prompt}"), load_profile("moderate").value)
    prompt.write_text("A stray { brace")
    with pytest.raises(UsageError, match="not a valid template"):
        check_prompt(parse_contestant(f"a=m,prompt={prompt}"), load_profile("moderate").value)


def test_names_are_unique_and_the_baselines_keep_theirs() -> None:
    with pytest.raises(UsageError, match="two contestants are named 'a'"):
        check_names([Contestant("a", "m"), Contestant("a", "n")])
    with pytest.raises(UsageError, match="built-in baseline's"):
        check_names([Contestant("rules", "gpt-4o")])
    check_names([Contestant("rules", "rules"), Contestant("cautious", "rules", profile="conservative")])


@given(st.text(max_size=80))
def test_any_text_is_a_contestant_or_a_usage_error(text: str) -> None:
    try:
        found = parse_contestant(text)
    except UsageError:
        return
    assert found.name
    assert found.model


def test_the_cli_refuses_a_bad_contestant_before_reading_the_tape(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    result = run(capsys, "arena", str(tmp_path / "missing.tape"), "--contestant", "no-model-here")
    assert result.exit_code == 2
    assert "is not NAME=MODEL" in result.stderr
    assert result.stdout == ""
