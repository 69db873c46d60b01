"""Which mode a cycle runs and which model it asks, and why: decided here once for decide, backtest,
dry-run, replay and doctor.

The mode is the one asked for (``--mode``, any name in ``reasoning.registry``), else ``react`` when a
model is configured and the offline ``rules`` baseline when none is.

A model is used only when the user named one for Rez: ``--model``, ``[llm] model``, an endpoint of
their own in ``[llm] base_url``, or a GGUF file for Rez to serve itself (``[llm] gguf``, or a path given
to ``--model``). An ``OPENAI_API_KEY`` exported for other tools says nothing about
which model Rez should pay for, so on its own it leaves Rez on the offline rules mode, and says so.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from rez_cli.config.settings import LLMSettings
from rez_cli.errors import UsageError
from rez_cli.llm.local_model import gguf_of
from rez_cli.reasoning.registry import MODEL_MODE, OFFLINE_MODE, ModeSpec, mode_spec

# The model name sent when an endpoint is configured without one (local servers ignore it).
DEFAULT_MODEL = "gpt-4o-mini"
NO_MODEL = "no model configured"


@dataclass(frozen=True)
class ModelChoice:
    """The model a cycle asks (None: no model, the rules mode) and the reason, in a user's words."""

    model: str | None
    reason: str
    # The file Rez serves through llama.cpp for this model, when it is one (``model`` is its stem).
    gguf: Path | None = None

    @property
    def configured(self) -> bool:
        return self.model is not None


def choose_model(
    llm: LLMSettings, model_override: str | None, environ: Mapping[str, str] | None = None
) -> ModelChoice:
    env = os.environ if environ is None else environ
    gguf = gguf_of(llm, model_override)
    if gguf is not None:
        return ModelChoice(gguf.stem, f"served from {gguf} by llama.cpp (embedded)", gguf=gguf)
    if model_override:
        return ModelChoice(model_override, "given with --model")
    if llm.model:
        return ModelChoice(llm.model, "set in [llm] model")
    if llm.base_url:
        return ModelChoice(
            DEFAULT_MODEL, f"[llm] base_url is set without [llm] model: the default {DEFAULT_MODEL}"
        )
    if env.get("OPENAI_API_KEY") or llm.api_key:
        return ModelChoice(
            None, "no model configured (an API key alone does not choose one: set [llm] model or --model)"
        )
    return ModelChoice(None, NO_MODEL)


def default_mode(model_configured: bool) -> str:
    return MODEL_MODE if model_configured else OFFLINE_MODE


@dataclass(frozen=True)
class CycleChoice:
    """The mode a run's cycles run and the model it may ask, decided once per run."""

    mode: ModeSpec
    model: ModelChoice
    # The mode was asked for by name, rather than chosen by whether a model is configured.
    asked: bool

    @property
    def uses_model(self) -> bool:
        """The mode asks a model and one is configured: the run needs a model client."""
        return self.mode.needs_model and self.model.configured


def choose(
    llm: LLMSettings,
    mode: str | None,
    model_override: str | None,
    environ: Mapping[str, str] | None = None,
) -> CycleChoice:
    """The mode (``mode``, else the default for whether a model is configured) and the model.

    Raises:
        UsageError: no mode is registered under ``mode``.
    """
    model = choose_model(llm, model_override, environ)
    return CycleChoice(mode_spec(mode or default_mode(model.configured)), model, bool(mode))


def require_price_for_limit(
    llm: LLMSettings, model: str, max_cost_usd: float | None, *, local: bool = False
) -> None:
    """Refuse a spending limit that could not be enforced.

    A model Rez serves itself (``local``) costs nothing: its $0 is known, not missing.

    Raises:
        UsageError: ``max_cost_usd`` is set and ``[llm.prices]`` has no price for ``model``: the
            cost would read $0 and the limit would silently do nothing.
    """
    from rez_cli.llm.meter import Meter

    if max_cost_usd is None or local or Meter(prices=llm.prices).price_of(model) is not None:
        return
    raise UsageError(
        f"--max-cost cannot be enforced: no price is known for {model}",
        hint=f'add it to [llm.prices] in US$ per million tokens: "{model}" = {{ input = 1, output = 4 }}',
    )
