"""What a decision can say: ``buy``, ``sell`` (open a short) or ``hold``.

The one spelling of the action set, for the decision the model answers, the profile's
``allowed_actions``, the journal's filters and the scores. It sits below the config and the
decision packages, since both need it and the decision's rules read the config.
"""

from __future__ import annotations

from typing import Final, Literal

__all__ = ["ACTIONS", "TRADE_ACTIONS", "Action"]

Action = Literal["buy", "sell", "hold"]
ACTIONS: Final[tuple[Action, ...]] = ("buy", "sell", "hold")
# The actions that open a position; a hold commits nothing.
TRADE_ACTIONS: Final[frozenset[Action]] = frozenset({"buy", "sell"})
