"""The reasoning manager: named modes run on a copy of an event, bounded in time, always answered.

The contract is the public reasoning-manager specification Rez was founded on:
``ReasoningManager(modes, memory_accessor=None, timeout_ms=5000, logger=None)`` and ``await
reason(decision_id, event_payload, execution_context=None, reasoning_mode="default", plan_id=None)
-> list[AdvisorySignal]``. A mode is ``async def mode(payload, context, timeout_ms)``: it receives a
copy of the payload and of the context and the milliseconds left of the budget, and returns a list
of dicts with ``signal_type``, ``payload`` and ``confidence`` (Rez's own modes add ``error`` and
``metadata``). ``reason`` is stateless and never raises: every failure is a signal.

==============================  ===========  ====================================
failure                         signal_type  error
==============================  ===========  ====================================
payload not a dict (or nested   ``error``    ``invalid_event_payload_type``
past the recursion limit)
no such mode                    ``error``    ``unknown_reasoning_mode: {mode}``
budget spent                    ``timeout``  ``reasoning_timeout_exceeded``
the mode raised                 ``error``    ``reasoning_exception: {message}``
malformed mode output           ``error``    ``signal_construction_failed``
==============================  ===========  ====================================

An error signal's payload repeats the error and says why (``{"error": ..., "detail": ...}``), so a
caller that keeps only ``signal_type``, ``payload`` and ``confidence`` still sees it. A mode's
output is malformed when it is not a list or tuple (None, a lone dict, any other object), or for each item
that is not a dict with a non-empty ``signal_type`` string and a dict ``payload``: the good items
of a list still become signals, one ``signal_construction_failed`` stands for each bad one. An
empty list is no advice: no signal.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import math
import numbers
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol

from rez_cli.clock import now_ms
from rez_cli.decision.codes import Hold

__all__ = [
    "DEFAULT_MODE",
    "AdvisorySignal",
    "MemoryAccessor",
    "ReasoningManager",
    "ReasoningMode",
    "clip_confidence",
]

DEFAULT_MODE = "default"

# How long a mode that overran its budget may take to clean up once cancelled. One that ignores
# cancellation is left behind after this: the caller's time is bounded, whatever the mode does.
CANCEL_GRACE_S = 0.5


def clip_confidence(value: object) -> float | None:
    """A confidence in [0, 1], or None when there is none. Never raises.

    A real number is clipped to [0, 1] (an infinity to the nearer end). What is not one has no
    confidence to clip and becomes None: None, NaN, True/False, text, any other object.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real | Decimal):
        return None
    try:
        number = float(value)
    except OverflowError:  # an integer beyond float range: its sign says which end
        return 0.0 if value < 0 else 1.0
    except (TypeError, ValueError, ArithmeticError):  # a signalling NaN Decimal, a broken __float__
        return None
    if math.isnan(number):
        return None
    return min(max(number, 0.0), 1.0)


@dataclass
class AdvisorySignal:
    """One piece of advice from a reasoning mode, or the reason there is none (``error``).

    ``confidence`` is clipped to [0, 1] whenever it is set (``clip_confidence``); None stays None.
    """

    decision_id: str
    signal_type: str
    payload: dict[str, Any]
    plan_id: str | None = None
    confidence: float | None = None
    reasoning_mode: str = DEFAULT_MODE
    timestamp: int = field(default_factory=now_ms)
    error: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def __setattr__(self, name: str, value: Any) -> None:
        # On every assignment, not only in __init__: no signal ever holds a confidence out of range.
        if name == "confidence":
            value = clip_confidence(value)
        super().__setattr__(name, value)

    def summary(self) -> dict[str, Any]:
        """What the journal keeps of a signal, as plain data: a typed value in the payload (the
        ``ModelAnswer`` of Rez's modes) as its JSON."""
        return {
            "decision_id": self.decision_id,
            "signal_type": self.signal_type,
            "payload": {key: _plain_data(value) for key, value in self.payload.items()},
            "confidence": self.confidence,
            "error": self.error,
            "reasoning_mode": self.reasoning_mode,
        }


def _plain_data(value: Any) -> Any:
    # Duck-typed: this module stays free of pydantic (``import rez_cli`` loads none of it).
    dump = getattr(value, "model_dump", None)
    return dump(mode="json") if callable(dump) and not isinstance(value, type) else value


