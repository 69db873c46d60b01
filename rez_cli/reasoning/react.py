"""The ReAct loop: the model reasons, calls tools, and ends with text that should hold a decision.

Turn 1 is the system prompt and the context. Each turn the model may call tools (concurrently when
the endpoint allows parallel calls); the results go back and the next turn starts. The last allowed
turn is made without tools, so the model must answer instead of burning the budget.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rez_cli.reasoning.llm import LLMClient, TokenUsage
from rez_cli.reasoning.prompts import FINAL_TURN_NOTE
from rez_cli.reasoning.tools import ToolRegistry, ToolResult
from rez_cli.reasoning.usage import Meter


@dataclass(frozen=True)
class Turn:
    """One model call and the tool calls it made."""

    index: int
    content: str | None
    tools_offered: bool
    tool_results: list[ToolResult]
    usage: TokenUsage
    duration_ms: float
    reasoning: str | None = None


@dataclass
class ReactOutcome:
    final_text: str | None
    turns: list[Turn] = field(default_factory=list)
    messages: list[dict[str, Any]] = field(default_factory=list)
    exhausted: bool = False
    """True when the last turn still asked for tools instead of answering."""
    finish_reason: str | None = None
    """Why the model stopped writing its final text (``length``: it hit the output cap)."""


async def react_loop(
    llm: LLMClient,
    *,
    model: str,
    messages: list[dict[str, Any]],
    tools: ToolRegistry,
    max_turns: int,
    parallel_tool_calls: bool,
    meter: Meter,
    on_turn: Callable[[Turn], None] | None = None,
    final_response_format: dict[str, Any] | None = None,
) -> ReactOutcome:
    """Run the loop until the model answers or the turns run out.

    The last turn must answer: the tools stay listed (an endpoint may refuse a history of tool calls
    without them) but ``tool_choice`` is ``"none"``, and the answer is constrained by
    ``final_response_format`` (the decision's JSON schema), so even a small model ends in an object
    that parses. A tool call it makes anyway is not run.

    Raises:
        LLMError: a model call failed (after the SDK's retries).
        BudgetExceeded: the next call would pass ``--max-cost``.
        RezError: a tool hit an infrastructure failure.
    """
    conversation = list(messages)
    outcome = ReactOutcome(final_text=None, messages=conversation)
    schemas = tools.schemas()
    for index in range(1, max_turns + 1):
        last = index == max_turns
        if last and index > 1:
            conversation.append({"role": "user", "content": FINAL_TURN_NOTE})
        offered = schemas or None
        may_call = offered is not None and not last
        meter.check_budget(model, conversation, offered)
        started = time.perf_counter()
        with meter.stage("llm"):
            response = await llm.chat(
                model=model,
                messages=conversation,
                tools=offered,
                # Sent only to turn parallel calls off; endpoints that ignore it are handled below.
                parallel_tool_calls=None if parallel_tool_calls or not may_call else False,
                tool_choice="none" if last and offered is not None else None,
                response_format=final_response_format if last else None,
            )
        meter.record_call(model, response.usage)
        conversation.append(response.as_message())
        results: list[ToolResult] = []
        if response.tool_calls and may_call:
            with meter.stage("tools"):
                if parallel_tool_calls:
                    results = list(
                        await asyncio.gather(
                            *(tools.call(call.id, call.name, call.arguments) for call in response.tool_calls)
                        )
                    )
                else:
                    for call in response.tool_calls:
                        results.append(await tools.call(call.id, call.name, call.arguments))
            meter.tool_calls += len(results)
            conversation.extend(
                {"role": "tool", "tool_call_id": result.call_id, "content": result.content}
                for result in results
            )
        turn = Turn(
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
        if response.tool_calls and not may_call and not (response.content or "").strip():
            outcome.exhausted = True
        outcome.final_text = response.content
        outcome.finish_reason = response.finish_reason
        return outcome
    return outcome
