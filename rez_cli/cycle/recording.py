"""What the orchestrator tells an observer while a cycle runs, so it can be journaled as it happens.

The journal implements ``CycleRecorder``; the orchestrator calls it at each step, so a crash or a kill
mid-cycle keeps everything recorded up to that point. The values are the cycle's own typed objects,
handed over as they are: the recorder is where they become JSON (``to_json``, ``model_dump``,
``AdvisorySignal.summary``), once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, Protocol

from rez_cli.config.settings import RiskProfile
from rez_cli.cycle.trace import Trace
from rez_cli.decision.model import Decision
from rez_cli.market.snapshot import Context
from rez_cli.reasoning.manager import AdvisorySignal
from rez_cli.reasoning.trace import TurnRecord


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
        profile: RiskProfile,
        as_of_ms: int,
        candles: dict[str, dict[str, Any]],
        context: Context,
        context_text: str,
    ) -> None:
        """The inputs are known.

        ``candles``: per timeframe ``{count, first_open_ms, last_close_ms, sha256}``.
        """
        ...

    def turn_recorded(self, trace_id: str, turn: TurnRecord) -> None:
        """One model turn: content, tool calls with results, tokens, time."""
        ...

    def cycle_finished(
        self,
        trace_id: str,
        *,
        status: Literal["decided", "held"],
        decision: Decision,
        trace: Trace,
        signals: Sequence[AdvisorySignal],
    ) -> None:
        """The decision and the whole trace: messages, raw text, parse stage, repair, policy verdicts,
        error detail. ``trace.json_text()`` is the JSON to store when it is not None."""
        ...