class MemoryAccessor(Protocol):
    """Read access to past decisions and their outcomes for a symbol (the journal provides it)."""

    def recent(
        self, symbol: str, limit: int = 3, *, exchange: str | None = None, before_ms: int | None = None
    ) -> list[Mapping[str, Any]]:
        """The most recent decisions for ``symbol`` (on ``exchange``, made before ``before_ms``),
        newest first, with their outcome when known."""
        ...


# ``async def mode(payload, context, timeout_ms)``, returning a list of signal dicts.
ReasoningMode = Callable[[dict[str, Any], Any, int], Awaitable[Any]]


def _text(value: object) -> str:
    """``str(value)``, even for an object whose ``__str__`` raises."""
    if isinstance(value, str):
        return value
    try:
        return str(value)
    except Exception:
        return f"<{type(value).__name__}>"


def _first_line(error: BaseException) -> str:
    lines = [line for line in _text(error).splitlines() if line.strip()]
    return lines[0].strip() if lines else type(error).__name__


# Exactly these types are immutable all the way down; a subclass may add mutable state.
_ATOMS = frozenset({str, int, float, bool, complex, bytes, type(None)})


def _copied(value: Any, memo: dict[int, Any]) -> Any:
    """A copy no mode can change the original through.

    Plain dicts and lists (a JSON-like payload) are copied here, about three times faster than
    ``copy.deepcopy`` (a cycle's payload is copied once per backtest step), keeping references to
    themselves; anything else is deep-copied. What cannot
    be copied at all (a lock, a live connection) is shared as it is: a mode still runs, rather than
    the whole call failing over one field. An object whose deep copy is itself (Rez's
    ``CycleServices``: the cycle's model connection, meter and trace) is handed over as is, on purpose.

    Raises:
        RecursionError: nesting deeper than Python's recursion limit.
    """
    if type(value) in _ATOMS:
        return value
    seen = memo.get(id(value))
    if seen is not None:
        return seen
    # Leaves are most of a payload: copied in one C call with their container, and only the
    # containers among the items are then replaced by their own copies.
    if type(value) is dict:
        out: dict[Any, Any] = value.copy()
        memo[id(value)] = out
        for key, item in value.items():
            if type(item) not in _ATOMS:
                out[key] = _copied(item, memo)
        return out
    if type(value) is list:
        items: list[Any] = value.copy()
        memo[id(value)] = items
        for index, item in enumerate(value):
            if type(item) not in _ATOMS:
                items[index] = _copied(item, memo)
        return items
    if type(value) is tuple:
        # A tuple cannot contain itself except through a list or dict, which the memo already holds.
        return tuple(_copied(item, memo) for item in value)
    try:
        duplicate = copy.deepcopy(value)
    except Exception:
        duplicate = value
    memo[id(value)] = duplicate
    return duplicate


class _Malformed(Exception):
    """A mode's output that cannot become a signal."""


class _BudgetSpent(Exception):
    """The mode was still running when the budget ran out."""


def _consume(task: asyncio.Future[Any]) -> None:
    # An abandoned mode's late failure is nobody's to handle: retrieved, so asyncio does not log it.
    if not task.cancelled():
        task.exception()


async def _bounded(awaitable: Any, seconds: float) -> Any:
    """Await a mode's result for at most ``seconds``.

    Raises:
        _BudgetSpent: the budget ran out first (the mode is cancelled).
        TypeError: ``awaitable`` is not awaitable.
        Exception: whatever the mode raised.
    """
    task = asyncio.ensure_future(awaitable)
    try:
        if seconds > 0:
            await _first_of(task, seconds)
        if not task.done():  # a spent budget gives a mode not even its first step
            raise _BudgetSpent
        return task.result()  # a TimeoutError of the mode's own, within the budget, is its failure
    finally:
        if not task.done():
            task.cancel()
            await asyncio.wait({task}, timeout=CANCEL_GRACE_S)
            task.add_done_callback(_consume)


