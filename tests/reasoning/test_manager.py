"""The reasoning manager as specified: bounded, stateless, works on copies, and never raises."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import threading
import time
from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rez_cli.reasoning.manager import CANCEL_GRACE_S, AdvisorySignal, ReasoningManager, clip_confidence


async def echo(payload: dict[str, Any], context: Any, timeout_ms: int) -> list[dict[str, Any]]:
    return [{"signal_type": "decision", "payload": {"symbol": payload["symbol"]}, "confidence": 0.8}]


def reason(
    manager: ReasoningManager, payload: Any, mode: Any = "default", context: Any = None
) -> list[AdvisorySignal]:
    return asyncio.run(manager.reason("d1", payload, context, reasoning_mode=mode, plan_id="p1"))


def returning(value: Any) -> Any:
    async def mode(payload: dict[str, Any], context: Any, timeout_ms: int) -> Any:
        return value

    return mode


async def hang(payload: dict[str, Any], context: Any, timeout_ms: int) -> list[dict[str, Any]]:
    await asyncio.Event().wait()
    return []


def test_a_registered_mode_gives_signals() -> None:
    [signal] = reason(ReasoningManager({"default": echo}), {"symbol": "BTC/USDT"})
    assert (signal.decision_id, signal.signal_type, signal.plan_id) == ("d1", "decision", "p1")
    assert signal.reasoning_mode == "default"
    assert signal.confidence == 0.8
    assert signal.error is None
    assert signal.payload == {"symbol": "BTC/USDT"}
    assert signal.timestamp > 0
    assert signal.metadata["elapsed_ms"] >= 0


def test_new_modes_register_without_touching_the_manager() -> None:
    manager = ReasoningManager({"echo": echo})
    manager.register("other", returning([{"signal_type": "note", "payload": {}, "confidence": 0.1}]))
    assert manager.modes == ["echo", "other"]
    assert reason(manager, {"symbol": "X"}, "other")[0].reasoning_mode == "other"


def test_the_signal_has_the_specified_fields_and_defaults() -> None:
    fields = {f.name: f for f in dataclasses.fields(AdvisorySignal)}
    assert list(fields) == [
        "decision_id",
        "signal_type",
        "payload",
        "plan_id",
        "confidence",
        "reasoning_mode",
        "timestamp",
        "error",
        "metadata",
    ]
    before = int(time.time() * 1000)
    signal = AdvisorySignal("d", "note", {"a": 1})
    assert (signal.plan_id, signal.confidence, signal.reasoning_mode, signal.error) == (
        None,
        None,
        "default",
        None,
    )
    assert signal.metadata == {}
    assert before <= signal.timestamp <= int(time.time() * 1000)
    assert AdvisorySignal("d", "note", {}).metadata is not signal.metadata


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (0.5, 0.5),
        (0, 0.0),
        (1, 1.0),
        (1.5, 1.0),
        (-0.2, 0.0),
        (None, None),
        (math.nan, None),
        (math.inf, 1.0),
        (-math.inf, 0.0),
        (10**400, 1.0),
        (-(10**400), 0.0),
        (Decimal("0.3"), 0.3),
        (Decimal("NaN"), None),
        (Decimal("sNaN"), None),
        (Fraction(1, 4), 0.25),
        ("0.5", None),
        (True, None),
        ([0.5], None),
        (object(), None),
    ],
)
def test_confidence_is_clipped_and_never_raises(given: Any, expected: float | None) -> None:
    assert clip_confidence(given) == expected
    assert AdvisorySignal("d", "note", {}, confidence=given).confidence == expected


def test_confidence_stays_clipped_when_assigned_later() -> None:
    signal = AdvisorySignal("d", "note", {}, confidence=0.5)
    signal.confidence = 7
    assert signal.confidence == 1.0
    signal.confidence = None
    assert signal.confidence is None


# The specification's error table, row by row.


@pytest.mark.parametrize("payload", [["not", "a", "dict"], None, "text", 42, b"bytes", {1, 2}])
def test_a_payload_that_is_not_a_dict(payload: Any) -> None:
    [signal] = reason(ReasoningManager({"default": echo}), payload)
    assert (signal.signal_type, signal.error) == ("error", "invalid_event_payload_type")
    assert signal.payload["error"] == "invalid_event_payload_type"
    assert signal.confidence is None


@pytest.mark.parametrize(
    ("mode", "label"),
    [("magic", "magic"), (["a", "list"], "['a', 'list']"), ({"a": 1}, "{'a': 1}"), (None, "None"), (3, "3")],
)
def test_an_unknown_mode_even_one_that_cannot_be_a_name(mode: Any, label: str) -> None:
    [signal] = reason(ReasoningManager({"default": echo}), {"symbol": "X"}, mode)
    assert (signal.signal_type, signal.error) == ("error", f"unknown_reasoning_mode: {label}")
    assert signal.reasoning_mode == label


def test_a_timeout_is_a_timeout_signal_within_the_budget() -> None:
    started = time.monotonic()
    [signal] = reason(ReasoningManager({"default": hang}, timeout_ms=50), {"symbol": "X"})
    assert time.monotonic() - started < 1
    assert (signal.signal_type, signal.error) == ("timeout", "reasoning_timeout_exceeded")


def test_an_exception_becomes_a_signal() -> None:
    async def broken(payload: dict[str, Any], context: Any, timeout_ms: int) -> list[dict[str, Any]]:
        raise RuntimeError("kaput\nsecond line")

    [signal] = reason(ReasoningManager({"default": broken}), {"symbol": "X"})
    assert (signal.signal_type, signal.error) == ("error", "reasoning_exception: kaput")
    assert signal.metadata["exception"] == "RuntimeError"


@pytest.mark.parametrize(
    "output",
    [
        None,
        {"signal_type": "note", "payload": {}, "confidence": 0.5},
        object(),
        "text",
        42,
        [1],
        [None],
        [{"payload": {}}],
        [{"signal_type": "", "payload": {}}],
        [{"signal_type": 7, "payload": {}}],
        [{"signal_type": "note"}],
        [{"signal_type": "note", "payload": 3}],
        [{"signal_type": "note", "payload": {}, "error": 5}],
        [{"signal_type": "note", "payload": {}, "metadata": "x"}],
    ],
)
def test_malformed_output_is_signal_construction_failed(output: Any) -> None:
    [signal] = reason(ReasoningManager({"default": returning(output)}), {"symbol": "X"})
    assert (signal.signal_type, signal.error) == ("error", "signal_construction_failed")
    assert signal.payload["detail"]


def test_good_signals_survive_a_bad_neighbour() -> None:
    output = [{"signal_type": "note", "payload": {"n": 1}, "confidence": 1.5}, "junk"]
    good, bad = reason(ReasoningManager({"default": returning(output)}), {"symbol": "X"})
    assert (good.signal_type, good.payload, good.confidence, good.error) == ("note", {"n": 1}, 1.0, None)
    assert bad.error == "signal_construction_failed"
    assert "signal 1" in bad.payload["detail"]


def test_no_advice_is_no_signal() -> None:
    assert reason(ReasoningManager({"default": returning([])}), {"symbol": "X"}) == []


def test_rez_extension_keys_error_and_metadata_pass_through() -> None:
    output = [
        {
            "signal_type": "error",
            "payload": {},
            "confidence": 0,
            "error": "model_timeout",
            "metadata": {"k": 1},
        }
    ]
    [signal] = reason(ReasoningManager({"default": returning(output)}), {"symbol": "X"})
    assert signal.error == "model_timeout"
    assert signal.metadata["k"] == 1


def test_the_mode_is_told_the_remaining_budget() -> None:
    seen: list[int] = []

    async def budgeted(payload: dict[str, Any], context: Any, timeout_ms: int) -> list[dict[str, Any]]:
        seen.append(timeout_ms)
        return []

    reason(ReasoningManager({"default": budgeted}, timeout_ms=2000), {"symbol": "X"})
    assert 1500 < seen[0] <= 2000
    assert isinstance(seen[0], int)


def test_a_modes_own_timeout_error_is_an_exception_not_the_budget() -> None:
    async def impatient(payload: dict[str, Any], context: Any, timeout_ms: int) -> list[dict[str, Any]]:
        raise TimeoutError("upstream gave up")

    [signal] = reason(ReasoningManager({"default": impatient}, timeout_ms=5000), {"symbol": "X"})
    assert (signal.signal_type, signal.error) == ("error", "reasoning_exception: upstream gave up")


def test_a_budget_spent_before_the_mode_starts_gives_it_no_step() -> None:
    started: list[bool] = []

    async def eager(payload: dict[str, Any], context: Any, timeout_ms: int) -> list[dict[str, Any]]:
        started.append(True)
        return [{"signal_type": "action_suggestion", "payload": {}, "confidence": 1.0}]

    # A nanosecond is spent on copying the payload alone.
    [signal] = reason(ReasoningManager({"default": eager}, timeout_ms=1e-6), {"symbol": "X"})
    assert (signal.signal_type, signal.error) == ("timeout", "reasoning_timeout_exceeded")
    assert started == []


def test_a_mode_that_ignores_cancellation_cannot_hold_the_caller() -> None:
    async def stubborn(payload: dict[str, Any], context: Any, timeout_ms: int) -> list[dict[str, Any]]:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            await asyncio.sleep(CANCEL_GRACE_S + 1)  # ignores the cancellation for a while
        return []

    async def main() -> tuple[list[AdvisorySignal], float]:
        started = time.monotonic()
        signals = await ReasoningManager({"default": stubborn}, timeout_ms=50).reason("d", {})
        return signals, time.monotonic() - started

    [signal], elapsed = asyncio.run(main())
    assert signal.error == "reasoning_timeout_exceeded"
    assert elapsed < CANCEL_GRACE_S + 0.5


@pytest.mark.parametrize("mode", [lambda p, c, t: [], lambda: None, "not callable", 42])
def test_a_mode_that_is_not_an_async_function(mode: Any) -> None:
    [signal] = reason(ReasoningManager({"default": mode}), {"symbol": "X"})
    assert signal.signal_type == "error"
    assert signal.error is not None
    assert signal.error.startswith("reasoning_exception: ")


def test_the_callers_cancellation_is_not_swallowed() -> None:
    async def main() -> None:
        task = asyncio.create_task(ReasoningManager({"default": hang}).reason("d", {}))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())


# What the mode is given.


def test_modes_get_copies_and_cannot_change_what_the_caller_holds() -> None:
    received: list[tuple[Any, Any]] = []

    async def vandal(payload: dict[str, Any], context: Any, timeout_ms: int) -> list[dict[str, Any]]:
        received.append((payload, context))
        payload["symbol"] = "ETH"
        payload["nested"]["x"] = 2
        payload["items"].append(3)
        context["config"]["risk"] = "max"
        context.clear()
        return [{"signal_type": "note", "payload": payload, "confidence": 0.5}]

    payload = {"symbol": "BTC", "nested": {"x": 1}, "items": [1, 2]}
    context = {"config": {"risk": "low"}}
    [signal] = reason(ReasoningManager({"default": vandal}), payload, context=context)
    assert signal.error is None
    assert payload == {"symbol": "BTC", "nested": {"x": 1}, "items": [1, 2]}
    assert context == {"config": {"risk": "low"}}
    seen_payload, _ = received[0]
    assert seen_payload is not payload
    signal.payload["nested"]["x"] = 9  # nor can whoever reads the signals
    assert payload["nested"] == {"x": 1}


def test_no_context_is_an_empty_dict() -> None:
    received: list[Any] = []

    async def look(payload: dict[str, Any], context: Any, timeout_ms: int) -> list[dict[str, Any]]:
        received.append(context)
        return []

    reason(ReasoningManager({"default": look}), {})
    assert received == [{}]


def test_a_payload_holding_a_lock_or_referring_to_itself() -> None:
    lock = threading.Lock()
    payload: dict[str, Any] = {"lock": lock, "items": []}
    payload["self"] = payload
    payload["items"].append(payload["items"])
    context: dict[str, Any] = {"lock": asyncio.Lock}
    context["again"] = context
    received: list[dict[str, Any]] = []

    async def look(payload: dict[str, Any], context: Any, timeout_ms: int) -> list[dict[str, Any]]:
        received.append(payload)
        return [{"signal_type": "note", "payload": {"seen": sorted(payload)}, "confidence": 1}]

    [signal] = reason(ReasoningManager({"default": look}), payload, context=context)
    assert signal.payload == {"seen": ["items", "lock", "self"]}
    copy_ = received[0]
    assert copy_ is not payload
    assert copy_["self"] is copy_  # the shape, references to itself included, is kept
    assert copy_["items"][0] is copy_["items"]
    assert copy_["lock"] is lock  # what cannot be copied is shared rather than failing the call


def test_a_payload_nested_beyond_any_use_is_an_invalid_payload() -> None:
    deep: dict[str, Any] = {}
    node = deep
    for _ in range(100_000):
        node["next"] = {}
        node = node["next"]
    [signal] = reason(ReasoningManager({"default": echo}), deep)
    assert signal.error == "invalid_event_payload_type"
    assert "cannot be copied" in signal.payload["detail"]


def test_a_mapping_that_breaks_when_read() -> None:
    class Hostile(dict[str, Any]):
        def items(self) -> Any:
            raise RuntimeError("no")

    [signal] = reason(ReasoningManager({"default": echo}), Hostile(a=1))
    assert signal.error == "invalid_event_payload_type"


# The logger.


def test_the_logger_gets_one_record_per_error_signal(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("tests.reasoning")
    output = [{"signal_type": "note", "payload": {}, "confidence": 1}, "junk", None]
    manager = ReasoningManager({"default": returning(output), "slow": hang}, timeout_ms=50, logger=logger)
    with caplog.at_level(logging.INFO, logger="tests.reasoning"):
        signals = reason(manager, {})
        assert len([s for s in signals if s.error]) == 2
        assert len(caplog.records) == 2
        assert all(record.levelno == logging.ERROR for record in caplog.records)
        caplog.clear()
        reason(manager, {}, "slow")
        reason(manager, {}, "missing")
        reason(manager, "not a dict")
        assert [record.levelno for record in caplog.records] == [
            logging.WARNING,
            logging.ERROR,
            logging.ERROR,
        ]
        assert "reasoning_timeout_exceeded" in caplog.records[0].getMessage()
        caplog.clear()
        reason(ReasoningManager({"default": echo}, logger=logger), {"symbol": "X"})
        assert caplog.records == []


def test_any_object_with_warning_and_error_is_a_logger_and_a_broken_one_is_ignored() -> None:
    class Collecting:
        def __init__(self) -> None:
            self.lines: list[str] = []

        def warning(self, message: str) -> None:
            self.lines.append(message)

        def error(self, message: str) -> None:
            self.lines.append(message)

    class Broken:
        def error(self, message: str) -> None:
            raise OSError("disk full")

    collecting = Collecting()
    reason(ReasoningManager({"default": echo}, logger=collecting), {"symbol": "X"}, "nope")
    assert collecting.lines == ["reasoning mode 'nope' on decision 'd1': unknown_reasoning_mode: nope"]
    [signal] = reason(ReasoningManager({"default": echo}, logger=Broken()), {"symbol": "X"}, "nope")
    assert signal.error == "unknown_reasoning_mode: nope"


@pytest.mark.parametrize("timeout_ms", [0, -1, math.nan, math.inf, "5000", True, None])
def test_a_budget_that_cannot_bound_anything_is_refused_when_given(timeout_ms: Any) -> None:
    with pytest.raises(ValueError, match="timeout_ms"):
        ReasoningManager({}, timeout_ms=timeout_ms)


# Whatever it is given.


class Opaque:
    """An object with no special behaviour."""


json_like = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4)
    ),
    max_leaves=12,
)
odd_values = st.sampled_from([threading.Lock(), Opaque(), print, object, b"\xff", 10**400, Decimal("sNaN")])
values = st.one_of(
    json_like, odd_values, st.tuples(json_like, odd_values), st.sets(st.integers(), max_size=3)
)
signal_dicts = st.fixed_dictionaries(
    {},
    optional={
        "signal_type": st.one_of(st.text(max_size=6), values),
        "payload": st.one_of(st.dictionaries(st.text(max_size=4), values, max_size=3), values),
        "confidence": st.one_of(st.floats(), st.integers(), values),
        "error": st.one_of(st.none(), st.text(max_size=6), values),
        "metadata": st.one_of(st.dictionaries(st.text(max_size=4), values, max_size=2), values),
    },
)
mode_outputs = st.one_of(values, signal_dicts, st.lists(st.one_of(signal_dicts, values), max_size=4))
mode_names = st.one_of(
    st.sampled_from(["default", "other"]), st.text(max_size=6), st.integers(), st.lists(st.text(max_size=3))
)
behaviours = st.sampled_from(["return", "raise", "hang", "sync", "cancelled"])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    payload=st.one_of(st.dictionaries(st.text(max_size=5), values, max_size=5), values),
    context=st.one_of(st.none(), st.dictionaries(st.text(max_size=5), values, max_size=3), values),
    output=mode_outputs,
    name=mode_names,
    behaviour=behaviours,
)
def test_reason_never_raises(payload: Any, context: Any, output: Any, name: Any, behaviour: str) -> None:
    async def mode(payload: dict[str, Any], context: Any, timeout_ms: int) -> Any:
        if behaviour == "raise":
            raise ValueError(output)
        if behaviour == "hang":
            await asyncio.sleep(10)
        if behaviour == "cancelled":
            raise asyncio.CancelledError
        return output

    def sync_mode(payload: dict[str, Any], context: Any, timeout_ms: int) -> Any:
        return output

    modes = {"default": sync_mode if behaviour == "sync" else mode, "other": mode}
    signals = reason(ReasoningManager(modes, timeout_ms=20), payload, name, context)
    for signal in signals:
        assert isinstance(signal, AdvisorySignal)
        assert isinstance(signal.signal_type, str)
        assert signal.signal_type
        assert isinstance(signal.payload, dict)
        assert signal.confidence is None or 0.0 <= signal.confidence <= 1.0
        assert isinstance(signal.reasoning_mode, str)
    if not isinstance(payload, dict):
        assert [signal.error for signal in signals] == ["invalid_event_payload_type"]
