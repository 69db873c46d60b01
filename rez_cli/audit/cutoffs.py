"""A model's training cutoff: ``[llm.cutoffs]`` first, then approximate defaults for well-known models.

The defaults are the "knowledge cutoff" / "training data cutoff" each vendor gives on its model page
or model card, rounded down to the first of the month: OpenAI's model pages (GPT-4o and GPT-4o mini
October 2023, GPT-4.1 June 2024), Anthropic's models overview (Claude 3.5 Sonnet April 2024, Claude
3.5 Haiku July 2024), Meta's Llama 3.1 model card (pretraining data to December 2023). Qwen2.5 and
SmolLM2 publish no date: theirs are guesses from their release (September 2024 and November 2024,
less a few months). All are approximate: a model may have seen a little later text, so set
``[llm.cutoffs]`` when you know better.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime

# (name pattern, cutoff, where it comes from); the first pattern that matches wins, so the more
# specific come first. Patterns are matched against the lower-cased model name and against its part
# after the last "/" (a provider prefix such as openai/ or meta-llama/).
DEFAULT_CUTOFFS: tuple[tuple[str, date, str], ...] = (
    ("gpt-4o-mini*", date(2023, 10, 1), "OpenAI model page"),
    ("gpt-4o*", date(2023, 10, 1), "OpenAI model page"),
    ("gpt-4.1*", date(2024, 6, 1), "OpenAI model page"),
    ("claude-3-5-haiku*", date(2024, 7, 1), "Anthropic models overview"),
    ("claude-3-5-*", date(2024, 4, 1), "Anthropic models overview"),
    ("*llama-3.1*", date(2023, 12, 1), "Meta Llama 3.1 model card"),
    ("*qwen2.5*", date(2024, 9, 1), "approximate: Qwen2.5 states none (released 2024-09)"),
    ("*smollm2*", date(2024, 6, 1), "approximate: SmolLM2 states none (released 2024-11)"),
)
# What a model Rez knows nothing about is assumed to have seen: the same date ``--training-cutoff``
# has always defaulted to.
FALLBACK_CUTOFF = date(2023, 10, 1)


@dataclass(frozen=True)
class Cutoff:
    """A training cutoff and where it was found; ``ms`` None when there is none (``none``)."""

    ms: int | None
    source: str

    @property
    def day(self) -> str | None:
        return (
            datetime.fromtimestamp(self.ms / 1000, tz=UTC).date().isoformat() if self.ms is not None else None
        )


def day_ms(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() * 1000)


def _names(model: str) -> tuple[str, str]:
    lowered = model.strip().lower()
    return lowered, lowered.rsplit("/", 1)[-1]


def model_cutoff(configured: Mapping[str, date], model: str | None) -> Cutoff:
    """The training cutoff of ``model``: ``[llm.cutoffs]`` (exact name, then as a pattern), then the
    defaults, then ``FALLBACK_CUTOFF``.

    Args:
        configured: ``[llm.cutoffs]``; its keys may be names or patterns (``my-model-*``).
        model: the model name as the endpoint knows it; None for a run with no model.
    """
    if model:
        names = _names(model)
        for key, day in configured.items():
            if key.strip().lower() in names:
                return Cutoff(day_ms(day), f"[llm.cutoffs] {key}")
        for key, day in configured.items():
            if any(fnmatch.fnmatchcase(name, key.strip().lower()) for name in names):
                return Cutoff(day_ms(day), f"[llm.cutoffs] {key}")
        for pattern, day, source in DEFAULT_CUTOFFS:
            if any(fnmatch.fnmatchcase(name, pattern) for name in names):
                return Cutoff(day_ms(day), f"default for {pattern} ({source})")
    return Cutoff(day_ms(FALLBACK_CUTOFF), "fallback: a model Rez knows no cutoff for")
