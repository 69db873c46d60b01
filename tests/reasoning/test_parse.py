"""The decision parser: what a model really writes at the end of a ReAct loop, and worse."""

from __future__ import annotations

import json
import math
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rez_cli.decision.grounding import numbers_in
from rez_cli.decision.model import ModelAnswer
from rez_cli.reasoning.parse import MAX_TEXT_CHARS, ParseOutcome, parse_answer

BUY = '{"action": "buy", "entry_price": 35000.5, "tp_price": 36500, "sl_price": 34200, "leverage": 2}'


def answer_of(text: str | None) -> ModelAnswer:
    outcome = parse_answer(text)
    assert outcome.answer is not None, outcome
    return outcome.answer


# --- stages --------------------------------------------------------------------------------------


def test_whole_message_json_is_native() -> None:
    outcome = parse_answer(f"  \n{BUY}\n")

    assert outcome == ParseOutcome(
        ModelAnswer(action="buy", entry_price=35000.5, tp_price=36500, sl_price=34200, leverage=2),
        "native",
        None,
        None,
    )


def test_json_inside_prose_is_extracted() -> None:
    text = f"The 4h trend is up and RSI is 61.\nFinal decision: {BUY}\nI will watch 34,200."

    outcome = parse_answer(text)

    assert outcome.stage == "extracted"
    assert outcome.answer == answer_of(BUY)
    assert outcome.error is None
    assert outcome.detail is None


@pytest.mark.parametrize("fence", ["```json", "```JSON", "```"])
def test_fenced_json_is_extracted(fence: str) -> None:
    text = f"Here is my answer:\n{fence}\n{BUY}\n```\nGood luck."

    outcome = parse_answer(text)

    assert outcome.stage == "extracted"
    assert outcome.answer == answer_of(BUY)


def test_trailing_commas_are_accepted() -> None:
    text = '{"action": "sell", "entry_price": 35000, "sl_price": 35500,}\n'

    assert answer_of(text) == ModelAnswer(action="sell", entry_price=35000, sl_price=35500)


def test_single_quotes_and_python_literals_are_accepted() -> None:
    text = "{'action': 'hold', 'entry_price': None, 'confidence': 0.3, 'rationale': 'it's choppy'}"

    assert answer_of(text) == ModelAnswer(action="hold", confidence=0.3, rationale="it's choppy")


def test_comments_and_bare_keys_are_accepted() -> None:
    text = """{
        action: "buy",        // the breakout held
        /* levels from the 1h chart */
        entry_price: 35000,
        tp_price: 36000,      # first resistance
    }"""

    assert answer_of(text) == ModelAnswer(action="buy", entry_price=35000, tp_price=36000)


def test_unescaped_quotes_inside_a_string_are_kept() -> None:
    text = '{"action": "buy", "rationale": "the "golden cross" formed on the 4h"}'

    assert answer_of(text).rationale == 'the "golden cross" formed on the 4h'


def test_braces_inside_a_string_are_not_read_as_objects() -> None:
    text = 'Answer: {"action": "buy", "rationale": "my draft {\'action\': \'sell\'} was wrong"}'

    assert answer_of(text).action == "buy"


# --- truncation ----------------------------------------------------------------------------------


def test_truncated_json_missing_closing_brace_is_closed() -> None:
    text = 'Decision: {"action": "buy", "entry_price": 35000, "tp_price": 36000, "sl_price": 34000\n'

    outcome = parse_answer(text)

    assert outcome.stage == "extracted"
    assert outcome.answer == ModelAnswer(action="buy", entry_price=35000, tp_price=36000, sl_price=34000)


def test_truncated_inside_the_rationale_string_keeps_what_was_written() -> None:
    text = '{"action": "sell", "entry_price": 35000, "rationale": "lower highs on the 1h and a bearish div'

    answer = answer_of(text)

    assert answer.action == "sell"
    assert answer.entry_price == 35000
    assert answer.rationale == "lower highs on the 1h and a bearish div"


def test_a_number_cut_by_the_end_is_dropped_not_kept_short() -> None:
    """35123.4 cut to 351 would be a wrong price; the policy then sees a missing one instead."""
    text = '{"action": "buy", "entry_price": 35000, "tp_price": 351'

    answer = answer_of(text)

    assert answer.entry_price == 35000
    assert answer.tp_price is None


