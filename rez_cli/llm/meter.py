"""Tokens, calls, time and cost of one cycle, and the ``--max-cost`` budget."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from rez_cli.config.settings import ModelPrice
from rez_cli.decision.codes import Hold
from rez_cli.decision.model import Usage
from rez_cli.llm.client import TokenUsage

# Without a tokenizer for every model, four characters a token is the usual estimate for English + JSON.
CHARS_PER_TOKEN = 4
EXPECTED_COMPLETION_TOKENS = 800


class BudgetExceeded(Exception):
    """The next call would take the cycle past ``--max-cost``."""

    code: Hold = Hold.BUDGET_EXCEEDED


def estimate_tokens(payload: Any) -> int:
    text = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"))
    return max(1, len(text) // CHARS_PER_TOKEN)


@dataclass
class Meter:
    """Counts what a cycle spends; refuses a call that would pass the budget."""

    prices: Mapping[str, ModelPrice] = field(default_factory=dict)
    max_cost_usd: float | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    llm_calls: int = 0
    tool_calls: int = 0
    cost_usd: float = 0.0
    timings_ms: dict[str, float] = field(default_factory=dict)

    def price_of(self, model: str) -> ModelPrice | None:
        if model in self.prices:
            return self.prices[model]
        # "openai/gpt-4o-mini" on OpenRouter, "gpt-4o-mini-2024-07-18" snapshots: match the known stem.
        for name, price in self.prices.items():
            if model.endswith("/" + name) or model.startswith(name + "-"):
                return price
        return None

    def cost(self, model: str, prompt_tokens: int, completion_tokens: int) -> float:
        price = self.price_of(model)
        if price is None:
            return 0.0
        return (prompt_tokens * price.input + completion_tokens * price.output) / 1_000_000

    def estimate(
        self, model: str, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None
    ) -> float:
        """What the next call may cost: its prompt as sent, and a typical answer."""
        prompt = estimate_tokens(messages) + (estimate_tokens(tools) if tools else 0)
        return self.cost(model, prompt, EXPECTED_COMPLETION_TOKENS)

    def check_budget(
        self, model: str, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None
    ) -> None:
        """Raises BudgetExceeded when the next call would pass ``max_cost_usd``."""
        if self.max_cost_usd is None:
            return
        if self.cost_usd + self.estimate(model, messages, tools) > self.max_cost_usd:
            raise BudgetExceeded(
                f"the next call to {model} would take the cycle past ${self.max_cost_usd:g} "
                f"(spent ${self.cost_usd:.4f})"
            )

    def record_call(self, model: str, usage: TokenUsage) -> None:
        self.llm_calls += 1
        self.prompt_tokens += usage.prompt_tokens
        self.completion_tokens += usage.completion_tokens
        self.cost_usd += self.cost(model, usage.prompt_tokens, usage.completion_tokens)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Add the wall time of a block to the stage's total."""
        started = time.perf_counter()
        try:
            yield
        finally:
            self.add_time(name, (time.perf_counter() - started) * 1000)

    def add_time(self, name: str, ms: float) -> None:
        """Add ``ms`` to the stage's total (time spent on the cycle's behalf elsewhere, too)."""
        self.timings_ms[name] = round(self.timings_ms.get(name, 0.0) + ms, 3)

    def usage(self) -> Usage:
        return Usage(
            prompt_tokens=self.prompt_tokens,
            completion_tokens=self.completion_tokens,
            llm_calls=self.llm_calls,
            tool_calls=self.tool_calls,
            cost_usd=round(self.cost_usd, 6),
            timings_ms=dict(self.timings_ms),
        )
