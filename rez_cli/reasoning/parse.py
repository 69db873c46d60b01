"""Turn a model's final text into a ``ModelAnswer``, in stages.

    native      the whole message is a JSON object that validates as it is
    extracted   a JSON-ish object found in the text, read leniently, keys and action normalised
    (repaired)  not here: the caller asks the resilience model when ``answer`` is None

The extractor is hand-written rather than a generic JSON repairer because its rules are about
decisions, not only syntax:

- the last object that validates wins: models quote indicator arrays and write drafts before
  their final answer, and only an object with an ``action`` can be a decision;
- a text cut off at the end is closed (strings, brackets), but a number or a word cut by the
  end is dropped, never kept: ``35123.4`` cut to ``351`` would be a wrong price, not a short one;
- the work is bounded (tail of the text, nesting depth, steps spent on failed starts): the text
  is untrusted and this runs on every cycle. Nothing but a ``ParseOutcome`` leaves
  ``parse_answer``.
"""

from __future__ import annotations

import bisect
import json
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Final, Literal, NamedTuple

from pydantic import ValidationError

from rez_cli.decision.codes import Hold
from rez_cli.decision.model import ModelAnswer

__all__ = [
    "MAX_TEXT_CHARS",
    "ParseErrorCode",
    "ParseOutcome",
    "ParseStage",
    "parse_answer",
]

ParseStage = Literal["native", "extracted"]
ParseErrorCode = Literal[Hold.EMPTY_OUTPUT, Hold.NO_JSON_FOUND, Hold.INVALID_DECISION_JSON]

# A final answer is a few hundred characters; a decision is at the end of the text, so its tail is
# what matters, and the bound keeps a runaway generation from costing more than a cycle is worth.
MAX_TEXT_CHARS: Final = 200_000
# A decision is one level deep ({"decision": {...}}), indicator tables two or three.
_MAX_DEPTH: Final = 32
_DETAIL_CHARS: Final = 300


@dataclass(frozen=True)
class ParseOutcome:
    """What ``parse_answer`` made of a text: an answer and its stage, or an error code and why."""

    answer: ModelAnswer | None
    stage: ParseStage | None
    error: ParseErrorCode | None
    detail: str | None


def parse_answer(text: str | None) -> ParseOutcome:
    """Read the model's final text as a ``ModelAnswer``; never raises.

    Args:
        text: the final message of the model, or None when it wrote nothing.

    Returns:
        ``answer`` and ``stage`` on success; otherwise ``error`` is ``empty_output``,
        ``no_json_found`` or ``invalid_decision_json`` and ``detail`` says what was wrong.
    """
    text = text or ""
    content = text.rstrip()
    # One blank after the content is kept: it proves that a number at the very end is complete.
    body = text[: len(content) + 1][-MAX_TEXT_CHARS:].lstrip()
    if not content:
        return ParseOutcome(None, None, Hold.EMPTY_OUTPUT, "the model returned no text")
    native = _native(body.rstrip())
    if native is not None:
        return ParseOutcome(native, "native", None, None)
    return _extracted(body)


# --- stage 1: native -----------------------------------------------------------------------------


def _native(body: str) -> ModelAnswer | None:
    if not (body.startswith("{") and body.endswith("}")):
        return None
    try:
        loaded = json.loads(body)
    # ValueError covers JSONDecodeError and the 4,300-digit limit on integers; deep nesting
    # exhausts the C decoder's recursion.
    except (ValueError, RecursionError):
        return None
    if not isinstance(loaded, dict):
        return None
    normalized = _normalize(loaded)
    if normalized.keys() != loaded.keys() or normalized.get("action") != loaded.get("action"):
        # {"action": "buy", "tp": 36000} would validate with the variant ignored as an extra key
        # and its price lost; the extracted stage reads it with the variants mapped.
        return None
    try:
        return ModelAnswer.model_validate(loaded)
    except ValidationError:
        return None


# --- stage 2: extracted --------------------------------------------------------------------------


def _extracted(body: str) -> ParseOutcome:
    objects, exhausted = _objects_in(body)
    first_error: str | None = None
    for candidate in _decision_candidates(reversed(objects)):
        try:
            return ParseOutcome(ModelAnswer.model_validate(candidate), "extracted", None, None)
        except ValidationError as e:
            first_error = first_error or _summarize(e)
    note = " (scan stopped early: the text is too irregular)" if exhausted else ""
    if first_error is not None:
        return ParseOutcome(
            None, None, Hold.INVALID_DECISION_JSON, _clip(f"last decision: {first_error}{note}")
        )
    found = [obj for obj in objects if obj]
    if found:
        keys = ", ".join(str(key) for key in found[-1])
        detail = f"no object with an 'action' key; the last one has: {keys}{note}"
        return ParseOutcome(None, None, Hold.INVALID_DECISION_JSON, _clip(detail))
    return ParseOutcome(None, None, Hold.NO_JSON_FOUND, f"no JSON object in {len(body)} characters{note}")