def test_a_block_left_open_is_closed_at_its_fence() -> None:
    text = '```json\n{"action": "buy", "entry_price": 35000, "rationale": "breakout\n```\nThat is "all".'

    answer = answer_of(text)

    assert answer.entry_price == 35000
    assert answer.rationale == "breakout"


# --- which object wins ---------------------------------------------------------------------------


def test_an_indicator_array_before_the_decision_does_not_win() -> None:
    text = (
        "MACD histogram over the last bars: [123.4, 125.1, 130.9]\n"
        'EMA table: {"ema20": [35010.2, 35022.8], "ema50": 34800}\n'
        f"So: {BUY}"
    )

    assert answer_of(text) == answer_of(BUY)


def test_of_two_decisions_the_last_wins() -> None:
    text = (
        'Draft: {"action": "buy", "entry_price": 35000}\n'
        "On second thought the volume is weak.\n"
        'Final: {"action": "hold", "rationale": "weak volume"}'
    )

    assert answer_of(text) == ModelAnswer(action="hold", rationale="weak volume")


def test_the_last_object_that_validates_wins_over_a_later_invalid_one() -> None:
    text = '{"action": "hold", "rationale": "draft"}\nThen: {"action": "maybe"}'

    assert answer_of(text) == ModelAnswer(action="hold", rationale="draft")


def test_a_decision_nested_one_level_is_found() -> None:
    text = '{"analysis": {"trend": "up"}, "decision": {"action": "BUY", "entry": 35000, "tp": 36000}}'

    outcome = parse_answer(text)

    assert outcome.stage == "extracted"
    assert outcome.answer == ModelAnswer(action="buy", entry_price=35000, tp_price=36000)


# --- failures ------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", [None, "", "   \n\t "])
def test_no_text_is_empty_output(text: str | None) -> None:
    outcome = parse_answer(text)

    assert outcome.answer is None
    assert outcome.stage is None
    assert outcome.error == "empty_output"


@pytest.mark.parametrize(
    "text",
    [
        "I think we should buy BTC at 35,000 with a stop at 34,000.",
        "[123.4, 125.1, 130.9]",
        "Use the template {} and {  } here",
        "{{{{ ]]]] :: ,,,, 'action' buy",
    ],
)
def test_garbage_is_no_json_found(text: str) -> None:
    outcome = parse_answer(text)

    assert outcome.answer is None
    assert outcome.error == "no_json_found"
    assert outcome.detail


def test_json_without_action_is_invalid_decision_json_with_detail() -> None:
    outcome = parse_answer('{"entry_price": 35000, "tp_price": 36000}')

    assert outcome.answer is None
    assert outcome.stage is None
    assert outcome.error == "invalid_decision_json"
    assert outcome.detail is not None
    assert "'action'" in outcome.detail
    assert "entry_price" in outcome.detail


def test_an_invalid_decision_has_the_pydantic_error_as_detail() -> None:
    outcome = parse_answer('{"action": "strong buy", "entry_price": "soon"}')

    assert outcome.error == "invalid_decision_json"
    assert outcome.detail is not None
    assert "action: Input should be 'buy', 'sell', 'hold' or 'close'" in outcome.detail
    assert "entry_price" in outcome.detail


# --- key variants --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "field"),
    [
        ("take_profit", "tp_price"),
        ("tp", "tp_price"),
        ("TP", "tp_price"),
        ("Take-Profit", "tp_price"),
        ("stop_loss", "sl_price"),
        ("sl", "sl_price"),
        ("entry", "entry_price"),
        ("Entry_Price", "entry_price"),
    ],
)
def test_key_variants_are_mapped(key: str, field: str) -> None:
    answer = answer_of(f'{{"action": "buy", "{key}": 35000}}')

    assert getattr(answer, field) == 35000


@pytest.mark.parametrize(
    ("spelled", "action"),
    [("BUY", "buy"), ("Sell", "sell"), (" hold ", "hold"), ("Long", "buy"), ("SHORT", "sell")],
)
def test_action_spellings_are_mapped(spelled: str, action: str) -> None:
    outcome = parse_answer(json.dumps({"action": spelled}))

    assert outcome.stage == "extracted"
    assert outcome.answer is not None
    assert outcome.answer.action == action


