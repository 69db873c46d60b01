"""Model answers kept on disk by a hash of the request, and the backtest's spending limit.

A backtest asks the model the same questions every time it is run on the same span: the same
context, the same tool results, the same memory. ``CachingLLM`` wraps any ``LLMClient`` and answers
a request it has seen from ``ResponseCache`` without calling the model, so a second run costs
nothing and decides exactly as the first did. The key is a SHA-256 of the canonical JSON of
everything that shapes the answer: model, messages, tools, response format (and whether parallel
tool calls were allowed). Only answers are stored; a failed call is asked again next time.

The file is JSON lines (one ``{"key", "response", "saved_ms"}`` per answer) under
``<cache dir>/llm/responses.jsonl``: appended with one ``write`` per line, so two runs can share it,
and a line cut short by a crash is skipped when read. Like the journal, it is 0600 and holds no
registered secret (``rez_cli.redact``).

The cache is also where spending is known for sure: only a miss costs money. ``max_cost_usd`` is
checked before each miss with the meter's estimate of the call (its prompt as sent and a typical
answer), and ``BudgetExceeded`` is raised instead of a call that could pass it; the reasoning mode
turns that into a hold with ``error`` ``budget_exceeded``, which ends the backtest.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rez_cli.clock import now_ms
from rez_cli.config import paths
from rez_cli.config.settings import ModelPrice
from rez_cli.llm.client import ChatResponse, LLMClient, TokenUsage, ToolCall
from rez_cli.llm.meter import BudgetExceeded, Meter
from rez_cli.redact import active

CACHE_FILENAME = "responses.jsonl"


def default_cache_path() -> Path:
    """``<cache dir>/llm/responses.jsonl``; ``REZ_HOME`` moves it with the rest of Rez's state."""
    return paths.cache_dir() / "llm" / CACHE_FILENAME


def request_key(
    *,
    model: str,
    messages: list[dict[str, Any]],
    tools: list[dict[str, Any]] | None,
    response_format: dict[str, Any] | None,
    parallel_tool_calls: bool | None,
    tool_choice: str | None = None,
    temperature: float | None = None,
) -> str:
    """The SHA-256 of a request's canonical JSON (sorted keys, no spaces, UTF-8).

    ``tool_choice`` and ``temperature`` enter the key only when set, so the answers cached before
    they existed are still found.
    """
    payload: dict[str, Any] = {
        "model": model,
        "messages": messages,
        "tools": tools or None,
        "response_format": response_format,
        "parallel_tool_calls": parallel_tool_calls,
    }
    if tool_choice is not None:
        payload["tool_choice"] = tool_choice
    if temperature is not None:
        payload["temperature"] = temperature
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()


def _response_to_json(response: ChatResponse) -> dict[str, Any]:
    return {
        "content": response.content,
        "tool_calls": [{"id": c.id, "name": c.name, "arguments": c.arguments} for c in response.tool_calls],
        "usage": [response.usage.prompt_tokens, response.usage.completion_tokens],
        "model": response.model,
        "finish_reason": response.finish_reason,
        "reasoning": response.reasoning,
    }


def _response_from_json(data: Mapping[str, Any]) -> ChatResponse:
    content = data.get("content")
    calls = data.get("tool_calls") or []
    return ChatResponse(
        content=content if isinstance(content, str) else None,
        tool_calls=[ToolCall(str(c["id"]), str(c["name"]), str(c["arguments"])) for c in calls],
        # A replayed answer cost nothing: its usage is zero, so per-cycle costs say what was spent.
        usage=TokenUsage(),
        model=str(data.get("model") or ""),
        finish_reason=data.get("finish_reason") if isinstance(data.get("finish_reason"), str) else None,
        reasoning=data.get("reasoning") if isinstance(data.get("reasoning"), str) else None,
    )


