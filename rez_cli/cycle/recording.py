"""What the orchestrator tells an observer while a cycle runs, so it can be journaled as it happens.

The journal implements ``CycleRecorder``; the orchestrator calls it at each step, so a crash or a kill
mid-cycle keeps everything recorded up to that point. Every value passed is plain JSON data.
"""

from __future__ import annotations

from typing import Any, Protocol


class CycleRecorder(Protocol):
    def cycle_started(
        self,
        trace_id: str,
        *,
        symbol: str,
        exchange: str,
        simulated: bool,
        mode: str,
        model: str | None,
        profile: dict[str, Any],
        as_of_ms: int,
        candles: dict[str, dict[str, Any]],
        context: dict[str, Any],
        context_text: str,
    ) -> None:
        """The inputs are known.

        ``candles``: per timeframe ``{count, first_open_ms, last_close_ms, sha256}``.
        """
        ...

    def turn_recorded(self, trace_id: str, turn: dict[str, Any]) -> None:
        """One model turn (``reasoning.modes.turn_dict``: content, tool calls with results, tokens, time)."""
        ...

    def cycle_finished(
        self,
        trace_id: str,
        *,
        status: str,
        decision: dict[str, Any],
        trace: dict[str, Any],
        signals: list[dict[str, Any]],
    ) -> None:
        """The decision (``Decision`` as JSON) and the whole trace: messages, raw text, parse stage,
        repair, policy verdicts (``trace["verdicts"]``), error detail."""
        ...