def test_a_variant_in_otherwise_native_json_is_not_ignored_as_an_extra_key() -> None:
    outcome = parse_answer('{"action": "buy", "entry_price": 35000, "tp": 36000, "sl": 34000}')

    assert outcome.stage == "extracted"
    assert outcome.answer == ModelAnswer(action="buy", entry_price=35000, tp_price=36000, sl_price=34000)


def test_the_documented_key_wins_over_a_variant() -> None:
    answer = answer_of('{"action": "buy", "tp": 1, "tp_price": 36000}')

    assert answer.tp_price == 36000


# --- hostile input -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        '{"action": "buy", "entry_price": NaN}',
        '{"action": "buy", "entry_price": Infinity}',
        'ok: {"action": "buy", "entry_price": nan, "tp_price": 1e999,}',
    ],
)
def test_non_finite_numbers_are_carried_through_for_the_policy(text: str) -> None:
    answer = answer_of(text)

    assert answer.entry_price is not None
    assert not math.isfinite(answer.entry_price)


def test_a_lone_surrogate_escape_does_not_lose_the_answer() -> None:
    answer = answer_of('{"action": "hold", "rationale": "bad \\ud800 escape, good \\ud83d\\ude00"}')

    assert answer.rationale == "bad \ufffd escape, good \U0001f600"
    answer.rationale.encode("utf-8")


@pytest.mark.parametrize(
    "text",
    [
        "[" * 100_000,
        "{" * 100_000,
        '{"a": ' * 50_000 + BUY,
        '{"action": "buy", "leverage": ' + "9" * 5_000 + "}",
        '{"action": "buy", "leverage": 1e99999}',
        "\\" * 10_000 + '"' * 10_000,
        "{'" * 50_000,
        "```{" * 50_000,
    ],
)
def test_hostile_text_returns_an_outcome_quickly(text: str) -> None:
    started = time.perf_counter()

    outcome = parse_answer(text)

    assert isinstance(outcome, ParseOutcome)
    assert time.perf_counter() - started < 1.0


def test_only_the_tail_of_a_huge_text_is_read() -> None:
    head = '{"action": "sell"} ' + "x" * MAX_TEXT_CHARS
    assert answer_of(head + BUY).action == "buy"
    assert parse_answer(head).error == "no_json_found"


def test_a_100_kb_answer_of_prose_full_of_numbers_and_brackets_is_read() -> None:
    # How long it takes is bench/bench_text_and_tape.py's to say; here, that the decision is found.
    reasoning = 'RSI 61.2, MACD [123.4, 125.1], EMA {"ema20": 35010.2} and "quoted" words. ' * 1_400
    text = reasoning[:100_000] + "\n```json\n" + BUY + "\n```"

    assert parse_answer(text).answer == answer_of(BUY)


# --- numbers_in ----------------------------------------------------------------------------------


def test_numbers_in_reads_thousands_separators() -> None:
    numbers = numbers_in("Entry 35,123.45, target 1,234,567 and stop 34,000.")

    assert {35_123.45, 1_234_567.0, 34_000.0} <= numbers


def test_numbers_in_reads_plain_exponent_negative_and_leading_dot_numbers() -> None:
    numbers = numbers_in("last 35123.45, 3.5e4 units, change -1.2%, ratio .5, EMA(20)")

    assert {35_123.45, 35_000.0, -1.2, 0.5, 20.0} <= numbers


def test_numbers_in_does_not_read_a_hyphen_as_a_sign() -> None:
    numbers = numbers_in("a 5-10 range on BTC-35000")

    assert {5.0, 10.0, 35_000.0} <= numbers
    assert -10.0 not in numbers
    assert -35_000.0 not in numbers


def test_numbers_in_keeps_both_readings_of_a_comma_group() -> None:
    assert numbers_in("[100,200]") == {100.0, 200.0, 100_200.0}


def test_numbers_in_reads_spaced_digits_as_separate_numbers_and_skips_non_finite() -> None:
    assert numbers_in("35 123 and 1e999") == {35.0, 123.0}


# --- properties ----------------------------------------------------------------------------------

