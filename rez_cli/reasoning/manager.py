"""The reasoning manager: runs a named mode within a time budget and always returns signals.

Contract (DESIGN.md): ``ReasoningManager(modes, memory_accessor=None, timeout_ms=...)`` and
``await reason(decision_id, event_payload, execution_context=None, reasoning_mode="default",
plan_id=None) -> list[AdvisorySignal]``. It is stateless between calls, hands modes a read-only copy
of the payload, and never raises: every failure is a signal carrying one of these codes:
``invalid_event_payload_type``, ``unknown_reasoning_mode: {mode}``, ``reasoning_timeout_exceeded``
(signal_type ``timeout``), ``reasoning_exception: {message}``, ``signal_construction_failed``.
New modes are added by registering a function; the manager does not change.
"""

from __future__ import annotations

import asyncio
import copy
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Protocol

DEFAULT_MODE = "default"


@dataclass(frozen=True)
class AdvisorySignal:
    """One piece of advice from a reasoning mode (a proposed decision, or why there is none)."""

    decision_id: str
    signal_type: str
    payload: Mapping[str, Any]
    plan_id: str | None
    confidence: float
    reasoning_mode: str
    timestamp: int
    error: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.confidence, int | float) or not 0.0 <= float(self.confidence) <= 1.0:
            raise ValueError(f"confidence must be within [0, 1], got {self.confidence!r}")
        if not self.decision_id or not self.signal_type:
            raise ValueError("decision_id and signal_type are required")

    def summary(self) -> dict[str, Any]:
        """The fields the orchestrator exposes in ``EventResult.metadata``."""
        return {
            "decision_id": self.decision_id,
            "signal_type": self.signal_type,
            "payload": dict(self.payload),
            "confidence": self.confidence,
            "error": self.error,
            "reasoning_mode": self.reasoning_mode,
        }


@dataclass(frozen=True)
class Proposal:
    """What a mode returns; the manager turns it into an ``AdvisorySignal``."""

    signal_type: str
    payload: Mapping[str, Any]
    confidence: float
    error: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)


class MemoryAccessor(Protocol):
    """Read access to past decisions and their outcomes for a symbol (the journal provides it)."""

    def recent(
        self, symbol: str, limit: int = 3, *, exchange: str | None = None, before_ms: int | None = None
    ) -> list[Mapping[str, Any]]:
        """The most recent decisions for ``symbol`` (on ``exchange``, made before ``before_ms``),
        newest first, with their outcome when known."""
        ...


@dataclass(frozen=True)
class ModeRequest:
    """Everything a mode receives: a read-only payload, the services of the cycle, the memory."""

    decision_id: str
    payload: Mapping[str, Any]
    execution_context: Any
    memory: MemoryAccessor | None
    plan_id: str | None


ReasoningMode = Callable[[ModeRequest], Awaitable[list[Proposal]]]


def _now_ms() -> int:
    return int(time.time() * 1000)


# Values no mode can change in place: shared as they are, neither copied nor wrapped.
_IMMUTABLE = (str, int, float, bytes, type(None))


def _freeze(value: Any) -> Any:
    """A read-only copy: new read-only views and tuples for containers, the same immutable leaves.

    Building the views and tuples already copies every container, so a JSON-like payload (a
    cycle's context and profile) needs no deep copy first; anything else is deep-copied, as before.
    """
    if isinstance(value, Mapping):
        return MappingProxyType({key: _freeze(item) for key, item in value.items()})
    if isinstance(value, list | tuple):
        return tuple(_freeze(item) for item in value)
    if isinstance(value, _IMMUTABLE):
        return value
    return copy.deepcopy(value)


