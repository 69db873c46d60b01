"""Rez's own reasoning modes, registered as a plugin registers one.

Their code (``reasoning.modes``: pandas, the model client) is imported when a cycle is set up to run
them, not when the modes are listed for ``--help``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rez_cli.reasoning.registry import register_mode

if TYPE_CHECKING:
    from rez_cli.market.snapshot import Context
    from rez_cli.reasoning.manager import ReasoningMode


def _react() -> ReasoningMode:
    from rez_cli.reasoning.modes import react_mode

    return react_mode


def _rules() -> ReasoningMode:
    from rez_cli.reasoning.modes import rules_mode

    return rules_mode


def _rules_tool_calls(context: Context) -> tuple[tuple[str, str], ...]:
    from rez_cli.reasoning.modes import rules_tool_calls

    return rules_tool_calls(context)


register_mode("react", _react, needs_model=True, help="the model reasons with tools")
register_mode("rules", _rules, needs_model=False, help="deterministic baseline", tool_calls=_rules_tool_calls)
