"""The invalidation language: its syntax tree and its parser.

    condition  := clause ( "or" clause )*
    clause     := term ( "and" term )*          ("and" binds tighter than "or")
    term       := operand comparator operand
    comparator := < | <= | > | >= | crosses_above | crosses_below
    operand    := number | series
    series     := price_timeframe | indicator(_param)*_timeframe

The text comes from a model, so the parser is bounded (characters, terms), never evaluates anything,
and every way it can fail is an ``InvalidationError`` whose one-line message says what is wrong and
where, worded so that a repair can act on it. Indicators are the allow-list's single-output ones,
their parameters positional in the order ``fetch_indicator`` lists them, omitted trailing ones at
their defaults; a parsed condition spells every one out in ``Condition.text``.
"""

from __future__ import annotations

import functools
import math
import re
import typing
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel

from rez_cli import indicators
from rez_cli.errors import UsageError
from rez_cli.timeframes import timeframe_ms

MAX_CHARS = 400
"""The longest invalidation read: a condition a trader states is one line, not an essay."""
MAX_TERMS = 8
"""The most comparisons in one condition, across its clauses."""

PRICES: tuple[str, ...] = ("open", "high", "low", "close", "volume")
Comparator = Literal["<", "<=", ">", ">=", "crosses_above", "crosses_below"]
COMPARATORS: tuple[Comparator, ...] = ("<", "<=", ">", ">=", "crosses_above", "crosses_below")
ParamValue = int | float | str


class InvalidationError(UsageError):
    """An invalidation condition that cannot be parsed; the message names what and where."""

    reference = "invalidation_error"


def single_output_indicators() -> tuple[str, ...]:
    """The indicators a condition may name: those of the allow-list with one output column."""
    return tuple(name for name, spec in indicators.INDICATORS.items() if len(spec.outputs) == 1)


def _number_text(value: float) -> str:
    # The shortest spelling that reads back as the same float: 61200, not 61200.0.
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


@dataclass(frozen=True)
class Number:
    """A literal: finite, as written."""

    value: float

    @property
    def text(self) -> str:
        return _number_text(self.value)


@dataclass(frozen=True)
class Series:
    """A value per candle of one timeframe: a price column, or an indicator's only output."""

    name: str
    """``close`` ... ``volume``, or an indicator of the allow-list."""
    params: tuple[ParamValue, ...]
    """Every parameter of the indicator, defaults included, in its declared order; () for a price."""
    timeframe: str

    @property
    def is_price(self) -> bool:
        return self.name in PRICES

    @property
    def params_model(self) -> BaseModel | None:
        """The indicator's validated parameters (None for a price column)."""
        if self.is_price:
            return None
        fields = list(indicators.INDICATORS[self.name].params.model_fields)
        return indicators.validate_params(self.name, dict(zip(fields, self.params, strict=True)))

    @property
    def text(self) -> str:
        parts = [self.name, *(_param_text(value) for value in self.params), self.timeframe]
        return "_".join(parts)

    def warmup_bars(self) -> int:
        """Candles of its timeframe before its first value that no longer depends on the history's start."""
        if self.is_price:
            return 0
        return indicators.warmup_bars(self.name, self.params_model, timeframe_ms=timeframe_ms(self.timeframe))


Operand = Number | Series


@dataclass(frozen=True)
class Term:
    """One comparison: ``left comparator right``."""

    left: Operand
    comparator: Comparator
    right: Operand

    @property
    def text(self) -> str:
        return f"{self.left.text} {self.comparator} {self.right.text}"

    @property
    def crossing(self) -> bool:
        return self.comparator in ("crosses_above", "crosses_below")


@dataclass(frozen=True)
class Condition:
    """A parsed invalidation: clauses joined by ``or``, each a conjunction of terms.

    Frozen and hashable; two conditions are equal when they say the same thing, however spelt.
    """

    clauses: tuple[tuple[Term, ...], ...]

    @property
    def text(self) -> str:
        """The canonical spelling: lower case, every parameter written out, single spaces."""
        return " or ".join(clause_text(clause) for clause in self.clauses)

    @property
    def series(self) -> tuple[Series, ...]:
        """Every series the condition reads, once each, in the order written."""
        found: dict[Series, None] = {}
        for clause in self.clauses:
            for term in clause:
                for operand in (term.left, term.right):
                    if isinstance(operand, Series):
                        found[operand] = None
        return tuple(found)

    @property
    def timeframes(self) -> tuple[str, ...]:
        """The timeframes whose candles it needs, shortest first."""
        return tuple(sorted({series.timeframe for series in self.series}, key=timeframe_ms))

    def warmup_bars(self, timeframe: str) -> int:
        """How many candles of ``timeframe`` must have closed by the first moment evaluated (the
        previous moment, for a crossing) for every series of that timeframe to have a settled value;
        0 for a timeframe the condition does not read."""
        needed = [series.warmup_bars() + 1 for series in self.series if series.timeframe == timeframe]
        return max(needed, default=0)

    def __str__(self) -> str:
        return self.text