FRAGMENTS = [
    "{", "}", "[", "]", '"', "'", ",", ":", " ", "\n", "\\", "```", "```json", "//", "/*", "*/", "#",
    "action", '"action"', "'action'", "buy", '"buy"', "SELL", '"hold"', "decision", '"rationale"',
    "entry", "tp_price", "None", "True", "null", "NaN", "-Infinity", "1", "-2.5", "35,000.5",
    "1e999", "\\u", "d83d", "\\ud800", '\\"',
]  # fmt: skip
jsonish = st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=4)), max_size=60).map("".join)


def check_outcome(outcome: ParseOutcome) -> None:
    assert isinstance(outcome, ParseOutcome)
    if outcome.answer is None:
        assert outcome.stage is None
        assert outcome.error in {"empty_output", "no_json_found", "invalid_decision_json"}
        assert outcome.detail
    else:
        assert isinstance(outcome.answer, ModelAnswer)
        assert outcome.stage in {"native", "extracted"}
        assert outcome.error is None
        ModelAnswer.model_validate(outcome.answer.model_dump())
        outcome.answer.model_dump_json()


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_any_text_gives_an_outcome(text: str) -> None:
    check_outcome(parse_answer(text))


@settings(max_examples=300, deadline=None)
@given(jsonish)
def test_any_jsonish_text_gives_an_outcome(text: str) -> None:
    check_outcome(parse_answer(text))


finite = st.floats(allow_nan=False, allow_infinity=False)
answers = st.builds(
    ModelAnswer,
    action=st.sampled_from(["buy", "sell", "hold"]),
    entry_price=st.none() | finite,
    tp_price=st.none() | finite,
    sl_price=st.none() | finite,
    leverage=st.none() | finite,
    confidence=st.none() | st.floats(min_value=0, max_value=1),
    rationale=st.text(),
    invalidation=st.none() | st.text(),
)
prose = st.text(st.characters(exclude_characters="{}"), max_size=80)


@settings(max_examples=200, deadline=None)
@given(before=prose, answer=answers, after=prose, style=st.sampled_from(["pydantic", "ascii", "indented"]))
def test_a_valid_answer_embedded_in_prose_is_recovered(
    before: str, answer: ModelAnswer, after: str, style: str
) -> None:
    if style == "pydantic":
        dumped = answer.model_dump_json()
    else:
        dumped = json.dumps(answer.model_dump(), indent=2 if style == "indented" else None)

    outcome = parse_answer(f"{before}{dumped}{after}")

    assert outcome.answer == answer
    assert outcome.stage in {"native", "extracted"}


@settings(max_examples=200, deadline=None)
@given(answer=answers, cut=st.integers(min_value=1), indented=st.booleans())
def test_a_truncated_answer_never_carries_a_price_that_was_not_written_in_full(
    answer: ModelAnswer, cut: int, indented: bool
) -> None:
    dumped = json.dumps(answer.model_dump(), indent=2 if indented else None)

    outcome = parse_answer(dumped[: cut % len(dumped)])

    check_outcome(outcome)
    if outcome.answer is not None:
        assert outcome.answer.action == answer.action
        for field in ("entry_price", "tp_price", "sl_price"):
            assert getattr(outcome.answer, field) in {None, getattr(answer, field)}


# --- reasoning models ----------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.sampled_from(["<think>", "</think>", "<THINKING>", "</thinking>", "<reasoning>"]), st.text()
        ),
        max_size=12,
    ).map("".join)
)
def test_thinking_never_stays_in_the_answer(text: str) -> None:
    from rez_cli.llm.thinking import split_thinking

    answer, thinking = split_thinking(text)
    assert answer is not None
    assert thinking is None or isinstance(thinking, str)
    lowered = answer.lower()
    assert not any(tag in lowered for tag in ("<think>", "<thinking>", "<reasoning>"))
    if not any(tag in text.lower() for tag in ("<think>", "<thinking>", "<reasoning>")):
        assert (answer, thinking) == (text, None)


def test_an_answer_after_the_thinking_is_parsed_and_a_draft_inside_it_is_not() -> None:
    from rez_cli.llm.thinking import split_thinking

    answer, thinking = split_thinking('<think>draft {"action": "sell"}</think>\n{"action": "hold"}')
    assert thinking == 'draft {"action": "sell"}'
    assert answer_of(answer).action == "hold"
