"""What a decision can say: ``buy``, ``sell`` (open a short), ``hold`` (keep what is open, or stay
out) or ``close`` (end the open position at the next candle's open).

The one spelling of the action set, for the decision the model answers, the profile's
``allowed_actions``, the journal's filters and the scores. It sits below the config and the
decision packages, since both need it and the decision's rules read the config.
"""

from __future__ import annotations

from typing import Final, Literal

__all__ = ["ACTIONS", "ALWAYS_ALLOWED", "TRADE_ACTIONS", "Action"]

Action = Literal["buy", "sell", "hold", "close"]
ACTIONS: Final[tuple[Action, ...]] = ("buy", "sell", "hold", "close")
# The actions that open a position; a hold commits nothing, a close only takes risk away.
TRADE_ACTIONS: Final[frozenset[Action]] = frozenset({"buy", "sell"})
# What no profile can forbid: a failure must be able to hold, and an open position to be closed.
ALWAYS_ALLOWED: Final[frozenset[Action]] = frozenset({"hold", "close"})
