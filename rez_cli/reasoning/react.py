"""The ReAct loop: the model reasons, calls tools, and ends with text that should hold a decision.

Turn 1 is the system prompt and the context. Each turn the model may call tools (concurrently when
the endpoint allows parallel calls); the results go back and the next turn starts. The last allowed
turn is made without tools, so the model must answer instead of burning the budget.

Tools reach the model by one of two protocols, with the same turns, budget and results:

- native: the request lists them in ``tools``, the model answers with ``tool_calls``, the results go
  back as ``tool`` messages;
- text (``text_protocol.py``): the system prompt describes them, the model writes ``CALL`` lines,
  the results go back in the next user message.

With ``auto_switch`` a cycle that starts native goes on in text when the endpoint refuses the tools
(the refused turn is asked again, and costs no turn) or when the model writes ``CALL`` lines instead
of calling them (those lines are run as that turn's calls).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from rez_cli.llm.client import LLMClient, LLMToolsRefused
from rez_cli.llm.meter import Meter
from rez_cli.reasoning.prompts import (
    FINAL_TURN_NOTE,
    TEXT_FINAL_TURN_NOTE,
    rounds_left_note,
    text_results_message,
)
from rez_cli.reasoning.text_protocol import (
    MAX_CALLS_PER_ANSWER,
    TextCall,
    parse_calls,
    text_conversation,
    without_calls,
)
from rez_cli.reasoning.tools import ToolRegistry, ToolResult
from rez_cli.reasoning.trace import ProtocolSwitch, ToolProtocol, TurnRecord


@dataclass
class ReactOutcome:
    final_text: str | None
    turns: list[TurnRecord] = field(default_factory=list)
    messages: list[dict[str, Any]] = field(default_factory=list)
    exhausted: bool = False
    """True when the last turn still asked for tools instead of answering."""
    finish_reason: str | None = None
    """Why the model stopped writing its final text (``length``: it hit the output cap)."""
    protocol: ToolProtocol = "native"
    """The tool protocol the cycle ended in."""
    switch: ProtocolSwitch | None = None


async def react_loop(
    llm: LLMClient,
    *,
    model: str,
    messages: list[dict[str, Any]],
    tools: ToolRegistry,
    max_turns: int,
    parallel_tool_calls: bool,
    meter: Meter,
    on_turn: Callable[[TurnRecord], None] | None = None,
    final_response_format: dict[str, Any] | None = None,
    protocol: ToolProtocol = "native",
    auto_switch: bool = False,
    on_switch: Callable[[ProtocolSwitch], None] | None = None,
    stands: Callable[[str | None, str | None], bool] | None = None,
) -> ReactOutcome:
    """Run the loop until the model answers or the turns run out.

    The last turn must answer: the tools stay listed (an endpoint may refuse a history of tool calls
    without them) but ``tool_choice`` is ``"none"``, and the answer is constrained by
    ``final_response_format`` (the decision's JSON schema), so even a small model ends in an object
    that parses. A tool call it makes anyway is not run. In the text protocol the last turn is told
    that tools are no longer available, and CALL lines it writes anyway are not run.

    Args:
        messages: the opening messages, already in ``protocol``'s form (``text_opening`` for text).
        protocol: the tool protocol to start with.
        auto_switch: go on in the text protocol when a native cycle meets a refusal of its tools
            or CALL lines in the model's prose (``ProtocolSwitch``).
        on_switch: told of that switch as it happens (to remember it even if the cycle then fails).
        stands: whether an answer written before the last turn (its text, its finish reason) can
            stand as the decision; one that cannot goes to the constrained last turn at once, so a
            small model that answers in prose gets the schema instead of a repair by another call.

    Raises:
        LLMError: a model call failed (after the SDK's retries); ``LLMToolsRefused`` too, unless
            ``auto_switch`` handled it.
        BudgetExceeded: the next call would pass ``--max-cost``.
        RezError: a tool hit an infrastructure failure.
    """
    conversation = list(messages)
    outcome = ReactOutcome(final_text=None, messages=conversation, protocol=protocol)
    schemas = tools.schemas()

    def switch(index: int, reason: Literal["tools_refused", "call_lines"], detail: str) -> None:
        conversation[:] = text_conversation(conversation, schemas)
        outcome.protocol = "text"
        outcome.switch = ProtocolSwitch(index, reason, detail)
        if on_switch is not None:
            on_switch(outcome.switch)

    force_last = False
    for index in range(1, max_turns + 1):
        last = index == max_turns or force_last
        if last and index > 1 and outcome.protocol == "native":
            # In the text protocol this note ends the previous turn's results message instead.
            conversation.append({"role": "user", "content": FINAL_TURN_NOTE})
        may_call = bool(schemas) and not last
        started = time.perf_counter()
        while True:
            offered = (schemas or None) if outcome.protocol == "native" else None
            meter.check_budget(model, conversation, offered)
            try:
                with meter.stage("llm"):
                    response = await llm.chat(
                        model=model,
                        messages=conversation,
                        tools=offered,
                        # Sent only to turn parallel calls off; endpoints that ignore it are handled below.
                        parallel_tool_calls=(
                            None if parallel_tool_calls or not may_call or offered is None else False
                        ),
                        tool_choice="none" if last and offered is not None else None,
                        response_format=final_response_format if last else None,
                    )
            except LLMToolsRefused as refusal:
                if not auto_switch or offered is None:
                    raise
                # The request never reached the model: the same turn is asked again, in text.
                switch(index, "tools_refused", refusal.message)
                continue
            break
        meter.record_call(model, response.usage)
        text_calls: list[TextCall] = []
        if outcome.protocol == "native":
            conversation.append(response.as_message())
            if may_call and auto_switch and not response.tool_calls:
                text_calls = parse_calls(response.content, limit=MAX_CALLS_PER_ANSWER + 1)
                if text_calls:
                    # Tools offered, none called, CALL lines written: the model cannot see the tools
                    # (llama.cpp drops them from a chat template without tool support).
                    switch(index, "call_lines", "the model wrote CALL lines instead of calling the tools")
        else:
            # Only the text: tool calls in the history would need the tools this protocol never sends.
            conversation.append({"role": "assistant", "content": response.content or ""})
            text_calls = parse_calls(response.content, limit=MAX_CALLS_PER_ANSWER + 1)

        calls: list[tuple[str, str, str]] = []
        if may_call and outcome.protocol == "native":
            calls = [(call.id, call.name, call.arguments) for call in response.tool_calls]
        elif may_call:
            calls = [
                (f"text_{index}_{number}", call.name, call.arguments)
                for number, call in enumerate(text_calls[:MAX_CALLS_PER_ANSWER], 1)
            ]
        results: list[ToolResult] = []
        if calls:
            with meter.stage("tools"):
                results = await _run_calls(tools, calls, parallel=parallel_tool_calls)
            meter.tool_calls += len(results)
            # The turns after this one that may still call tools (the last one may not).
            rounds_left = max_turns - 1 - index
            if outcome.protocol == "native":
                conversation.extend(
                    {"role": "tool", "tool_call_id": result.call_id, "content": result.content}
                    for result in results
                )
                if rounds_left > 0:
                    # When none are left, the last turn's own note says so.
                    conversation.append({"role": "user", "content": rounds_left_note(rounds_left)})
            else:
                closing = (
                    TEXT_FINAL_TURN_NOTE if rounds_left <= 0 else rounds_left_note(rounds_left, text=True)
                )
                if len(text_calls) > MAX_CALLS_PER_ANSWER:
                    closing = f"Only the first {MAX_CALLS_PER_ANSWER} CALL lines were run.\n{closing}"
                conversation.append(
                    {
                        "role": "user",
                        "content": text_results_message(
                            [(result.name, result.arguments, result.content) for result in results], closing
                        ),
                    }
                )
        turn = TurnRecord(
            index,
            response.content,
            may_call,
            results,
            response.usage,
            (time.perf_counter() - started) * 1000,
            response.reasoning,
        )
        outcome.turns.append(turn)
        if on_turn is not None:
            on_turn(turn)
        if results:
            continue
        content = response.content or ""
        if outcome.protocol == "native":
            outcome.exhausted = bool(response.tool_calls) and not may_call and not content.strip()
        else:
            outcome.exhausted = last and bool(text_calls) and not without_calls(content, text_calls).strip()
        if (
            not last
            and final_response_format is not None
            and stands is not None
            and not stands(response.content, response.finish_reason)
        ):
            force_last = True
            if outcome.protocol == "text":
                conversation.append({"role": "user", "content": TEXT_FINAL_TURN_NOTE})
            continue
        outcome.final_text = response.content
        outcome.finish_reason = response.finish_reason
        return outcome
    return outcome


async def _run_calls(
    tools: ToolRegistry, calls: list[tuple[str, str, str]], *, parallel: bool
) -> list[ToolResult]:
    """Run ``(id, name, arguments)`` calls through the registry, concurrently when ``parallel``."""
    if parallel:
        return list(await asyncio.gather(*(tools.call(*call) for call in calls)))
    return [await tools.call(*call) for call in calls]
