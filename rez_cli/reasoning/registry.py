"""The reasoning modes a cycle can run, by name: Rez's own and any a plugin adds.

A mode is one file: an ``async def mode(payload, context, timeout_ms)`` (``reasoning.manager``'s
contract, with the cycle's ``CycleServices`` as its context) and one registration::

    register_mode("contrarian", lambda: contrarian_mode, needs_model=False, help="fades the trend")

From then on ``rez decide --mode contrarian`` and ``rez backtest --mode contrarian`` run it, and
``--help`` lists it. ``factory`` is called when a cycle is set up, so that listing the modes (for
``--help``) imports none of their code. ``needs_model``: the mode asks a model, so a cycle of it
gets the configured model client (and a ``--max-cost`` check). ``tool_calls``, for a mode that
always makes the same calls on a given context: those calls, as (tool, arguments' JSON); a backtest
answers them ahead of its walk, in a second process, along with the context.

Rez's own modes register themselves the same way, in ``reasoning.builtin_modes``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rez_cli.errors import UsageError

if TYPE_CHECKING:
    from rez_cli.market.snapshot import Context
    from rez_cli.reasoning.manager import ReasoningMode

ToolCalls = Callable[["Context"], Sequence[tuple[str, str]]]
"""The calls a mode makes on a context whatever else its cycle holds: (tool, arguments' JSON)."""

__all__ = [
    "MODEL_MODE",
    "OFFLINE_MODE",
    "ModeSpec",
    "available_modes",
    "find_mode",
    "mode_spec",
    "register_mode",
    "unregister_mode",
]


@dataclass(frozen=True)
class ModeSpec:
    name: str
    factory: Callable[[], ReasoningMode]
    needs_model: bool
    help: str
    tool_calls: ToolCalls | None = None


# The modes a cycle runs when none is asked for: with a model configured, and without one.
MODEL_MODE = "react"
OFFLINE_MODE = "rules"

_modes: dict[str, ModeSpec] = {}
_builtins_loaded = False


def _load_builtins() -> None:
    # Imported on first use rather than at import time: builtin_modes registers through this module.
    global _builtins_loaded
    if not _builtins_loaded:
        _builtins_loaded = True
        importlib.import_module("rez_cli.reasoning.builtin_modes")


def register_mode(
    name: str,
    factory: Callable[[], ReasoningMode],
    *,
    needs_model: bool,
    help: str,
    tool_calls: ToolCalls | None = None,
) -> None:
    """Add a mode, or replace the one of that name.

    Raises:
        ValueError: ``name`` is empty or has whitespace or a comma (it could not be typed after
            ``--mode``, or would read as two).
    """
    if not name or any(char.isspace() or char == "," for char in name):
        raise ValueError(f"a mode's name is one word, got {name!r}")
    _load_builtins()
    _modes[name] = ModeSpec(name, factory, needs_model, help, tool_calls)


def unregister_mode(name: str) -> None:
    """Remove a mode; a name not registered is no error."""
    _load_builtins()
    _modes.pop(name, None)


def available_modes() -> list[str]:
    """The names ``--mode`` takes, in the order they were registered."""
    _load_builtins()
    return list(_modes)


def registered_modes() -> list[ModeSpec]:
    _load_builtins()
    return list(_modes.values())


def find_mode(name: str) -> ModeSpec | None:
    _load_builtins()
    return _modes.get(name)


def mode_spec(name: str) -> ModeSpec:
    """The mode asked for by name.

    Raises:
        UsageError: no mode has that name.
    """
    spec = find_mode(name)
    if spec is None:
        raise UsageError(f"unknown mode {name!r}", hint=f"use {_alternatives()}")
    return spec


def _alternatives() -> str:
    names = [f"--mode {name}" for name in available_modes()]
    if len(names) < 2:
        return "".join(names) or "a registered mode"
    return f"{', '.join(names[:-1])} or {names[-1]}"


def modes_help() -> str:
    """The modes for an option's help: ``react (the model reasons with tools) or rules (...)``."""
    parts = [f"{spec.name} ({spec.help})" for spec in registered_modes()]
    if len(parts) < 2:
        return "".join(parts)
    return f"{', '.join(parts[:-1])} or {parts[-1]}"