def _decision_candidates(objects: Iterator[dict[str, object]]) -> Iterator[dict[str, object]]:
    """Normalised objects with an ``action``, last first; one level of nesting is looked into."""
    for obj in objects:
        top = _normalize(obj)
        if "action" in top:
            yield top
            continue
        for value in reversed(list(obj.values())):
            if isinstance(value, dict):
                nested = _normalize(value)
                if "action" in nested:
                    yield nested


_KEY_ALIASES: Final = {
    "take_profit": "tp_price",
    "tp": "tp_price",
    "stop_loss": "sl_price",
    "sl": "sl_price",
    "entry": "entry_price",
}
_ACTION_ALIASES: Final = {"long": "buy", "short": "sell"}


def _normalize(obj: Mapping[str, object]) -> dict[str, object]:
    out: dict[str, object] = {}
    aliased: dict[str, object] = {}
    for key, value in obj.items():
        name = key.strip().lower().replace("-", "_").replace(" ", "_")
        canonical = _KEY_ALIASES.get(name)
        if canonical is None:
            out[name] = value
        else:
            aliased.setdefault(canonical, value)
    for name, value in aliased.items():
        # The documented key wins over a variant when a model writes both.
        out.setdefault(name, value)
    action = out.get("action")
    if isinstance(action, str):
        spelled = action.strip().lower()
        out["action"] = _ACTION_ALIASES.get(spelled, spelled)
    return out


def _summarize(error: ValidationError) -> str:
    parts = []
    for item in error.errors(include_url=False, include_input=False)[:3]:
        where = ".".join(str(part) for part in item["loc"]) or "object"
        parts.append(f"{where}: {item['msg']}")
    return "; ".join(parts)


def _clip(detail: str) -> str:
    return detail if len(detail) <= _DETAIL_CHARS else detail[: _DETAIL_CHARS - 1] + "…"


