"""The hold codes: the README's "Error codes" table is the ``Hold`` enum, and codes keep their strings."""

from __future__ import annotations

import json
import re

import pytest

from rez_cli.decision.codes import FATAL, TRANSIENT, Hold
from rez_cli.errors import DataError, ExchangeError, RezError, UnknownExchange
from tests.support.readme_recipes import README

_TABLE_HEADER = "| code | what it means | in a backtest |"
_ROW = re.compile(
    r"^\| `(?P<code>[a-z_]+)(?P<detail>: …)?` \| (?P<words>[^|]+?) \| (?P<kind>fatal|transient)? ?\|$"
)


def _readme_codes() -> dict[str, tuple[str, str | None, bool]]:
    """The README's table: code -> (words, backtest kind, written with a detail)."""
    lines = README.read_text(encoding="utf-8").splitlines()
    assert lines.count(_TABLE_HEADER) == 1, "the README has one error-code table"
    start = lines.index(_TABLE_HEADER) + 2
    rows: dict[str, tuple[str, str | None, bool]] = {}
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        match = _ROW.match(line)
        assert match, f"a row the test cannot read: {line!r}"
        code = match["code"]
        assert code not in rows, f"{code} is in the table twice"
        rows[code] = (match["words"], match["kind"], match["detail"] is not None)
    return rows


def test_the_readme_table_is_the_enum_both_ways() -> None:
    documented = _readme_codes()
    emitted = {code.value: (code.words, code.backtest_kind, code.takes_detail) for code in Hold}
    assert sorted(set(emitted) - set(documented)) == [], "codes the README does not document"
    assert sorted(set(documented) - set(emitted)) == [], "codes the README documents that Rez never emits"
    for code, row in documented.items():
        assert row == emitted[code], code
    assert list(documented) == [code.value for code in Hold], "the table follows the enum's order"


def test_a_backtest_stops_on_the_same_codes_as_before() -> None:
    assert {"budget_exceeded", "model_auth_failed", "model_not_configured"} == FATAL
    assert {
        "model_unreachable",
        "model_timeout",
        "model_rate_limited",
        "reasoning_timeout_exceeded",
    } == TRANSIENT
    assert not FATAL & TRANSIENT


def test_a_code_is_its_string_in_json_and_text() -> None:
    assert json.dumps({"error": Hold.SL_WRONG_SIDE}) == '{"error": "sl_wrong_side"}'
    assert f"{Hold.REPAIR_FAILED}" == "repair_failed"
    assert Hold.REASONING_EXCEPTION.with_detail("boom") == "reasoning_exception: boom"
    assert Hold.UNKNOWN_REASONING_MODE.with_detail("nope") == "unknown_reasoning_mode: nope"


@pytest.mark.parametrize(
    ("error", "code"),
    [
        ("sl_wrong_side", Hold.SL_WRONG_SIDE),
        ("reasoning_exception: the mode was cancelled", Hold.REASONING_EXCEPTION),
        ("unknown_reasoning_mode: nope", Hold.UNKNOWN_REASONING_MODE),
        # A detail where none belongs, or none where one does, is not the code.
        ("sl_wrong_side: why", None),
        ("reasoning_exception", None),
        ("rules_said_no", None),
        ("", None),
        (None, None),
    ],
)
def test_an_error_reads_back_to_its_code(error: str | None, code: Hold | None) -> None:
    assert Hold.of(error) is code


def subclasses(kind: type[RezError]) -> list[type[RezError]]:
    return [kind, *(sub for child in kind.__subclasses__() for sub in subclasses(child))]


# The exchange is chosen before any cycle starts: an unknown one never reaches a cycle.
MID_CYCLE = [e for e in (*subclasses(DataError), *subclasses(ExchangeError)) if e is not UnknownExchange]


@pytest.mark.parametrize("error", MID_CYCLE, ids=lambda e: e.__name__)
def test_a_market_error_during_a_cycle_holds_under_a_known_code(error: type[RezError]) -> None:
    # A tool call reads candles mid-cycle; whatever the market raises, the mode holds with the error's
    # reference (errors.py sits below the decision layer and spells it itself): it must be a code.
    assert Hold(error.reference).words
