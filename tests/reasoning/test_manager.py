"""The reasoning-manager contract of DESIGN.md: bounded, stateless, read-only, never raises."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from rez_cli.reasoning.manager import AdvisorySignal, ModeRequest, Proposal, ReasoningManager


async def echo(request: ModeRequest) -> list[Proposal]:
    return [Proposal("decision", {"symbol": request.payload["symbol"]}, 0.8)]


def reason(manager: ReasoningManager, payload: Any, mode: str = "default") -> list[AdvisorySignal]:
    return asyncio.run(manager.reason("d1", payload, None, reasoning_mode=mode, plan_id="p1"))


def test_a_registered_mode_gives_signals() -> None:
    [signal] = reason(ReasoningManager({"echo": echo}), {"symbol": "BTC/USDT"})
    assert (signal.decision_id, signal.signal_type, signal.plan_id) == ("d1", "decision", "p1")
    assert signal.reasoning_mode == "echo"
    assert signal.confidence == 0.8
    assert signal.error is None
    assert signal.payload == {"symbol": "BTC/USDT"}
    assert signal.timestamp > 0


def test_new_modes_register_without_touching_the_manager() -> None:
    manager = ReasoningManager({"echo": echo})

    async def other(request: ModeRequest) -> list[Proposal]:
        return [Proposal("decision", {}, 0.1)]

    manager.register("other", other)
    assert reason(manager, {"symbol": "X"}, "other")[0].reasoning_mode == "other"


def test_payload_that_is_not_a_mapping() -> None:
    [signal] = reason(ReasoningManager({"echo": echo}), ["not", "a", "dict"])
    assert signal.error == "invalid_event_payload_type"
    assert signal.signal_type == "error"


def test_unknown_mode() -> None:
    [signal] = reason(ReasoningManager({"echo": echo}), {"symbol": "X"}, "magic")
    assert signal.error == "unknown_reasoning_mode: magic"


def test_timeout_is_a_timeout_signal() -> None:
    async def slow(request: ModeRequest) -> list[Proposal]:
        await asyncio.sleep(5)
        return []

    [signal] = reason(ReasoningManager({"slow": slow}, timeout_ms=50), {"symbol": "X"})
    assert signal.signal_type == "timeout"
    assert signal.error == "reasoning_timeout_exceeded"


def test_exception_becomes_a_signal() -> None:
    async def broken(request: ModeRequest) -> list[Proposal]:
        raise RuntimeError("kaput\nsecond line")

    [signal] = reason(ReasoningManager({"broken": broken}), {"symbol": "X"})
    assert signal.error == "reasoning_exception: kaput"


def test_bad_signal_is_signal_construction_failed() -> None:
    async def overconfident(request: ModeRequest) -> list[Proposal]:
        return [Proposal("decision", {}, 1.5)]

    [signal] = reason(ReasoningManager({"o": overconfident}), {"symbol": "X"})
    assert signal.error == "signal_construction_failed"


def test_modes_cannot_change_the_callers_payload() -> None:
    async def vandal(request: ModeRequest) -> list[Proposal]:
        with pytest.raises(TypeError):
            request.payload["symbol"] = "ETH"  # type: ignore[index]
        with pytest.raises(TypeError):
            request.payload["nested"]["x"] = 2  # type: ignore[index]
        return [Proposal("decision", {}, 0.5)]

    payload = {"symbol": "BTC", "nested": {"x": 1}}
    [signal] = reason(ReasoningManager({"v": vandal}), payload)
    assert signal.error is None
    assert payload == {"symbol": "BTC", "nested": {"x": 1}}