def clause_text(clause: tuple[Term, ...]) -> str:
    """One clause as ``Condition.text`` spells it."""
    return " and ".join(term.text for term in clause)


def _param_text(value: ParamValue) -> str:
    return value.lower() if isinstance(value, str) else _number_text(float(value))


# -- tokens -------------------------------------------------------------------------------------------

# ASCII only: int() reads Arabic-Indic digits and str.lower() may lengthen a character, and neither
# belongs in a condition.
_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<number>[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)
  | (?P<name>[A-Za-z][A-Za-z0-9_.]*)
  | (?P<op><=|>=|<|>|==|=|!=)
    """,
    re.VERBOSE | re.ASCII,
)
_THOUSANDS = re.compile(r"[0-9]{1,3}(?:,[0-9]{3})+(?:\.[0-9]+)?", re.ASCII)


@dataclass(frozen=True)
class _Token:
    kind: Literal["number", "name", "op"]
    text: str
    """As written (names lower-cased)."""
    at: int


def _quote(text: str) -> str:
    # Repr-quoted and cut: a message quotes what the model wrote, which may be anything.
    return repr(text if len(text) <= 40 else text[:40] + "…")


def _tokens(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    position = 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            raise InvalidationError(_bad_character(text, position))
        kind = match.lastgroup
        written = match.group()
        end = match.end()
        if kind == "number":
            grouped = _THOUSANDS.match(text, position + (written[0] in "+-"))
            if grouped is not None and "," in grouped.group():
                written = grouped.group()
                raise InvalidationError(
                    f"thousands separator in {_quote(written)}: write {written.replace(',', '')}"
                )
            if end < len(text) and (text[end].isalnum() or text[end] == "_"):
                word = re.match(r"[\w.%]+", text[position:], re.ASCII)
                spelled = word.group() if word else written
                raise InvalidationError(
                    f"{_quote(spelled)} at position {position} is neither a number nor a series "
                    "(a series is written name_timeframe, e.g. close_1h)"
                )
        if kind == "name":
            tokens.append(_Token("name", written.lower(), position))
        elif kind == "number":
            tokens.append(_Token("number", written, position))
        elif kind == "op":
            tokens.append(_Token("op", written, position))
        position = end
    return tokens


def _bad_character(text: str, position: int) -> str:
    character = text[position]
    if character == "%":
        return f"percent sign at position {position}: write plain numbers (rsi_14_1h > 75, not 75%)"
    if character == ",":
        return (
            f"comma at position {position}: join terms with 'and' or 'or', write numbers without separators"
        )
    if character in "()":
        return (
            f"parenthesis at position {position}: conditions have no brackets; 'and' binds tighter than 'or'"
        )
    return f"unexpected character {character!r} at position {position}"


# -- parser -------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=256)
def parse_invalidation(text: str) -> Condition:
    """Parse an invalidation condition such as ``close_1h < 61200 or rsi_14_4h > 75``.

    Raises:
        InvalidationError: the text is empty, too long, or breaks the grammar; the message is one
            line naming what is wrong and where.
    """
    if not isinstance(text, str):
        raise InvalidationError(f"an invalidation condition is text, not {type(text).__name__}")
    if len(text) > MAX_CHARS:
        raise InvalidationError(f"the invalidation is {len(text)} characters long; at most {MAX_CHARS}")
    if not text.strip():
        raise InvalidationError("the invalidation is empty: write a condition such as close_1h < 61200")
    return _Parser(_tokens(text)).condition()


class _Parser:
    """Recursive descent over the tokens, one method per rule of the grammar."""

    def __init__(self, tokens: list[_Token]) -> None:
        self.tokens = tokens
        self.position = 0
        self.terms = 0

    def peek(self) -> _Token | None:
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def take(self) -> _Token:
        token = self.tokens[self.position]
        self.position += 1
        return token

    def condition(self) -> Condition:
        clauses = [self.clause()]
        while (token := self.peek()) is not None:
            if token.text != "or":
                raise InvalidationError(f"expected 'and' or 'or' before {_quote(token.text)}")
            self.take()
            clauses.append(self.clause())
        return Condition(tuple(clauses))

    def clause(self) -> tuple[Term, ...]:
        terms = [self.term()]
        while (token := self.peek()) is not None and token.text == "and":
            self.take()
            terms.append(self.term())
        return tuple(terms)

    def term(self) -> Term:
        self.terms += 1
        if self.terms > MAX_TERMS:
            raise InvalidationError(f"more than {MAX_TERMS} comparisons: state the condition more simply")
        left_token = self.peek()
        left = self.operand("at the start" if self.position == 0 else f"after {_quote(self.previous())}")
        comparator = self.comparator(left_token)
        right = self.operand(f"after {_quote(comparator)}")
        term = Term(left, comparator, right)
        if isinstance(left, Number) and isinstance(right, Number):
            raise InvalidationError(
                f"{_quote(term.text)} compares two numbers: compare a series such as close_1h"
            )
        return term

    def previous(self) -> str:
        return self.tokens[self.position - 1].text

    def operand(self, where: str) -> Operand:
        token = self.peek()
        if token is None:
            raise InvalidationError(f"expected a number or a series {where}, found the end")
        if token.kind == "number":
            self.take()
            value = float(token.text)
            if not math.isfinite(value):
                raise InvalidationError(f"number {_quote(token.text)} is not finite")
            return Number(value)
        if token.kind == "name" and token.text not in ("and", "or", *COMPARATORS):
            self.take()
            return _series(token.text)
        raise InvalidationError(f"expected a number or a series {where}, found {_quote(token.text)}")

    def comparator(self, left: _Token | None) -> Comparator:
        after = f"after {_quote(left.text if left else '')}"
        token = self.peek()
        if token is None:
            raise InvalidationError(f"expected a comparator {after}, found the end")
        if token.text in ("=", "==", "!="):
            raise InvalidationError(
                f"{_quote(token.text)} is not a comparator: use <, <=, >, >=, crosses_above or crosses_below"
            )
        for comparator in COMPARATORS:
            if token.text == comparator:
                self.take()
                return comparator
        hint = " (crosses_above or crosses_below)" if token.text.startswith("cross") else ""
        raise InvalidationError(f"expected a comparator {after}, found {_quote(token.text)}{hint}")


@functools.lru_cache(maxsize=256)
def _series(word: str) -> Series:
    """A series from its lower-cased spelling, its indicator and parameters checked."""
    parts = word.split("_")
    if len(parts) < 2 or not parts[-1]:
        example = f"{parts[0]}_1h" if parts[0] else "close_1h"
        raise InvalidationError(f"{_quote(word)} needs a timeframe at its end, e.g. {example}")
    name, *param_texts, timeframe = parts
    try:
        timeframe_ms(timeframe)
    except UsageError:
        raise InvalidationError(
            f"unknown timeframe {_quote(timeframe)} in {_quote(word)} (use 5m, 15m, 1h, 4h, 1d...)"
        ) from None
    if name in PRICES:
        if param_texts:
            raise InvalidationError(f"{_quote(word)}: a price takes no parameters, write {name}_{timeframe}")
        return Series(name, (), timeframe)
    spec = indicators.INDICATORS.get(name)
    if spec is None:
        names = ", ".join((*PRICES, *single_output_indicators()))
        raise InvalidationError(f"unknown indicator {_quote(name)} at {_quote(word)}; known: {names}")
    if len(spec.outputs) != 1:
        single = ", ".join(single_output_indicators())
        raise InvalidationError(
            f"{name} has several outputs ({', '.join(spec.outputs)}) and cannot be compared at "
            f"{_quote(word)}; single-output indicators: {single}"
        )
    fields = spec.params.model_fields
    if len(param_texts) > len(fields):
        listed = ", ".join(fields) or "none"
        raise InvalidationError(
            f"{name} takes {len(fields)} parameter{'s' if len(fields) != 1 else ''} ({listed}), "
            f"got {len(param_texts)} in {_quote(word)}"
        )
    given: dict[str, Any] = {}
    for (field_name, field), written in zip(fields.items(), param_texts, strict=False):
        given[field_name] = _param_value(field.annotation, written, field_name, word)
    try:
        model = indicators.validate_params(name, given)
    except indicators.IndicatorError as error:
        raise InvalidationError(f"bad parameter in {_quote(word)}: {error.message}") from None
    return Series(name, tuple(model.model_dump().values()), timeframe)


def _param_value(annotation: Any, written: str, field_name: str, word: str) -> ParamValue:
    base = typing.get_args(annotation)[0] if typing.get_origin(annotation) is typing.Annotated else annotation
    if typing.get_origin(base) is Literal:
        for choice in typing.get_args(base):
            if str(choice).lower() == written:
                return str(choice)
        choices = "|".join(str(choice).lower() for choice in typing.get_args(base))
        raise InvalidationError(
            f"{field_name} must be one of {choices} in {_quote(word)}, got {_quote(written)}"
        )
    try:
        value: ParamValue = int(written) if base is int else float(written)
    except ValueError:
        kind = "a whole number" if base is int else "a number"
        raise InvalidationError(
            f"{field_name} must be {kind} in {_quote(word)}, got {_quote(written)}"
        ) from None
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidationError(f"{field_name} must be finite in {_quote(word)}, got {_quote(written)}")
    return value


def invalidation_problem(text: str | None) -> str | None:
    """Why a trade's invalidation cannot stand (the parser's message), or None when it parses or is
    absent (None or blank: the trade states no condition)."""
    if text is None or not text.strip():
        return None
    try:
        parse_invalidation(text)
    except InvalidationError as error:
        return error.message
    return None


def parse_optional(text: str | None) -> Condition | None:
    """A trade's condition, or None when it states none (None or blank).

    Raises:
        InvalidationError: as ``parse_invalidation``.
    """
    if text is None or not text.strip():
        return None
    return parse_invalidation(text)