async def _first_of(task: asyncio.Future[Any], seconds: float) -> None:
    """Wait until ``task`` ends or ``seconds`` pass, whichever comes first; the task is left as it is.

    What ``asyncio.wait_for(asyncio.shield(task), seconds)`` waits for, with one future and one timer
    instead of its two futures and their callbacks: a backtest's rules cycle takes about a millisecond.
    """
    loop = asyncio.get_running_loop()
    waiter: asyncio.Future[None] = loop.create_future()

    def release(_: object = None) -> None:
        if not waiter.done():
            waiter.set_result(None)

    timer = loop.call_later(seconds, release)
    task.add_done_callback(release)
    try:
        await waiter
    finally:
        timer.cancel()
        task.remove_done_callback(release)


class ReasoningManager:
    """Runs reasoning modes by name on a copy of an event, within a time budget, never raising.

    Args:
        modes: mode name → ``async def mode(payload, context, timeout_ms)``.
        memory_accessor: past decisions and their outcomes, kept as ``memory_accessor`` for modes
            that close over the manager (Rez's cycle reads its memory itself and gives its modes
            the text).
        timeout_ms: the budget of one ``reason`` call, in milliseconds (a positive finite number).
        logger: given one record per error signal (a ``logging.Logger``, or anything with
            ``warning`` and ``error`` methods): ``warning`` for a timeout, ``error`` otherwise.

    Raises:
        ValueError: ``timeout_ms`` is not a positive finite number.
    """

    def __init__(
        self,
        modes: Mapping[str, ReasoningMode],
        memory_accessor: MemoryAccessor | None = None,
        timeout_ms: float = 5000,
        logger: Any = None,
    ) -> None:
        self._modes: dict[Any, ReasoningMode] = dict(modes)
        self.memory_accessor = memory_accessor
        self.timeout_ms = timeout_ms
        self.logger = logger

    @property
    def timeout_ms(self) -> float:
        return self._timeout_ms

    @timeout_ms.setter
    def timeout_ms(self, value: float) -> None:
        # Checked when set, so that reason() never meets a budget it cannot use.
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < math.inf:
            raise ValueError(f"timeout_ms must be a positive finite number of milliseconds, got {value!r}")
        self._timeout_ms = value

    def register(self, name: str, mode: ReasoningMode) -> None:
        """Add a mode; the callers and the other modes are untouched."""
        self._modes[name] = mode

    @property
    def modes(self) -> list[str]:
        return [_text(name) for name in self._modes]

    async def reason(
        self,
        decision_id: str,
        event_payload: dict[str, Any],
        execution_context: Any = None,
        reasoning_mode: str = DEFAULT_MODE,
        plan_id: str | None = None,
    ) -> list[AdvisorySignal]:
        """Run one mode on one event and return its signals; every failure is a signal too.

        The mode gets a copy of ``event_payload`` and of ``execution_context`` (``{}`` when None):
        nothing it does changes what the caller holds.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout_ms / 1000
        label = _text(reasoning_mode)
        started = time.perf_counter()

        def failure(error: str, detail: str, signal_type: str = "error", **metadata: Any) -> AdvisorySignal:
            return AdvisorySignal(
                decision_id=decision_id,
                signal_type=signal_type,
                payload={"error": error, "detail": detail},
                plan_id=plan_id,
                confidence=None,
                reasoning_mode=label,
                error=error,
                metadata={"detail": detail, **metadata},
            )

        prepared = self._prepare(event_payload, execution_context, reasoning_mode, label, failure)
        if isinstance(prepared, AdvisorySignal):
            self._log([prepared])
            return [prepared]
        mode, payload, context = prepared
        remaining_ms = max(0, int((deadline - loop.time()) * 1000))
        try:
            output = await _bounded(mode(payload, context, remaining_ms), deadline - loop.time())
        except _BudgetSpent:
            signals = [
                failure(
                    Hold.REASONING_TIMEOUT_EXCEEDED,
                    f"the mode gave no answer within {self._timeout_ms:g} ms",
                    signal_type="timeout",
                    timeout_ms=self._timeout_ms,
                )
            ]
        except asyncio.CancelledError as error:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise  # the caller is being cancelled: that is no failure of the mode's to report
            signals = [
                failure(Hold.REASONING_EXCEPTION.with_detail(_first_line(error)), "the mode was cancelled")
            ]
        except Exception as error:  # the contract: a mode's failure is a signal, never an exception
            message = _first_line(error)
            signals = [
                failure(
                    Hold.REASONING_EXCEPTION.with_detail(message), message, exception=type(error).__name__
                )
            ]
        else:
            elapsed_ms = round((time.perf_counter() - started) * 1000, 3)
            signals = self._signals(output, decision_id, label, plan_id, elapsed_ms, failure)
        self._log(signals)
        return signals

    def _prepare(
        self,
        event_payload: Any,
        execution_context: Any,
        reasoning_mode: Any,
        label: str,
        failure: Callable[..., AdvisorySignal],
    ) -> AdvisorySignal | tuple[ReasoningMode, dict[Any, Any], Any]:
        """The mode and the copies it runs on, or the signal that says why there is nothing to run."""
        if not isinstance(event_payload, Mapping):
            return failure(
                Hold.INVALID_EVENT_PAYLOAD_TYPE,
                f"the event payload is a {type(event_payload).__name__}, not a dict",
                payload_type=type(event_payload).__name__,
            )
        payload: dict[Any, Any] = {}
        try:
            memo: dict[int, Any] = {id(event_payload): payload}
            for key, item in event_payload.items():
                payload[key] = _copied(item, memo)
        except Exception as error:  # a mapping that cannot be read, or nested beyond any use
            return failure(
                Hold.INVALID_EVENT_PAYLOAD_TYPE, f"the event payload cannot be copied: {_first_line(error)}"
            )
        try:
            mode = self._modes.get(reasoning_mode)
        except Exception:  # an unhashable name names no mode
            mode = None
        if mode is None:
            return failure(
                Hold.UNKNOWN_REASONING_MODE.with_detail(label),
                f"no reasoning mode {label!r}; known: {', '.join(self.modes) or 'none'}",
                available=self.modes,
            )
        try:
            context = {} if execution_context is None else _copied(execution_context, {})
        except Exception as error:
            return failure(
                Hold.REASONING_EXCEPTION.with_detail("the execution context cannot be copied"),
                _first_line(error),
                exception=type(error).__name__,
            )
        return mode, payload, context

    @staticmethod
    def _signals(
        output: Any,
        decision_id: str,
        label: str,
        plan_id: str | None,
        elapsed_ms: float,
        failure: Callable[..., AdvisorySignal],
    ) -> list[AdvisorySignal]:
        if not isinstance(output, list | tuple):
            return [
                failure(
                    Hold.SIGNAL_CONSTRUCTION_FAILED,
                    f"the mode returned a {type(output).__name__}, not a list of signals",
                )
            ]
        signals = []
        for index, item in enumerate(output):
            try:
                if not isinstance(item, Mapping):
                    raise _Malformed(f"a {type(item).__name__}, not a dict")
                signal_type = item.get("signal_type")
                if not isinstance(signal_type, str) or not signal_type:
                    raise _Malformed("signal_type must be a non-empty string")
                payload = item.get("payload")
                if not isinstance(payload, Mapping):
                    raise _Malformed("payload must be a dict")
                error = item.get("error")
                if error is not None and not isinstance(error, str):
                    raise _Malformed("error must be a string or None")
                metadata = item.get("metadata", {})
                if not isinstance(metadata, Mapping):
                    raise _Malformed("metadata must be a dict")
                signals.append(
                    AdvisorySignal(
                        decision_id=decision_id,
                        signal_type=signal_type,
                        payload=dict(payload),
                        plan_id=plan_id,
                        confidence=item.get("confidence"),
                        reasoning_mode=label,
                        error=error,
                        metadata={**dict(metadata), "elapsed_ms": elapsed_ms},
                    )
                )
            except Exception as problem:  # a hostile mapping may fail anywhere in the reading
                signals.append(
                    failure(Hold.SIGNAL_CONSTRUCTION_FAILED, f"signal {index}: {_first_line(problem)}")
                )
        return signals

    def _log(self, signals: list[AdvisorySignal]) -> None:
        if self.logger is None:
            return
        for signal in signals:
            if signal.error is None:
                continue
            method = "warning" if signal.signal_type == "timeout" else "error"
            # A broken logger must not break the promise that reason() never raises.
            with contextlib.suppress(Exception):
                getattr(self.logger, method)(
                    f"reasoning mode {signal.reasoning_mode!r} on decision {_text(signal.decision_id)!r}: "
                    f"{signal.error}"
                )