class ReasoningManager:
    """Runs reasoning modes by name, bounded in time, never raising."""

    def __init__(
        self,
        modes: Mapping[str, ReasoningMode],
        memory_accessor: MemoryAccessor | None = None,
        timeout_ms: int = 180_000,
        default_mode: str | None = None,
    ) -> None:
        self._modes = dict(modes)
        self._memory = memory_accessor
        self.timeout_ms = timeout_ms
        self._default = default_mode or (next(iter(self._modes)) if self._modes else DEFAULT_MODE)

    def register(self, name: str, mode: ReasoningMode) -> None:
        """Add a mode; the orchestrator and the other modes are untouched."""
        self._modes[name] = mode

    @property
    def modes(self) -> list[str]:
        return list(self._modes)

    def _signal(
        self,
        decision_id: str,
        mode: str,
        plan_id: str | None,
        signal_type: str,
        error: str | None,
        payload: Mapping[str, Any] | None = None,
        confidence: float = 0.0,
        metadata: Mapping[str, Any] | None = None,
    ) -> AdvisorySignal:
        return AdvisorySignal(
            decision_id=decision_id or "unknown",
            signal_type=signal_type,
            payload=dict(payload or {}),
            plan_id=plan_id,
            confidence=confidence,
            reasoning_mode=mode,
            timestamp=_now_ms(),
            error=error,
            metadata=dict(metadata or {}),
        )

    async def reason(
        self,
        decision_id: str,
        event_payload: Any,
        execution_context: Any = None,
        reasoning_mode: str = DEFAULT_MODE,
        plan_id: str | None = None,
    ) -> list[AdvisorySignal]:
        """Run one mode on one event and return its signals; failures are signals too."""
        mode_name = self._default if reasoning_mode == DEFAULT_MODE else reasoning_mode
        if not isinstance(event_payload, Mapping):
            return [
                self._signal(
                    decision_id,
                    mode_name,
                    plan_id,
                    "error",
                    "invalid_event_payload_type",
                    metadata={"payload_type": type(event_payload).__name__},
                )
            ]
        mode = self._modes.get(mode_name)
        if mode is None:
            return [
                self._signal(
                    decision_id,
                    mode_name,
                    plan_id,
                    "error",
                    f"unknown_reasoning_mode: {mode_name}",
                    metadata={"available": list(self._modes)},
                )
            ]
        # A copy behind read-only views: no mode can change what the caller holds.
        request = ModeRequest(decision_id, _freeze(event_payload), execution_context, self._memory, plan_id)
        started = time.perf_counter()
        try:
            proposals = await asyncio.wait_for(mode(request), timeout=self.timeout_ms / 1000)
        except TimeoutError:
            return [
                self._signal(
                    decision_id,
                    mode_name,
                    plan_id,
                    "timeout",
                    "reasoning_timeout_exceeded",
                    metadata={"timeout_ms": self.timeout_ms},
                )
            ]
        except asyncio.CancelledError:
            raise
        except Exception as error:  # the contract: a mode's failure is a signal, never an exception
            message = str(error).splitlines()[0] if str(error) else type(error).__name__
            return [
                self._signal(
                    decision_id,
                    mode_name,
                    plan_id,
                    "error",
                    f"reasoning_exception: {message}",
                    metadata={"exception": type(error).__name__},
                )
            ]
        elapsed_ms = round((time.perf_counter() - started) * 1000, 3)
        signals = []
        for proposal in proposals:
            try:
                signals.append(
                    self._signal(
                        decision_id,
                        mode_name,
                        plan_id,
                        proposal.signal_type,
                        proposal.error,
                        proposal.payload,
                        proposal.confidence,
                        {**dict(proposal.metadata), "elapsed_ms": elapsed_ms},
                    )
                )
            except (ValueError, TypeError) as error:
                signals.append(
                    self._signal(
                        decision_id,
                        mode_name,
                        plan_id,
                        "error",
                        "signal_construction_failed",
                        metadata={"detail": str(error)},
                    )
                )
        if not signals:
            signals.append(
                self._signal(
                    decision_id,
                    mode_name,
                    plan_id,
                    "error",
                    "signal_construction_failed",
                    metadata={"detail": "the mode returned no signal"},
                )
            )
        return signals
