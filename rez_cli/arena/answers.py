"""A contestant's model client: its own answer cache, what each answer took, and the arena's budget.

``ContestantLLM`` answers a request it has seen from the contestant's ``ResponseCache`` (one file per
contestant, model, prompt, profile and seed under ``<cache dir>/arena/``), so a rerun of the arena
asks no model anything. Beside it, ``<file>.meta.jsonl`` keeps what each answer took when it was
asked: its latency and its tokens. The leaderboard's latency and cost per decision are the answers'
own, so a replay from the cache ranks the contestants exactly as the run that paid for them did;
what this run actually spent is counted apart (``spent_usd``, ``calls``).

``SharedBudget`` is ``--max-cost`` across every contestant: a miss first reserves its estimate (the
meter's), and is refused with ``BudgetExceeded`` when what is spent plus what is reserved could pass
the limit. Once one call is refused, every contestant's next miss is too, so all of them stop before
the budget is passed, each with the cycles it finished.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rez_cli.clock import now_ms
from rez_cli.config import paths
from rez_cli.config.settings import ModelPrice
from rez_cli.llm.cache import ResponseCache, request_key
from rez_cli.llm.client import ChatResponse, LLMClient, TokenUsage
from rez_cli.llm.meter import BudgetExceeded, Meter


def cache_path(name: str, fingerprint: str) -> Path:
    """``<cache dir>/arena/<name>-<fingerprint>.jsonl``."""
    return paths.cache_dir() / "arena" / f"{name}-{fingerprint}.jsonl"


class SharedBudget:
    """What every contestant's calls may cost together; None for no limit."""

    def __init__(self, max_cost_usd: float | None, prices: Mapping[str, ModelPrice]) -> None:
        self.max_cost_usd = max_cost_usd
        self.meter = Meter(prices=dict(prices))
        self.reserved_usd = 0.0
        self.exhausted = False

    @property
    def spent_usd(self) -> float:
        return self.meter.cost_usd

    def reserve(
        self, model: str, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None
    ) -> float:
        """Hold the estimate of the next call; raises BudgetExceeded when it could pass the limit."""
        if self.max_cost_usd is None:
            return 0.0
        estimate = self.meter.estimate(model, messages, tools)
        if self.exhausted or self.spent_usd + self.reserved_usd + estimate > self.max_cost_usd:
            self.exhausted = True
            raise BudgetExceeded(
                f"the next call to {model} (about ${estimate:.4f}) could take the arena past "
                f"${self.max_cost_usd:g} (spent ${self.spent_usd:.4f})"
            )
        self.reserved_usd += estimate
        return estimate

    def settle(self, reserved: float, model: str, usage: TokenUsage | None) -> None:
        """Release a reservation and count what the call cost (nothing when it failed)."""
        self.reserved_usd = max(0.0, self.reserved_usd - reserved)
        if usage is not None:
            self.meter.record_call(model, usage)


class AnswerStore:
    """The contestant's cached answers and, beside them, what each took when it was asked."""

    def __init__(self, path: Path) -> None:
        self.answers = ResponseCache(path)
        self.meta_path = path.with_name(path.stem + ".meta.jsonl")
        self.meta: dict[str, tuple[float, int, int]] = {}
        try:
            with self.meta_path.open(encoding="utf-8") as handle:
                for line in handle:
                    self._load(line)
        except OSError:
            pass  # no meta yet (or unreadable): answers without it count as instant and free

    def _load(self, line: str) -> None:
        try:
            record = json.loads(line)
            key, latency, prompt, completion = (
                record["key"],
                float(record["latency_s"]),
                int(record["prompt_tokens"]),
                int(record["completion_tokens"]),
            )
        except (ValueError, KeyError, TypeError, RecursionError):
            return  # a line cut short by a crash
        if isinstance(key, str) and 0 <= latency < 1e6 and prompt >= 0 and completion >= 0:
            self.meta[key] = (latency, prompt, completion)

    def put(self, key: str, response: ChatResponse, latency_s: float) -> None:
        self.answers.put(key, response)
        usage = response.usage
        self.meta[key] = (latency_s, usage.prompt_tokens, usage.completion_tokens)
        line = json.dumps(
            {
                "key": key,
                "latency_s": round(latency_s, 6),
                "prompt_tokens": usage.prompt_tokens,
                "completion_tokens": usage.completion_tokens,
                "saved_ms": now_ms(),
            }
        )
        fd = paths.open_private(self.meta_path, os.O_WRONLY | os.O_APPEND)
        try:
            os.write(fd, (line + "\n").encode())
        finally:
            os.close(fd)


class ContestantLLM:
    """An ``LLMClient`` for one contestant: cached answers first, then the model within the budget.

    ``take_cycle()`` returns (and resets) the latency of the answers since the last call: the walk
    calls it once a cycle.
    """

    def __init__(
        self, inner: LLMClient, store: AnswerStore, budget: SharedBudget, prices: Mapping[str, ModelPrice]
    ) -> None:
        self.inner = inner
        self.store = store
        self.budget = budget
        self.answer_meter = Meter(prices=dict(prices))
        self.spent_meter = Meter(prices=dict(prices))
        self.hits = 0
        self.misses = 0
        self._cycle_latency_s = 0.0
        self._cycle_calls = 0

    @property
    def endpoint(self) -> str | None:
        endpoint = getattr(self.inner, "endpoint", None)
        return endpoint if isinstance(endpoint, str) else None

    def take_cycle(self) -> float | None:
        """The model time of the cycle just ended (None when it asked no model)."""
        latency = self._cycle_latency_s if self._cycle_calls else None
        self._cycle_latency_s, self._cycle_calls = 0.0, 0
        return latency

    async def chat(
        self,
        *,
        model: str,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None = None,
        parallel_tool_calls: bool | None = None,
        response_format: dict[str, Any] | None = None,
        tool_choice: str | None = None,
        temperature: float | None = None,
    ) -> ChatResponse:
        """See ``LLMClient.chat``; raises BudgetExceeded instead of a call that could pass the budget."""
        key = request_key(
            model=model,
            messages=messages,
            tools=tools,
            response_format=response_format,
            parallel_tool_calls=parallel_tool_calls,
            tool_choice=tool_choice,
            temperature=temperature,
        )
        cached = self.store.answers.get(key)
        if cached is not None:
            self.hits += 1
            latency, prompt, completion = self.store.meta.get(key, (0.0, 0, 0))
            self._count(model, latency, TokenUsage(prompt_tokens=prompt, completion_tokens=completion))
            return cached
        reserved = self.budget.reserve(model, messages, tools)
        started = time.perf_counter()
        try:
            response = await self.inner.chat(
                model=model,
                messages=messages,
                tools=tools,
                parallel_tool_calls=parallel_tool_calls,
                response_format=response_format,
                tool_choice=tool_choice,
                temperature=temperature,
            )
        except BaseException:
            self.budget.settle(reserved, model, None)
            raise
        # Rounded as stored, so a replay counts exactly what the run that asked counted.
        latency = round(time.perf_counter() - started, 6)
        self.budget.settle(reserved, model, response.usage)
        self.misses += 1
        self.spent_meter.record_call(model, response.usage)
        self.store.put(key, response, latency)
        self._count(model, latency, response.usage)
        return response

    def _count(self, model: str, latency_s: float, usage: TokenUsage) -> None:
        self._cycle_latency_s += latency_s
        self._cycle_calls += 1
        self.answer_meter.record_call(model, usage)

    async def close(self) -> None:
        await self.inner.close()
