"""What a reasoning mode records while it runs: its turns, tool calls, parsing and repair, typed.

A mode writes a ``ReasoningTrace`` as it goes (the cycle's ``CycleServices.trace``); the cycle's
``Trace`` (``rez_cli.cycle.trace``) holds it with the context and the policy's verdicts. Nothing
here is turned into JSON until the journal stores it: ``to_json`` gives the shape the journal has
always stored (and ``rez traces export`` shows), so older journals and newer ones read the same.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Literal

from rez_cli.llm.client import TokenUsage
from rez_cli.reasoning.tools import ToolResult

ToolProtocol = Literal["native", "text"]


def tool_call_json(result: ToolResult) -> dict[str, Any]:
    """One tool call as the journal stores it."""
    return {
        "id": result.call_id,
        "name": result.name,
        "arguments": result.arguments,
        "ok": result.ok,
        "content": result.content,
        "rows": result.rows,
        "cached": result.cached,
        "duration_ms": round(result.duration_ms, 3),
    }


@dataclass(frozen=True)
class TurnRecord:
    """One model call and the tool calls it made: made once by the loop, shown live and journaled."""

    index: int
    content: str | None
    tools_offered: bool
    tool_results: list[ToolResult]
    usage: TokenUsage
    duration_ms: float
    reasoning: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "content": self.content,
            **({"reasoning": self.reasoning} if self.reasoning else {}),
            "tools_offered": self.tools_offered,
            "tool_calls": [tool_call_json(result) for result in self.tool_results],
            "prompt_tokens": self.usage.prompt_tokens,
            "completion_tokens": self.usage.completion_tokens,
            "duration_ms": round(self.duration_ms, 3),
        }


@dataclass(frozen=True)
class ProtocolSwitch:
    """Why a cycle went from the native tool protocol to the text one, and on which turn."""

    turn: int
    reason: Literal["tools_refused", "call_lines"]
    detail: str

    def to_json(self) -> dict[str, Any]:
        return {"turn": self.turn, "reason": self.reason, "detail": self.detail}


@dataclass(frozen=True)
class RememberedProtocol:
    """The text protocol a cycle started in because ``auto`` remembered a switch for the endpoint."""

    endpoint: str
    reason: str
    saved_ms: int

    def to_json(self) -> dict[str, Any]:
        return {"endpoint": self.endpoint, "reason": self.reason, "saved_ms": self.saved_ms}


@dataclass(frozen=True)
class ParseRecord:
    """How the model's final text was read."""

    stage: str | None
    error: str | None
    detail: str | None
    finish_reason: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "error": self.error,
            "detail": self.detail,
            "finish_reason": self.finish_reason,
        }


@dataclass(frozen=True)
class RepairRecord:
    """The resilience model's attempt: its answer, or the error of a call that got none."""

    model: str
    error: str | None
    # A call that failed has only a detail; one that answered has its text, stage and finish reason.
    detail: str | None = None
    answered: bool = False
    raw_text: str | None = None
    stage: str | None = None
    finish_reason: str | None = None
    invented: tuple[str, ...] = ()

    def with_invented(self, invented: list[str]) -> RepairRecord:
        return replace(self, invented=tuple(invented))

    def to_json(self) -> dict[str, Any]:
        if not self.answered:
            return {"model": self.model, "error": self.error, "detail": self.detail}
        record: dict[str, Any] = {
            "model": self.model,
            "raw_text": self.raw_text,
            "stage": self.stage,
            "error": self.error,
            "finish_reason": self.finish_reason,
        }
        if self.invented:
            record["invented"] = list(self.invented)
        return record


@dataclass
class ReasoningTrace:
    """What a mode did, written while it runs; final once the mode returns.

    A field left None was never reached (``raw_text`` aside: ``answered`` says whether the loop
    ended with an answer to record, None included) and is left out of the JSON.
    """

    mode: str | None = None
    messages: list[dict[str, Any]] | None = None
    tool_protocol: ToolProtocol | None = None
    tool_protocol_remembered: RememberedProtocol | None = None
    turns: list[TurnRecord] | None = None
    tool_protocol_switch: ProtocolSwitch | None = None
    answered: bool = False
    raw_text: str | None = None
    parse: ParseRecord | None = None
    repair: RepairRecord | None = None
    tool_calls: list[ToolResult] | None = None
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        record: dict[str, Any] = {}
        if self.mode is not None:
            record["mode"] = self.mode
        if self.messages is not None:
            record["messages"] = self.messages
        if self.tool_protocol is not None:
            record["tool_protocol"] = self.tool_protocol
        if self.tool_protocol_remembered is not None:
            record["tool_protocol_remembered"] = self.tool_protocol_remembered.to_json()
        if self.turns is not None:
            record["turns"] = [turn.to_json() for turn in self.turns]
        if self.tool_protocol_switch is not None:
            record["tool_protocol_switch"] = self.tool_protocol_switch.to_json()
        if self.answered:
            record["raw_text"] = self.raw_text
        if self.parse is not None:
            record["parse"] = self.parse.to_json()
        if self.repair is not None:
            record["repair"] = self.repair.to_json()
        if self.tool_calls is not None:
            record["tool_calls"] = [tool_call_json(result) for result in self.tool_calls]
        if self.notes:
            record["notes"] = list(self.notes)
        return record