def _objects_in(body: str) -> tuple[list[dict[str, object]], bool]:
    """Every top-level JSON-ish object of ``body`` in order, and whether the work budget ran out.

    A failed start moves on by one character, so a broken outer object still yields the objects
    inside it; a successful one is skipped whole, so text inside its strings is never read as
    objects. Adversarial text (many starts that each read far before failing) would make this
    quadratic, so all attempts share one budget of reader steps (values, keys, quotes), sized
    so that even a hostile text of ``MAX_TEXT_CHARS`` costs well under a tenth of a second.
    """
    fences = [match.start() for match in re.finditer("```", body)]
    work = _Work(_BASE_STEPS + len(body) // 4)
    objects: list[dict[str, object]] = []
    position = 0
    try:
        while (start := body.find("{", position)) >= 0:
            read = _read_object(body, start, len(body), work)
            fence = bisect.bisect_right(fences, start)
            if (read.obj is None or read.cut) and fence < len(fences):
                # A fence closes a block the model left open; what follows it is prose.
                fenced = _read_object(body, start, fences[fence], work)
                if fenced.obj is not None:
                    read = fenced
            if read.obj is not None:
                objects.append(read.obj)
                position = read.stop
            elif read.too_deep:
                # The starts in between open the same too-deep value: re-reading each is quadratic.
                position = max(read.stop, start + 1)
            else:
                position = start + 1
    except _OutOfWork:
        return objects, True
    return objects, False


# Steps are values, keys and quotes read (about a microsecond each); see _Work.
_BASE_STEPS: Final = 20_000


class _Work:
    """The reader steps that failed starts of one text may still spend.

    Successful starts never overlap, so their reading is linear in the text and costs little here;
    failed starts are where the quadratic risk lies, so they pay what they read.
    """

    def __init__(self, steps: int) -> None:
        self.left = steps

    def charge(self, read: _Read, steps: int) -> None:
        self.left -= steps + 2 if read.obj is None else 1 + (read.stop - read.start) // 32
        if self.left <= 0:
            raise _OutOfWork


class _Read(NamedTuple):
    obj: dict[str, object] | None
    start: int
    stop: int
    cut: bool
    too_deep: bool


def _read_object(text: str, start: int, end: int, work: _Work) -> _Read:
    """The object at ``text[start]``, read up to ``end``; ``obj`` is None when there is none."""
    reader = _Reader(text, start, end, work.left)
    try:
        value = reader.value(0)
        obj = value if isinstance(value, dict) else None
        read = _Read(obj, start, reader.pos, reader.cut, False)
    except _TooDeep:
        read = _Read(None, start, reader.pos, False, True)
    except _NotJson:
        read = _Read(None, start, reader.pos, False, False)
    work.charge(read, reader.steps)
    return read


class _NotJson(Exception):
    """The text at this start cannot be read as a JSON-ish value."""


class _TooDeep(_NotJson):
    """Nesting beyond ``_MAX_DEPTH``."""


class _OutOfWork(Exception):
    """The budget of reader steps for this text is spent."""


class _Dropped:
    """A scalar cut by the end of the text: its value is unknown, so it is left out."""


_DROPPED: Final = _Dropped()

_SKIP: Final = re.compile(r"(?:\s+|//[^\n]*|\#[^\n]*|/\*.*?(?:\*/|\Z))*", re.DOTALL)
# A scalar runs to the next structural character; comments start with / or #.
_SCALAR: Final = re.compile(r"""[^\s,:\[\]{}"'/#]+""")
_NUMBER: Final = re.compile(r"[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?", re.ASCII)
# Numbers each followed by a comma, so none of them can be cut by the end of the text.
_NUMBER_RUN: Final = re.compile(
    r"(?:[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?[ \t\r\n]*,[ \t\r\n]*)+", re.ASCII
)
_IDENTIFIER: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]*", re.ASCII)
_STRING_BODY: Final = {
    quote: re.compile(rf"[^{quote}\\]*(?:\\.[^{quote}\\]*)*", re.DOTALL) for quote in "\"'"
}
# After a real closing quote comes a separator, a closer, a colon, a comment, or the next key
# (a missing comma); anything else is a quote inside the text: `"the "golden cross" formed"`.
_AFTER_CLOSING_QUOTE: Final = frozenset(",}]:/#\"'")
_WORDS: Final[dict[str, object]] = {
    "true": True,
    "false": False,
    "null": None,
    "True": True,
    "False": False,
    "None": None,
    "NaN": math.nan,
    "nan": math.nan,
    "Infinity": math.inf,
    "-Infinity": -math.inf,
    "+Infinity": math.inf,
    "inf": math.inf,
    "-inf": -math.inf,
}
_ESCAPE: Final = re.compile(
    r"\\(?:u([dD][89abAB][0-9a-fA-F]{2})\\u([dD][c-fC-F][0-9a-fA-F]{2})|u([0-9a-fA-F]{4})|(.))", re.DOTALL
)
_SIMPLE_ESCAPES: Final = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f", "/": "/", "\\": "\\"}
_SURROGATE: Final = re.compile("[\ud800-\udfff]")


