"""The tools a reasoning mode may call, and ``fetch_indicator``, the one Rez ships.

Tools are registered by name with a pydantic model for their arguments (the JSON schema sent to the
model is generated from it) and an async function. A call the model got wrong — unknown tool, JSON
that does not parse, arguments the model can fix — comes back as an ``Error: ...`` result the model
can correct; failures of the infrastructure (the exchange is down) are raised and end the cycle.
Identical calls within one cycle are answered from memory.
"""

from __future__ import annotations

import asyncio
import functools
import json
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from rez_cli import indicators
from rez_cli.errors import DataNotFound, TimeframeNotOffered, UsageError
from rez_cli.market.view import MarketView
from rez_cli.timeframes import timeframe_ms

MAX_LOOKBACK = 50
# Tool errors the model can act on; anything else is the infrastructure failing.
CORRECTABLE = (UsageError, TimeframeNotOffered, DataNotFound)


@dataclass(frozen=True)
class ToolResult:
    """What a tool call gave back to the model."""

    call_id: str
    name: str
    arguments: str
    ok: bool
    content: str
    duration_ms: float
    rows: list[dict[str, Any]] = field(default_factory=list)
    cached: bool = False


ToolFunction = Callable[[Any], Awaitable["ToolOutput"]]


@dataclass(frozen=True)
class ToolOutput:
    text: str
    rows: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    arguments: type[BaseModel]
    run: ToolFunction

    def schema(self) -> dict[str, Any]:
        """The function-tool schema in Chat Completions shape."""
        parameters = self.arguments.model_json_schema()
        parameters.pop("title", None)
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": parameters},
        }


ToolKey = tuple[str, str]
"""A call as the registry knows it: the tool's name and its arguments' JSON as parsed."""


class ToolRegistry:
    """The tools of one cycle; also remembers the calls already answered.

    ``answered``: outputs worked out before the cycle by the same tools on the same market (a
    backtest prepares them ahead of its walk, ``backtest.ahead``), by ``answers``'s keys. A call
    they hold is answered from them as if its tool had just run.
    """

    def __init__(self, answered: Mapping[ToolKey, ToolOutput] | None = None) -> None:
        self._tools: dict[str, Tool] = {}
        self._memo: dict[ToolKey, asyncio.Future[ToolOutput]] = {}
        self._answered = answered or {}
        self.calls: list[ToolResult] = []

    def register(self, tool: Tool) -> None:
        self._tools[tool.name] = tool

    def schemas(self) -> list[dict[str, Any]]:
        return [tool.schema() for tool in self._tools.values()]

    @property
    def names(self) -> list[str]:
        return list(self._tools)

    async def call(self, call_id: str, name: str, arguments: str) -> ToolResult:
        """Run one call; errors the model can fix come back as an ``Error: ...`` result.

        Raises:
            RezError: the infrastructure failed (e.g. the exchange is unreachable).
        """
        started = time.perf_counter()

        def result(ok: bool, output: ToolOutput, cached: bool = False) -> ToolResult:
            item = ToolResult(
                call_id,
                name,
                arguments,
                ok,
                output.text,
                (time.perf_counter() - started) * 1000,
                output.rows,
                cached,
            )
            self.calls.append(item)
            return item

        tool = self._tools.get(name)
        if tool is None:
            return result(
                False, ToolOutput(f"Error: unknown tool {name!r}; available: {', '.join(self._tools)}")
            )
        known = _parsed(tool.arguments, arguments)
        if known is None:
            try:
                raw = json.loads(arguments or "{}")
                parsed = tool.arguments.model_validate(raw)
            except json.JSONDecodeError as error:
                return result(False, ToolOutput(f"Error: arguments are not valid JSON ({error.msg})"))
            except ValidationError as error:  # before ValueError, which pydantic's error subclasses
                first = error.errors()[0]
                where = ".".join(str(part) for part in first["loc"]) or "arguments"
                return result(False, ToolOutput(f"Error: {where}: {first['msg']}"))
            except (ValueError, RecursionError):  # a 5,000-digit integer, nesting deeper than Python's stack
                return result(
                    False, ToolOutput("Error: arguments are not usable JSON (too large or too deep)")
                )
            known = (parsed, parsed.model_dump_json())
            _remember_parsed(tool.arguments, arguments, known)
        parsed = known[0]
        key = (name, known[1])
        pending = self._memo.get(key)
        cached = pending is not None
        try:
            if pending is None:
                ready = self._answered.get(key)
                output = await self._first(
                    key, (lambda: tool.run(parsed)) if ready is None else _ready(ready)
                )
            else:
                # Shielded: a caller cancelled while waiting must not cancel the answer others share.
                output = await asyncio.shield(pending)
        except CORRECTABLE as error:
            return result(False, ToolOutput(f"Error: {error.one_line()}"), cached)
        return result(True, output, cached)

    def answers(self) -> dict[ToolKey, ToolOutput]:
        """The outputs of the calls that succeeded so far, by key (for another registry's ``answered``)."""
        return {
            key: outcome.result()
            for key, outcome in self._memo.items()
            if outcome.done() and not outcome.cancelled() and outcome.exception() is None
        }

    async def _first(self, key: ToolKey, start: Callable[[], Awaitable[ToolOutput]]) -> ToolOutput:
        """The first call of its kind runs the tool in the caller's own task and leaves the outcome for
        identical calls, those already waiting included.

        No task of its own: a rules cycle makes three calls that never wait on anything, and a task
        each cost more than the lookups themselves. The caller's time stays bounded: the reasoning
        manager cancels the whole mode once its budget is spent.
        """
        outcome: asyncio.Future[ToolOutput] = asyncio.get_running_loop().create_future()
        self._memo[key] = outcome
        try:
            output = await start()
        except asyncio.CancelledError:
            # The answer still comes, for those waiting and for later identical calls, as it did when
            # every call ran in a task of its own that outlived its caller.
            _settle_from(outcome, asyncio.ensure_future(start()))
            raise
        except Exception as error:
            outcome.set_exception(error)
            outcome.exception()  # retrieved: a failure nobody else asks for is no unhandled one
            raise
        except BaseException:  # interrupted: nothing to remember
            del self._memo[key]
            outcome.cancel()
            raise
        outcome.set_result(output)
        return output


