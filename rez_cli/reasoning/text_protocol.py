"""The text tool protocol, for endpoints and models without tool calling.

The tools are described in the system prompt, and the model calls one by writing a line::

    CALL fetch_indicator {"indicator": "rsi", "timeframe": "1h", "params": {"length": 14}}

One answer may hold several such lines (``MAX_CALLS_PER_ANSWER`` are run, in order). Rez runs them
through the same ``ToolRegistry`` as native calls and sends the results back in the next user
message, each labelled with the call it answers.

Models write these lines loosely, so the parser is tolerant: inside code fences or backticks, after
a list marker or prose ending in a colon, ``CALL: name``, ``CALL name({...})``, the JSON on the
next line or over several lines, text after the JSON. To keep prose from being taken for a call,
``CALL`` must be upper case and either start its line (after markdown decoration) or be followed by
the arguments' ``{``. Arguments that are not valid JSON are passed on as written, so the registry
answers them with the same ``Error: ...`` a native call would get.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from rez_cli.reasoning.prompts import (
    CALL_HINT,
    FINAL_TURN_NOTE,
    TEXT_CONTINUE_NOTE,
    TEXT_FINAL_TURN_NOTE,
    text_results_message,
    text_tools_prompt,
    with_system_addition,
)

__all__ = [
    "MAX_CALLS_PER_ANSWER",
    "TextCall",
    "parse_calls",
    "text_conversation",
    "text_opening",
    "without_calls",
]

# A small model stuck in a loop can fill its whole output cap with CALL lines; the native protocol
# has no such bound because the endpoint's own format limits it.
MAX_CALLS_PER_ANSWER = 8

# Upper-case CALL as a word of its own, markdown emphasis around it, an optional colon, the name.
_CALL = re.compile(
    r"(?<![A-Za-z0-9_])CALL(?![A-Za-z0-9_])[*_]*[ \t]*:?[ \t]*[*_`]*[ \t]*([A-Za-z_][\w-]{0,63})"
)
# What may stand before CALL on its line for the line to count as starting with it: indentation,
# list markers and numbers, quotes, emphasis, backticks.
_LINE_START = re.compile(r"[ \t>*_`#+\-\d.)]*")
# Between the name and the arguments: an opening parenthesis or backticks, at most one line break
# and one opening fence (```json) before the JSON starts.
_GAP = re.compile(r"[ \t*_`:(]*(?:\r?\n[ \t]*(?:`{3}[A-Za-z]*[ \t]*\r?\n[ \t]*)?)?")
_DECODER = json.JSONDecoder()


@dataclass(frozen=True)
class TextCall:
    """A tool call written as a CALL line.

    ``arguments`` is the JSON object exactly as the model wrote it, or, when no valid JSON object
    follows the name, the rest of its line (possibly empty), which the registry rejects with an
    error the model can read. ``start``/``end`` are the call's span in the text.
    """

    name: str
    arguments: str
    start: int
    end: int


def parse_calls(text: str | None, *, limit: int | None = None) -> list[TextCall]:
    """The CALL lines of a model's answer, in order; never raises.

    Args:
        text: the answer (None: no calls).
        limit: stop after this many calls (None: all).
    """
    if not text:
        return []
    calls: list[TextCall] = []
    position = 0
    while limit is None or len(calls) < limit:
        match = _CALL.search(text, position)
        if match is None:
            break
        call = _read_call(text, match)
        if call is None:
            position = match.end()
            continue
        calls.append(call)
        position = max(call.end, match.end())
    return calls


def without_calls(text: str | None, calls: list[TextCall]) -> str:
    """``text`` with the spans of ``calls`` taken out: what the answer says besides them."""
    if not text:
        return ""
    parts: list[str] = []
    position = 0
    for call in calls:
        parts.append(text[position : call.start])
        position = call.end
    parts.append(text[position:])
    return "".join(parts)


def _read_call(text: str, match: re.Match[str]) -> TextCall | None:
    name = match.group(1)
    line_begins = text.rfind("\n", 0, match.start()) + 1
    starts_line = _LINE_START.fullmatch(text, line_begins, match.start()) is not None
    gap = _GAP.match(text, match.end())
    brace = gap.end() if gap is not None else match.end()
    if brace < len(text) and text[brace] == "{":
        value, end = _decode_object(text, brace)
        if value is not None:
            return TextCall(name, text[brace:end], match.start(), end)
        # Broken JSON goes to the registry as written, up to the end of its line, so the model
        # reads the same "arguments are not valid JSON" a native call would get.
        line_end = _line_end(text, brace)
        return TextCall(name, text[brace:line_end].rstrip().rstrip("`").rstrip(), match.start(), line_end)
    if not starts_line:
        # "you could CALL it a day": prose, unless it starts a line or carries arguments.
        return None
    # No JSON at all: the rest of the line (a name alone gets "indicator: Field required").
    line_end = _line_end(text, match.end())
    rest = text[match.end() : line_end].strip().strip("`*_").strip()
    if rest.startswith("(") and rest.endswith(")"):
        rest = rest[1:-1].strip()
    return TextCall(name, rest, match.start(), line_end)


def _line_end(text: str, position: int) -> int:
    end = text.find("\n", position)
    return len(text) if end < 0 else end


def _decode_object(text: str, start: int) -> tuple[Any, int]:
    try:
        value, end = _DECODER.raw_decode(text, start)
    except (ValueError, RecursionError):  # broken, a 5,000-digit integer, nesting past the stack
        return None, start
    return (value, end) if isinstance(value, dict) else (None, start)


def text_opening(messages: list[dict[str, Any]], schemas: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The opening messages of a cycle in the text protocol: the tools described in the system
    message (in place of ``auto``'s hint, if it is there)."""
    if not schemas:
        return [dict(message) for message in messages]
    plain = [
        {**message, "content": message["content"].replace(f"\n\n{CALL_HINT}", "")}
        if message.get("role") == "system" and isinstance(message.get("content"), str)
        else dict(message)
        for message in messages
    ]
    return with_system_addition(plain, text_tools_prompt(schemas, MAX_CALLS_PER_ANSWER))