class _Reader:
    """A lenient recursive reader of one JSON-ish value, bounded by ``end`` and ``_MAX_DEPTH``.

    Beyond JSON it reads single quotes, Python literals, NaN/Infinity, bare keys and words,
    comments, trailing and missing commas, unescaped quotes inside strings, and a text that ends
    inside the value (``cut``): open strings and containers are closed there.
    """

    def __init__(self, text: str, start: int, end: int, max_steps: int) -> None:
        self.text = text
        self.pos = start
        self.end = end
        self.max_steps = max_steps
        self.steps = 0
        self.cut = False

    def _step(self, steps: int = 1) -> None:
        self.steps += steps
        if self.steps > self.max_steps:
            raise _OutOfWork

    def value(self, depth: int) -> object:
        self._step()
        if self._at_end():
            return _DROPPED
        char = self.text[self.pos]
        if char == "{":
            return self._object(depth + 1)
        if char == "[":
            return self._array(depth + 1)
        if char in "\"'":
            return self._string()
        return self._scalar()

    def _at_end(self) -> bool:
        """Skip blanks and comments; True (and ``cut``) when the text ends there."""
        if self.pos < self.end:
            char = self.text[self.pos]
            if not char.isspace() and char not in "/#":
                return False
        self.pos = _skip(self.text, self.pos, self.end)
        if self.pos >= self.end:
            self.cut = True
            return True
        return False

    def _object(self, depth: int) -> dict[str, object]:
        if depth > _MAX_DEPTH:
            raise _TooDeep
        self.pos += 1
        out: dict[str, object] = {}
        while not self._at_end():
            char = self.text[self.pos]
            if char == "}":
                self.pos += 1
                return out
            if char == ",":
                self.pos += 1
                continue
            key = self._key()
            if key is None or self._at_end():
                return out
            if self.text[self.pos] != ":":
                raise _NotJson
            self.pos += 1
            value = self.value(depth)
            if isinstance(value, _Dropped):
                return out
            out[key] = value
            if self.cut or self._at_end():
                return out
            char = self.text[self.pos]
            if char not in ",}\"'":
                raise _NotJson
        return out

    def _array(self, depth: int) -> list[object]:
        if depth > _MAX_DEPTH:
            raise _TooDeep
        self.pos += 1
        out: list[object] = []
        while not self._at_end():
            char = self.text[self.pos]
            if char == "]":
                self.pos += 1
                return out
            if char == ",":
                self.pos += 1
                continue
            run = _NUMBER_RUN.match(self.text, self.pos, self.end)
            if run is not None:
                # Indicator series are long runs of numbers: read them in one go.
                numbers = run.group().split(",")[:-1]
                self._step(1 + len(numbers) // 16)
                out.extend(float(number) for number in numbers)
                self.pos = run.end()
                continue
            value = self.value(depth)
            if isinstance(value, _Dropped):
                return out
            out.append(value)
            if self.cut or self._at_end():
                return out
            if self.text[self.pos] not in ",]":
                raise _NotJson
        return out

    def _key(self) -> str | None:
        """The key at ``pos``, or None when the text ends inside it."""
        self._step()
        if self.text[self.pos] in "\"'":
            key = self._string()
            return None if self.cut else key
        match = _SCALAR.match(self.text, self.pos, self.end)
        if match is None or not _IDENTIFIER.fullmatch(match.group()):
            raise _NotJson
        self.pos = match.end()
        if self.pos >= self.end:
            self.cut = True
            return None
        return match.group()

    def _scalar(self) -> object:
        match = _SCALAR.match(self.text, self.pos, self.end)
        if match is None:
            raise _NotJson
        self.pos = match.end()
        if self.pos >= self.end:
            # "351" may have been "35123.4", "tr" "true": the value is unknown.
            self.cut = True
            return _DROPPED
        token = match.group()
        if token in _WORDS:
            return _WORDS[token]
        if _NUMBER.fullmatch(token):
            # float, not int: no digit limit, and every number of a decision is a float.
            return float(token)
        if _IDENTIFIER.fullmatch(token):
            return token
        raise _NotJson

    def _string(self) -> str:
        quote = self.text[self.pos]
        body = _STRING_BODY[quote]
        start = scan = self.pos + 1
        while True:
            self._step()
            close = _match_end(body, self.text, scan, self.end)
            if close >= self.end or self.text[close] != quote:
                # No closing quote before the end (or only a trailing backslash): close it there.
                raw = self.text[start : self.end]
                if raw.endswith("\\") and (len(raw) - len(raw.rstrip("\\"))) % 2:
                    raw = raw[:-1]
                self.pos = self.end
                self.cut = True
                return _unescape(raw)
            after = _skip(self.text, close + 1, self.end)
            if after >= self.end or self.text[after] in _AFTER_CLOSING_QUOTE:
                self.pos = close + 1
                return _unescape(self.text[start:close])
            scan = close + 1


def _skip(text: str, pos: int, end: int) -> int:
    """Where the blanks and comments from ``pos`` end."""
    return _match_end(_SKIP, text, pos, end)


def _match_end(pattern: re.Pattern[str], text: str, pos: int, end: int) -> int:
    # Only used with patterns that match the empty string, so a match is always found.
    match = pattern.match(text, pos, end)
    return pos if match is None else match.end()


def _unescape(raw: str) -> str:
    text = _ESCAPE.sub(_escape, raw) if "\\" in raw else raw
    # A lone surrogate (from "\\ud800" or the text itself) cannot be encoded for the journal or
    # stdout, and pydantic rejects it; a replacement character keeps the rest of the rationale.
    return _SURROGATE.sub("\ufffd", text)


def _escape(match: re.Match[str]) -> str:
    high, low, code, char = match.groups()
    if high is not None:
        return chr(0x10000 + ((int(high, 16) - 0xD800) << 10) + (int(low, 16) - 0xDC00))
    if code is not None:
        return chr(int(code, 16))
    if char in "\"'":
        return char
    return _SIMPLE_ESCAPES.get(char, "\\" + char)