class ResponseCache:
    """Answers by request key, read once from a JSON-lines file and appended to as they arrive.

    Args:
        path: the file; created (with its directory) on the first answer stored.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._entries: dict[str, dict[str, Any]] = {}
        try:
            with path.open(encoding="utf-8") as handle:
                for line in handle:
                    self._load_line(line)
        except FileNotFoundError:
            pass
        except OSError:
            # An unreadable cache is an empty one: answers are asked again, never wrongly replayed.
            self._entries.clear()

    def _load_line(self, line: str) -> None:
        try:
            record = json.loads(line)
            key, response = record["key"], record["response"]
        except (ValueError, KeyError, TypeError, RecursionError):
            return  # a line cut short by a crash, or not ours
        if isinstance(key, str) and isinstance(response, dict):
            self._entries[key] = response

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str) -> ChatResponse | None:
        """The stored answer to the request with this key, or None."""
        data = self._entries.get(key)
        if data is None:
            return None
        try:
            return _response_from_json(data)
        except (KeyError, TypeError):
            return None

    def put(self, key: str, response: ChatResponse) -> None:
        """Store an answer: in memory at once, on disk as one appended line."""
        data = _response_to_json(response)
        self._entries[key] = data
        line = json.dumps({"key": key, "response": data, "saved_ms": now_ms()}) + "\n"
        # A model may echo a key: the disk copy is struck like the journal (the answer stays valid JSON).
        line = active().text(line)
        paths.private_dir(self.path.parent)
        # One write() on an O_APPEND descriptor: concurrent runs never interleave inside a line.
        fd = paths.open_private(self.path, os.O_WRONLY | os.O_APPEND)
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)


class CachingLLM:
    """An ``LLMClient`` that replays cached answers and guards a budget for the calls it makes.

    Args:
        inner: the model client that answers misses.
        cache: where answers are kept; None to call the model every time (the budget still holds).
        prices: US$ per million tokens by model (``[llm.prices]``), for costs and estimates.
        max_cost_usd: what the calls made through this client may cost in all; None for no limit.
    """

    def __init__(
        self,
        inner: LLMClient,
        cache: ResponseCache | None,
        *,
        prices: Mapping[str, ModelPrice] | None = None,
        max_cost_usd: float | None = None,
    ) -> None:
        self.inner = inner
        self.cache = cache
        self.max_cost_usd = max_cost_usd
        self._meter = Meter(prices=dict(prices or {}))
        self.hits = 0
        self.misses = 0

    @property
    def endpoint(self) -> str | None:
        """The wrapped client's endpoint label, if it has one (the tool protocol is remembered by it)."""
        endpoint = getattr(self.inner, "endpoint", None)
        return endpoint if isinstance(endpoint, str) else None

    @property
    def cost_usd(self) -> float:
        """What the calls actually made cost (cache hits are free)."""
        return self._meter.cost_usd

    @property
    def prompt_tokens(self) -> int:
        return self._meter.prompt_tokens

    @property
    def completion_tokens(self) -> int:
        return self._meter.completion_tokens

    def priced(self, model: str) -> bool:
        """Whether a price is known for ``model``, i.e. whether the budget can be enforced."""
        return self._meter.price_of(model) is not None

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
        """Answer from the cache, else from the model within the budget; see ``LLMClient.chat``.

        Raises:
            BudgetExceeded: the call could take the spending past ``max_cost_usd``.
            LLMError: from the model client.
        """
        key = request_key(
            model=model,
            messages=messages,
            tools=tools,
            response_format=response_format,
            parallel_tool_calls=parallel_tool_calls,
            tool_choice=tool_choice,
            temperature=temperature,
        )
        if self.cache is not None:
            cached = self.cache.get(key)
            if cached is not None:
                self.hits += 1
                return cached
        if self.max_cost_usd is not None:
            estimate = self._meter.estimate(model, messages, tools)
            if self._meter.cost_usd + estimate > self.max_cost_usd:
                raise BudgetExceeded(
                    f"the next call to {model} (about ${estimate:.4f}) could take the backtest past "
                    f"${self.max_cost_usd:g} (spent ${self._meter.cost_usd:.4f})"
                )
        response = await self.inner.chat(
            model=model,
            messages=messages,
            tools=tools,
            parallel_tool_calls=parallel_tool_calls,
            response_format=response_format,
            tool_choice=tool_choice,
            temperature=temperature,
        )
        self.misses += 1
        self._meter.record_call(model, response.usage)
        if self.cache is not None:
            self.cache.put(key, response)
        return response

    async def close(self) -> None:
        """Close the model client."""
        await self.inner.close()