def _ready(output: ToolOutput) -> Callable[[], Awaitable[ToolOutput]]:
    async def answer() -> ToolOutput:
        return output

    return answer


# Arguments as parsed, by the text a call gave them in: a backtest's rules mode makes the same three
# calls every cycle, and a model repeats its own. Only models that are frozen are kept, since every
# call with that text is then handed the same one.
_PARSED: dict[tuple[type[BaseModel], str], tuple[BaseModel, str]] = {}
_PARSED_KEPT = 256


def _parsed(model: type[BaseModel], arguments: str) -> tuple[BaseModel, str] | None:
    return _PARSED.get((model, arguments))


def _remember_parsed(model: type[BaseModel], arguments: str, known: tuple[BaseModel, str]) -> None:
    if not model.model_config.get("frozen") or len(arguments) > 1024:
        return
    if len(_PARSED) >= _PARSED_KEPT:  # the texts come from a model: keep this bounded
        _PARSED.clear()
    _PARSED[(model, arguments)] = known


def _settle_from(outcome: asyncio.Future[ToolOutput], run: asyncio.Future[ToolOutput]) -> None:
    """Give ``outcome`` the result, failure or cancellation of ``run`` once it ends."""

    def settle(done: asyncio.Future[ToolOutput]) -> None:
        if outcome.done():
            return
        if done.cancelled():
            outcome.cancel()
        elif (error := done.exception()) is not None:
            outcome.set_exception(error)
            outcome.exception()
        else:
            outcome.set_result(done.result())

    run.add_done_callback(settle)


class FetchIndicatorArgs(BaseModel):
    """Arguments of ``fetch_indicator``."""

    # The docstring above is the schema's description the model reads. Frozen: calls with the same
    # text share one (see _PARSED), and nothing changes its params.
    model_config = ConfigDict(extra="forbid", frozen=True)

    indicator: Annotated[str, Field(description="Indicator name, one of the allowed list.")]
    timeframe: Annotated[str, Field(description="Candle interval, e.g. 5m, 15m, 1h, 4h, 1d.")]
    params: Annotated[
        dict[str, int | float],
        Field(
            default_factory=dict, description='Indicator parameters, e.g. {"length": 50}; omit for defaults.'
        ),
    ]
    lookback: Annotated[
        int, Field(ge=1, le=MAX_LOOKBACK, description="How many of the most recent values to return.")
    ] = 10


@functools.lru_cache(maxsize=256)
def _settings_text(params: BaseModel) -> str:
    """An indicator's parameters as a call's answer names them; its parameter models are frozen, and
    a backtest asks for the same few every cycle."""
    return json.dumps(params.model_dump(), separators=(",", ":"))


# The indicator each arguments object names, by its identity (the object is held with it): calls
# with the same text share their arguments (see _PARSED), so each is validated once.
_INDICATORS: dict[int, tuple[FetchIndicatorArgs, str, BaseModel, str]] = {}


def _indicator_of(args: FetchIndicatorArgs) -> tuple[str, BaseModel, str]:
    """The indicator's name, its validated parameters, and those as a call's answer names them.

    Raises:
        IndicatorError: an unknown indicator or parameters it does not take (the model can fix both).
    """
    found = _INDICATORS.get(id(args))
    if found is None or found[0] is not args:
        name = args.indicator.strip().lower()
        params = indicators.validate_params(name, args.params)
        if len(_INDICATORS) >= _PARSED_KEPT:
            _INDICATORS.clear()
        found = (args, name, params, _settings_text(params))
        _INDICATORS[id(args)] = found
    return found[1], found[2], found[3]


def fetch_indicator_tool(view: MarketView) -> Tool:
    """``fetch_indicator`` over the cycle's market view (the same candles, cut at the same moment)."""

    async def run(args: FetchIndicatorArgs) -> ToolOutput:
        name, params, settings = _indicator_of(args)
        step_ms = timeframe_ms(args.timeframe)
        frame = await view.frame(args.timeframe)
        memo = view.memo
        if not memo.known(frame, args.timeframe, name, params):
            # pandas-ta can take a while: off the event loop. Often it is known already: the context
            # computes EMA, RSI and ATR, and a backtest's history remembers earlier cycles' windows.
            await asyncio.to_thread(memo.values, frame, args.timeframe, name, params)

        def answer() -> tuple[str, list[dict[str, Any]]]:
            reference = float(memo.column(frame, "close")[-1])
            text, rows = memo.summary_table(
                frame, args.timeframe, name, params, args.lookback, reference, step_ms
            )
            return f"{name} {args.timeframe} {settings}\n{text}", rows

        # The same window gives the same answer (a 4h window serves four 1h cycles of a backtest).
        text, rows = memo.derived(
            frame, args.timeframe, ("fetch_indicator", name, settings, args.lookback), answer
        )
        # The rows go into this call's result and the trace: each call gets its own.
        return ToolOutput(text, [dict(row) for row in rows])

    allowed = ", ".join(sorted(indicators.INDICATORS))
    return Tool(
        name="fetch_indicator",
        description=(
            "Compute a technical indicator on closed candles of this symbol and return its last values. "
            f"Allowed indicators: {allowed}."
        ),
        arguments=FetchIndicatorArgs,
        run=run,
    )
