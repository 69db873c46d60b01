"""The library API as the reasoning-manager specification gives it, imported from the package root."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rez_cli
from rez_cli import AdvisorySignal, Event, EventResult, Orchestrator, ReasoningManager
from rez_cli.decision.model import Decision

SIGNAL_KEYS = {"decision_id", "signal_type", "payload", "confidence"}


def test_importing_the_package_and_the_manager_stays_light() -> None:
    code = (
        "import sys, rez_cli\n"
        "from rez_cli import ReasoningManager, AdvisorySignal\n"
        "print(sorted(m for m in ('pandas', 'ccxt', 'openai', 'pydantic') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_root_exports_the_specified_names() -> None:
    assert set(rez_cli.__all__) >= {
        "ReasoningManager",
        "AdvisorySignal",
        "Orchestrator",
        "Event",
        "EventResult",
    }
    for name in rez_cli.__all__:
        assert getattr(rez_cli, name) is not None
    assert set(rez_cli.__all__) <= set(dir(rez_cli))
    with pytest.raises(AttributeError):
        _ = rez_cli.NoSuchThing  # type: ignore[attr-defined]


def test_the_specifications_usage_runs_as_written(capsys: pytest.CaptureFixture[str]) -> None:
    # fmt: off
    async def my_reasoning_mode(payload, context, timeout_ms):  # type: ignore[no-untyped-def]
        # payload: dict with decision data
        # context: read-only execution context
        # timeout_ms: remaining time budget
        return [
            {
                "signal_type": "action_suggestion",
                "payload": {"action": "verify"},
                "confidence": 0.85
            }
        ]

    async_fn_1 = my_reasoning_mode
    async_fn_2 = my_reasoning_mode
    orchestrator = Orchestrator()

    async def usage() -> Any:
        manager = ReasoningManager(
            modes={
                "default": async_fn_1,
                "mode_2": async_fn_2
            },
            timeout_ms=2000
        )

        orchestrator.reasoning_manager = manager

        event = Event(
            event_type="decision",
            payload={
                "id": "dec-123",
                "reasoning_mode": "default",
                # ... other fields
            },
            timestamp=int(time.time() * 1000),
            correlation_id="evt-456"
        )

        result = await orchestrator.handle_event(event)

        # Advisory signals in result.metadata["advisory_signals"]
        for signal in result.metadata["advisory_signals"]:
            print(f"{signal['signal_type']}: {signal['payload']}")
        return result
    # fmt: on

    result = asyncio.run(usage())
    assert isinstance(result, EventResult)
    assert result.decision_id == "dec-123"
    # "... other fields" left out: no action, so the policy has no decision to accept.
    assert result.status == "rejected"
    assert result.metadata["plan_result"]["error"] == "invalid_decision"
    assert result.metadata["advisory_signals"] == [
        {
            "decision_id": "dec-123",
            "signal_type": "action_suggestion",
            "payload": {"action": "verify"},
            "confidence": 0.85,
        }
    ]
    assert capsys.readouterr().out == "action_suggestion: {'action': 'verify'}\n"


def buy(**changes: Any) -> dict[str, Any]:
    decision = {
        "id": "dec-1",
        "action": "buy",
        "entry_price": 100.0,
        "tp_price": 104.0,
        "sl_price": 98.0,
        "leverage": 2,
        "confidence": 0.7,
        "rationale": "breakout",
        "invalidation": "1h close below 98",
        "last_price": 100.2,
    }
    decision.update(changes)
    return decision


def handle(orchestrator: Orchestrator, payload: Any, timestamp: int = 1_700_000_000_000) -> EventResult:
    return asyncio.run(orchestrator.handle_event(Event("decision", payload, timestamp, "evt-1")))


async def suggest(payload: dict[str, Any], context: Any, timeout_ms: int) -> list[dict[str, Any]]:
    return [
        {"signal_type": "size_hint", "payload": {"status": context["status"]}, "confidence": 0.4},
        {"signal_type": "echo", "payload": {"action": payload.get("action")}, "confidence": None},
    ]


async def explode(payload: dict[str, Any], context: Any, timeout_ms: int) -> list[dict[str, Any]]:
    raise RuntimeError("mode broke")


async def hang(payload: dict[str, Any], context: Any, timeout_ms: int) -> list[dict[str, Any]]:
    await asyncio.Event().wait()
    return []


def test_no_arguments_is_the_offline_default_without_a_manager() -> None:
    orchestrator = Orchestrator()
    assert orchestrator.reasoning_manager is None
    assert orchestrator.source.name == "sim"
    assert orchestrator.llm is None
    assert orchestrator.profile.name == "moderate"


def test_a_decision_the_policy_allows_is_accepted() -> None:
    result = handle(Orchestrator(), buy())
    assert (result.status, result.decision_id) == ("accepted", "dec-1")
    plan = result.metadata["plan_result"]
    assert plan["passed"] is True
    assert plan["error"] is None
    assert plan["profile"] == "moderate"
    assert plan["last_price"] == 100.2
    assert 0 < plan["size_pct"] <= 25
    assert plan["reward_risk"] == pytest.approx(2.0)
    assert all(check["passed"] for check in plan["checks"])
    assert result.metadata["advisory_signals"] == []
    assert set(result.metadata) == {"plan_result", "advisory_signals"}


@pytest.mark.parametrize(
    ("changes", "rule"),
    [
        ({"tp_price": 99.0}, "tp_not_above_entry"),
        ({"leverage": 50}, "leverage_above_profile"),
        ({"sl_price": None}, "stop_loss_required"),
        ({"entry_price": 102.0}, "entry_too_far_from_market"),
        ({"tp_price": 1e308}, "tp_too_far_from_market"),
        ({"confidence": None}, "trade_incomplete"),
        ({"action": "hold"}, None),
    ],
)
def test_the_profiles_policy_decides(changes: dict[str, Any], rule: str | None) -> None:
    result = handle(Orchestrator(), buy(**changes))
    assert result.metadata["plan_result"]["error"] == rule
    assert result.status == ("accepted" if rule is None else "rejected")


def test_without_a_last_price_distances_are_measured_from_the_entry() -> None:
    payload = buy()
    del payload["last_price"]
    result = handle(Orchestrator(), payload)
    assert result.status == "accepted"
    assert result.metadata["plan_result"]["last_price"] is None


def test_advice_comes_with_the_outcome_accepted_or_rejected() -> None:
    orchestrator = Orchestrator()
    orchestrator.reasoning_manager = ReasoningManager({"default": suggest})
    for payload, status in ((buy(), "accepted"), (buy(tp_price=99.0), "rejected")):
        result = handle(orchestrator, payload)
        assert result.status == status
        signals = result.metadata["advisory_signals"]
        assert [set(signal) for signal in signals] == [SIGNAL_KEYS, SIGNAL_KEYS]
        assert signals[0] == {
            "decision_id": "dec-1",
            "signal_type": "size_hint",
            "payload": {"status": status},
            "confidence": 0.4,
        }
        assert signals[1]["payload"] == {"action": "buy"}


def test_the_reasoning_mode_comes_from_the_payload() -> None:
    orchestrator = Orchestrator()
    orchestrator.reasoning_manager = ReasoningManager({"default": explode, "other": suggest})
    result = handle(orchestrator, buy(reasoning_mode="other"))
    assert [signal["signal_type"] for signal in result.metadata["advisory_signals"]] == ["size_hint", "echo"]


@pytest.mark.parametrize(
    ("mode", "signal_type", "error"),
    [
        (explode, "error", "reasoning_exception: mode broke"),
        (hang, "timeout", "reasoning_timeout_exceeded"),
    ],
)
def test_a_mode_that_raises_or_hangs_never_changes_the_outcome(
    mode: Any, signal_type: str, error: str
) -> None:
    for payload in (buy(), buy(tp_price=99.0)):
        without = handle(Orchestrator(), payload)
        orchestrator = Orchestrator()
        orchestrator.reasoning_manager = ReasoningManager({"default": mode}, timeout_ms=50)
        started = time.monotonic()
        with_manager = handle(orchestrator, payload)
        assert time.monotonic() - started < 2
        assert with_manager.status == without.status
        assert with_manager.metadata["plan_result"] == without.metadata["plan_result"]
        [signal] = with_manager.metadata["advisory_signals"]
        assert (signal["signal_type"], signal["payload"]["error"]) == (signal_type, error)
        assert signal["confidence"] is None


def test_a_manager_of_the_callers_that_raises_is_one_error_signal() -> None:
    class Broken(ReasoningManager):
        async def reason(self, *args: Any, **kwargs: Any) -> list[AdvisorySignal]:
            raise RuntimeError("not my day")

    orchestrator = Orchestrator()
    orchestrator.reasoning_manager = Broken({})
    result = handle(orchestrator, buy())
    assert result.status == "accepted"
    [signal] = result.metadata["advisory_signals"]
    assert signal["payload"]["error"] == "reasoning_exception: not my day"


def test_the_callers_payload_is_never_changed() -> None:
    async def vandal(payload: dict[str, Any], context: Any, timeout_ms: int) -> list[dict[str, Any]]:
        payload["action"] = "sell"
        payload["extra"]["x"] = 2
        context["plan_result"]["passed"] = False
        return []

    orchestrator = Orchestrator()
    orchestrator.reasoning_manager = ReasoningManager({"default": vandal})
    payload = buy(extra={"x": 1})
    result = handle(orchestrator, payload)
    assert payload == buy(extra={"x": 1})
    assert result.status == "accepted"
    assert result.metadata["plan_result"]["passed"] is True


@pytest.mark.parametrize(
    ("payload", "error"),
    [
        (None, "invalid_event_payload"),
        (["id", "dec-1"], "invalid_event_payload"),
        ("dec-1", "invalid_event_payload"),
        ({"action": "buy"}, "missing_decision_id"),
        ({"id": None, "action": "hold"}, "missing_decision_id"),
        ({"id": "  ", "action": "hold"}, "missing_decision_id"),
        ({"id": ["dec"], "action": "hold"}, "missing_decision_id"),
        ({"id": True, "action": "hold"}, "missing_decision_id"),
        (buy(action="moon"), "invalid_decision"),
        (buy(entry_price="abc"), "invalid_decision"),
        (buy(confidence=500), "invalid_decision"),
        (buy(leverage=[1]), "invalid_decision"),
        (buy(rationale=object()), "invalid_decision"),
        (buy(last_price=0), "invalid_decision"),
        (buy(last_price=float("nan")), "invalid_decision"),
        (buy(last_price="100"), "invalid_decision"),
        (buy(last_price=10**400), "invalid_decision"),
    ],
)
def test_a_malformed_payload_is_rejected_never_raised(payload: Any, error: str) -> None:
    orchestrator = Orchestrator()
    orchestrator.reasoning_manager = ReasoningManager({"default": suggest})
    result = handle(orchestrator, payload)
    assert result.status == "rejected"
    assert result.metadata["plan_result"]["error"] == error
    assert result.metadata["plan_result"]["detail"]
    assert isinstance(result.decision_id, str)
    assert result.decision_id
    if error != "invalid_decision":
        assert result.metadata["advisory_signals"] == []


def test_an_integer_id_is_its_digits() -> None:
    assert handle(Orchestrator(), buy(id=42)).decision_id == "42"


def test_odd_payloads_and_odd_modes_inside_handle_event() -> None:
    lock = threading.Lock()
    payload = buy(lock=lock, reasoning_mode=["unhashable"])
    payload["self"] = payload
    orchestrator = Orchestrator()
    orchestrator.reasoning_manager = ReasoningManager({"default": suggest})
    result = handle(orchestrator, payload)
    assert result.status == "accepted"
    [signal] = result.metadata["advisory_signals"]
    assert signal["payload"]["error"] == "unknown_reasoning_mode: ['unhashable']"


def test_an_event_of_no_known_type_is_rejected() -> None:
    result = handle_any(Orchestrator(), Event("nonsense", {"id": "x"}, 0, "c"))
    assert result.status == "rejected"
    assert result.metadata["error"] == "unsupported_event"


def handle_any(orchestrator: Orchestrator, event: Any) -> EventResult:
    return asyncio.run(orchestrator.handle_event(event))


decision_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=6),
    st.sampled_from(["buy", "sell", "hold", 100.0, 104.0, 98.0, 1, 0.7, "50%", 10**400]),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
PAYLOAD_FIELDS = (
    "id",
    "reasoning_mode",
    "action",
    "entry_price",
    "tp_price",
    "sl_price",
    "leverage",
    "confidence",
    "rationale",
    "invalidation",
    "last_price",
)
decision_payloads = st.one_of(
    st.fixed_dictionaries(
        {},
        optional=dict.fromkeys(PAYLOAD_FIELDS, decision_values),
    ),
    decision_values,
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(payload=decision_payloads)
def test_handle_event_never_raises_on_a_decision_event(payload: Any) -> None:
    orchestrator = Orchestrator()
    orchestrator.reasoning_manager = ReasoningManager({"default": suggest, "other": explode}, timeout_ms=200)
    result = handle(orchestrator, payload)
    assert result.status in ("accepted", "rejected")
    assert isinstance(result.decision_id, str)
    assert set(result.metadata) == {"plan_result", "advisory_signals"}
    if result.status == "accepted":
        plan = result.metadata["plan_result"]
        assert plan["passed"] is True
        assert isinstance(payload, dict)
        assert payload["action"] in ("buy", "sell", "hold")


def test_decide_events_still_run_rez_s_own_cycle_offline() -> None:
    orchestrator = Orchestrator()
    as_of = 1_625_097_600_000  # 2021-07-01T00:00Z
    result = handle_any(orchestrator, Event("decide", {"symbol": "BTC/USDT", "as_of": as_of}, as_of, "c"))
    assert result.status == "decided"
    decision = result.decision
    assert isinstance(decision, Decision)
    assert (decision.mode, decision.exchange) == ("rules", "sim")


def test_a_malformed_decision_from_a_custom_mode_is_a_hold_not_an_exception() -> None:
    async def sloppy(payload: dict[str, Any], context: Any, timeout_ms: int) -> list[dict[str, Any]]:
        return [{"signal_type": "decision", "payload": {"answer": {"action": "moon"}}, "confidence": 2}]

    async def sourceless(payload: dict[str, Any], context: Any, timeout_ms: int) -> list[dict[str, Any]]:
        answer = {"action": "hold", "confidence": 0.2, "rationale": "quiet"}
        return [{"signal_type": "decision", "payload": {"answer": answer, "source": "oracle"}}]

    manager = ReasoningManager({"sloppy": sloppy, "sourceless": sourceless, "none": lambda *a: None})
    orchestrator = Orchestrator(manager=manager)
    as_of = 1_625_097_600_000
    for mode, error in (
        ("sloppy", "signal_construction_failed"),
        ("sourceless", "signal_construction_failed"),
        ("none", "reasoning_exception: "),
        ("missing", "unknown_reasoning_mode: missing"),
        ("__", "unknown_reasoning_mode: __"),
    ):
        event = Event("decide", {"symbol": "BTC/USDT", "mode": mode, "as_of": as_of}, as_of, "c")
        result = handle_any(orchestrator, event)
        assert result.status == "held", mode
        decision = result.decision
        assert decision is not None
        assert decision.action == "hold"
        assert decision.error is not None
        assert decision.error.startswith(error), (mode, decision.error)


@pytest.mark.parametrize("as_of", ["yesterday", 1.5, True, [1]])
def test_a_decide_event_with_an_unusable_moment_is_rejected(as_of: Any) -> None:
    event = Event("decide", {"symbol": "BTC/USDT", "as_of": as_of}, 0, "c")
    assert handle_any(Orchestrator(), event).status == "rejected"


def test_a_decide_event_spells_the_symbol_as_the_cli_and_the_lock_do() -> None:
    import asyncio

    from rez_cli.cycle.orchestrator import Event as DecideEvent

    as_of = 1_625_097_600_000
    event = DecideEvent("decide", {"symbol": "btc-usdt", "as_of": as_of}, as_of, "lib")
    result = asyncio.run(Orchestrator().handle_event(event))
    assert result.decision is not None
    assert result.decision.symbol == "BTC/USDT"