def text_conversation(
    conversation: list[dict[str, Any]], schemas: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """A native conversation rewritten for the text protocol, so a cycle can switch mid-way.

    The system message gets the tools' description; an assistant message's tool calls become its
    CALL lines; the tool results that answered them become one user message (with the user message
    that followed them, if any: some chat templates refuse two user messages in a row).
    """
    converted: list[dict[str, Any]] = []
    calls: dict[str, tuple[str, str]] = {}
    pending: list[tuple[str, str, str]] = []

    def flush(closing: str) -> None:
        if pending:
            converted.append({"role": "user", "content": text_results_message(list(pending), closing)})
            pending.clear()

    for message in text_opening(conversation, schemas):
        role = message.get("role")
        if role == "assistant":
            flush(TEXT_CONTINUE_NOTE)
            lines = [message.get("content") or ""]
            for call in message.get("tool_calls") or []:
                function = call.get("function") or {}
                name, arguments = str(function.get("name")), str(function.get("arguments") or "")
                calls[str(call.get("id"))] = (name, arguments)
                lines.append(f"CALL {name} {arguments}".rstrip())
            converted.append({"role": "assistant", "content": "\n".join(line for line in lines if line)})
        elif role == "tool":
            name, arguments = calls.get(str(message.get("tool_call_id")), ("?", ""))
            pending.append((name, arguments, str(message.get("content") or "")))
        elif role == "user" and pending:
            content = message.get("content")
            flush(TEXT_FINAL_TURN_NOTE if content == FINAL_TURN_NOTE else str(content or ""))
        elif role == "user" and message.get("content") == FINAL_TURN_NOTE:
            converted.append({**message, "content": TEXT_FINAL_TURN_NOTE})
        else:
            converted.append(message)
    flush(TEXT_CONTINUE_NOTE)
    return converted
