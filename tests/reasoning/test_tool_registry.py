"""Identical tool calls within one cycle: answered once, whether they come in a row or together."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

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


def test_answers_handed_over_serve_another_registrys_calls_as_if_its_tool_ran() -> None:
    # A backtest's second process answers the calls a mode always makes; the cycle's registry takes
    # those answers under the same keys, whatever spelling of the arguments the mode uses.
    ahead_runs, cycle_runs = [0], [0]
    ahead = _registry(ahead_runs)

    async def prepare() -> None:
        await ahead.call("x", "count", '{"n": 4}')
        with pytest.raises(ExchangeUnavailable):
            await _failing(ahead).call("y", "count", '{"n": 5}')

    asyncio.run(prepare())
    answers = ahead.answers()
    assert [output.text for output in answers.values()] == ["n=4"]

    cycle = ToolRegistry(answers)
    cycle.register(Tool("count", "counts", _Args, _counting(cycle_runs)))

    async def calls() -> list[ToolResult]:
        return [
            await cycle.call("a", "count", '{"n":4}'),
            await cycle.call("b", "count", '{"n": 4}'),
            await cycle.call("c", "count", '{"n": 6}'),
        ]

    first, again, other = asyncio.run(calls())
    # Answered as if just run (not "cached"); the same call again is the cycle's own memory; a call
    # nobody answered runs the tool.
    assert (first.ok, first.content, first.cached, first.rows) == (True, "n=4", False, [{"n": 4}])
    assert (again.content, again.cached) == ("n=4", True)
    assert other.content == "n=6"
    assert cycle_runs[0] == 1
    assert ahead_runs[0] == 1


def _counting(runs: list[int]) -> Callable[[_Args], Awaitable[ToolOutput]]:
    async def run(args: _Args) -> ToolOutput:
        runs[0] += 1
        return ToolOutput(f"n={args.n}", [{"n": args.n}])

    return run


def _failing(registry: ToolRegistry) -> ToolRegistry:
    """The same registry with its tool failing from now on: a failed call is not an answer."""

    async def run(args: _Args) -> ToolOutput:
        raise ExchangeUnavailable("the exchange is down")

    registry.register(Tool("count", "counts", _Args, run))
    return registry
