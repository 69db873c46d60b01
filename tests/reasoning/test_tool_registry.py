"""Identical tool calls within one cycle: answered once, whether they come in a row or together."""

from __future__ import annotations

import asyncio

import pytest
from pydantic import BaseModel

from rez_cli.errors import ExchangeUnavailable
from rez_cli.reasoning.tools import Tool, ToolOutput, ToolRegistry, ToolResult


class _Args(BaseModel):
    n: int


def _registry(run_count: list[int], *, pause: float = 0.0, fail: bool = False) -> ToolRegistry:
    async def run(args: _Args) -> ToolOutput:
        run_count[0] += 1
        if pause:
            await asyncio.sleep(pause)
        if fail:
            raise ExchangeUnavailable("the exchange is down")
        return ToolOutput(f"n={args.n}", [{"n": args.n}])

    registry = ToolRegistry()
    registry.register(Tool("count", "counts", _Args, run))
    return registry


def test_calls_made_together_run_the_tool_once_and_share_its_answer() -> None:
    runs = [0]
    registry = _registry(runs, pause=0.01)

    async def both() -> list[ToolResult]:
        return list(
            await asyncio.gather(
                registry.call("a", "count", '{"n": 1}'), registry.call("b", "count", '{"n":1}')
            )
        )

    first, second = asyncio.run(both())
    assert runs[0] == 1
    assert [first.content, second.content] == ["n=1", "n=1"]
    assert [first.cached, second.cached] == [False, True]
    assert first.rows == second.rows == [{"n": 1}]


def test_a_call_repeated_later_is_answered_from_memory() -> None:
    runs = [0]
    registry = _registry(runs)

    async def twice() -> tuple[ToolResult, ToolResult]:
        return await registry.call("a", "count", '{"n": 2}'), await registry.call("b", "count", '{"n": 2}')

    _, second = asyncio.run(twice())
    assert runs[0] == 1
    assert second.cached
    assert second.content == "n=2"
    assert [call.call_id for call in registry.calls] == ["a", "b"]


def test_an_infrastructure_failure_reaches_every_identical_call() -> None:
    runs = [0]
    registry = _registry(runs, fail=True)

    async def twice() -> None:
        for call_id in ("a", "b"):
            with pytest.raises(ExchangeUnavailable):
                await registry.call(call_id, "count", '{"n": 3}')

    asyncio.run(twice())
    assert runs[0] == 1


def test_a_call_cancelled_before_its_answer_still_answers_the_next_one() -> None:
    runs = [0]
    registry = _registry(runs, pause=0.05)

    async def cancel_then_ask() -> ToolResult:
        first = asyncio.ensure_future(registry.call("a", "count", '{"n": 4}'))
        await asyncio.sleep(0.01)
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        return await registry.call("b", "count", '{"n": 4}')

    again = asyncio.run(cancel_then_ask())
    assert again.ok
    assert again.content == "n=4"
    assert again.cached
