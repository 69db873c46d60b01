"""Rez: a command-line LLM trading assistant.

The library API is importable from here, each name imported on first use so that ``import rez_cli``
(and ``rez --help``) stays free of pandas, ccxt, openai and pydantic::

    from rez_cli import Event, Orchestrator, load_profile, load_settings

    settings = load_settings().value
    orchestrator = Orchestrator(settings, load_profile(settings.risk.profile).value)
    event = Event("decide", {"symbol": "BTC/USDT"}, timestamp=now_ms, correlation_id="run-1")
    result = await orchestrator.handle_event(event)

``ReasoningManager``, ``AdvisorySignal``, ``Orchestrator``, ``Event`` and ``EventResult`` follow the
reasoning-manager specification; ``Decision`` is what every cycle ends in, ``Trace`` (its turns
``TurnRecord``) what it did; ``register_mode`` adds a reasoning mode to ``available_modes()``;
``run_backtest`` walks a ``BacktestRequest`` over history into a ``BacktestReport``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# Each public name and the module it lives in, imported on first access.
_HOMES = {
    "AdvisorySignal": "rez_cli.reasoning.manager",
    "ReasoningManager": "rez_cli.reasoning.manager",
    "Event": "rez_cli.cycle.orchestrator",
    "EventResult": "rez_cli.cycle.orchestrator",
    "Orchestrator": "rez_cli.cycle.orchestrator",
    "Decision": "rez_cli.decision.model",
    "Trace": "rez_cli.cycle.trace",
    "TurnRecord": "rez_cli.reasoning.trace",
    "available_modes": "rez_cli.reasoning.registry",
    "register_mode": "rez_cli.reasoning.registry",
    "unregister_mode": "rez_cli.reasoning.registry",
    "Settings": "rez_cli.config.settings",
    "RiskProfile": "rez_cli.config.settings",
    "load_settings": "rez_cli.config.settings",
    "load_profile": "rez_cli.config.settings",
    "BacktestRequest": "rez_cli.backtest.walk",
    "BacktestReport": "rez_cli.backtest.walk",
    "run_backtest": "rez_cli.backtest.walk",
}

__all__ = [
    "AdvisorySignal",
    "BacktestReport",
    "BacktestRequest",
    "Decision",
    "Event",
    "EventResult",
    "Orchestrator",
    "ReasoningManager",
    "RiskProfile",
    "Settings",
    "Trace",
    "TurnRecord",
    "__version__",
    "available_modes",
    "load_profile",
    "load_settings",
    "register_mode",
    "run_backtest",
    "unregister_mode",
]

if TYPE_CHECKING:
    from rez_cli.backtest.walk import BacktestReport, BacktestRequest, run_backtest
    from rez_cli.config.settings import RiskProfile, Settings, load_profile, load_settings
    from rez_cli.cycle.orchestrator import Event, EventResult, Orchestrator
    from rez_cli.cycle.trace import Trace
    from rez_cli.decision.model import Decision
    from rez_cli.reasoning.manager import AdvisorySignal, ReasoningManager
    from rez_cli.reasoning.registry import available_modes, register_mode, unregister_mode
    from rez_cli.reasoning.trace import TurnRecord


def __getattr__(name: str) -> Any:
    module = _HOMES.get(name)
    if module is None:
        raise AttributeError(f"module 'rez_cli' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # the next access is a plain lookup
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
