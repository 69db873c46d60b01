"""Rez: a command-line LLM trading assistant.

The library API is importable from here: ``from rez_cli import ReasoningManager, AdvisorySignal,
Orchestrator, Event, EventResult``. Each name is imported on first use, so that ``import rez_cli``
(and ``rez --help``) stays free of pandas, ccxt, openai and pydantic.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = ["AdvisorySignal", "Event", "EventResult", "Orchestrator", "ReasoningManager", "__version__"]

_LAZY = {
    "AdvisorySignal": "rez_cli.reasoning.manager",
    "ReasoningManager": "rez_cli.reasoning.manager",
    "Event": "rez_cli.cycle.orchestrator",
    "EventResult": "rez_cli.cycle.orchestrator",
    "Orchestrator": "rez_cli.cycle.orchestrator",
}

if TYPE_CHECKING:
    from rez_cli.cycle.orchestrator import Event, EventResult, Orchestrator
    from rez_cli.reasoning.manager import AdvisorySignal, ReasoningManager


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'rez_cli' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # the next access is a plain lookup
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
