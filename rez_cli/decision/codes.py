"""Every stable code Rez puts in a decision's ``error`` (and in a refused plan or an error signal).

A code is part of the output contract: scripts match on it in the decision JSON and the journal
keeps it, so a member's value never changes. ``Hold`` is a ``StrEnum``: a member is the very string
it names, wherever it is written, compared or stored. Each code has plain words for a trader, and
the backtest's reading of it (``fatal`` ends the walk at once, ``transient`` ends it when it keeps
coming). The README's "Error codes" table is this enum; a test holds them equal.

Two codes carry what went wrong after them, ``reasoning_exception: {message}`` and
``unknown_reasoning_mode: {mode}``: ``Hold.with_detail`` writes them, ``Hold.of`` reads any error
back to its code.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final, Literal

__all__ = ["FATAL", "TRANSIENT", "BacktestKind", "Hold"]

BacktestKind = Literal["fatal", "transient"]


class Hold(StrEnum):
    """Why a decision is a forced hold, a plan is refused, or a reasoning mode failed."""

    # The profile's rules, in the order the policy applies them.
    ACTION_NOT_ALLOWED = "action_not_allowed"
    NON_FINITE_NUMBER = "non_finite_number"
    TRADE_INCOMPLETE = "trade_incomplete"
    ENTRY_PRICE_REQUIRED = "entry_price_required"
    NON_POSITIVE_PRICE = "non_positive_price"
    STOP_LOSS_REQUIRED = "stop_loss_required"
    TAKE_PROFIT_REQUIRED = "take_profit_required"
    TP_NOT_ABOVE_ENTRY = "tp_not_above_entry"
    TP_NOT_BELOW_ENTRY = "tp_not_below_entry"
    SL_WRONG_SIDE = "sl_wrong_side"
    ENTRY_TOO_FAR_FROM_MARKET = "entry_too_far_from_market"
    TP_TOO_FAR_FROM_MARKET = "tp_too_far_from_market"
    SL_TOO_FAR_FROM_MARKET = "sl_too_far_from_market"
    SL_TOO_CLOSE_TO_ENTRY = "sl_too_close_to_entry"
    LEVERAGE_BELOW_ONE = "leverage_below_one"
    LEVERAGE_ABOVE_PROFILE = "leverage_above_profile"
    STOP_BEYOND_LIQUIDATION = "stop_beyond_liquidation"
    REWARD_RISK_BELOW_PROFILE = "reward_risk_below_profile"
    # The position the decision meets, and the account's limits across symbols.
    NO_POSITION = "no_position"
    POSITION_OPEN = "position_open"
    MAX_OPEN_POSITIONS = "max_open_positions"
    EXPOSURE_LIMIT = "exposure_limit"
    # The model.
    MODEL_NOT_CONFIGURED = "model_not_configured"
    MODEL_AUTH_FAILED = "model_auth_failed"
    MODEL_TIMEOUT = "model_timeout"
    MODEL_RATE_LIMITED = "model_rate_limited"
    MODEL_UNREACHABLE = "model_unreachable"
    MODEL_BAD_RESPONSE = "model_bad_response"
    MODEL_ERROR = "model_error"
    MAX_TURNS_EXCEEDED = "max_turns_exceeded"
    BUDGET_EXCEEDED = "budget_exceeded"
    # The parsing of the model's answer.
    EMPTY_OUTPUT = "empty_output"
    NO_JSON_FOUND = "no_json_found"
    INVALID_DECISION_JSON = "invalid_decision_json"
    UNPARSEABLE_OUTPUT = "unparseable_output"
    REPAIR_FAILED = "repair_failed"
    REPAIR_INVENTED_PRICES = "repair_invented_prices"
    INVALIDATION_UNPARSABLE = "invalidation_unparsable"
    NO_MODEL_OUTPUT = "no_model_output"
    # The cycle and its reasoning modes.
    REASONING_TIMEOUT_EXCEEDED = "reasoning_timeout_exceeded"
    REASONING_EXCEPTION = "reasoning_exception"
    UNKNOWN_REASONING_MODE = "unknown_reasoning_mode"
    SIGNAL_CONSTRUCTION_FAILED = "signal_construction_failed"
    NO_DECISION = "no_decision"
    EXCHANGE_UNAVAILABLE = "exchange_unavailable"
    # The market read during the cycle (a tool call's candles): rez_cli.errors' references.
    DATA_ERROR = "data_error"
    DATA_NOT_FOUND = "data_not_found"
    INVALID_CANDLES = "invalid_candles"
    EXCHANGE_ERROR = "exchange_error"
    SYMBOL_NOT_LISTED = "symbol_not_listed"
    TIMEFRAME_NOT_OFFERED = "timeframe_not_offered"
    # The library: a decision event to vet, a payload handed to the reasoning manager.
    INVALID_EVENT_PAYLOAD = "invalid_event_payload"
    MISSING_DECISION_ID = "missing_decision_id"
    INVALID_DECISION = "invalid_decision"
    INVALID_EVENT_PAYLOAD_TYPE = "invalid_event_payload_type"

    @property
    def words(self) -> str:
        """What the code means, in one short sentence a trader understands."""
        return _WORDS[self]

    @property
    def backtest_kind(self) -> BacktestKind | None:
        """How a backtest takes this hold: ``fatal`` stops it, ``transient`` stops it when it repeats."""
        if self in FATAL:
            return "fatal"
        if self in TRANSIENT:
            return "transient"
        return None

    @property
    def takes_detail(self) -> bool:
        """Whether the error is written as ``code: detail`` rather than as the bare code."""
        return self in _WITH_DETAIL

    def with_detail(self, detail: str) -> str:
        """The error as written for a code that carries its detail: ``reasoning_exception: boom``."""
        return f"{self.value}: {detail}"

    @classmethod
    def of(cls, error: str | None) -> Hold | None:
        """The code an error string names, with or without its detail; None for no known code."""
        if not error:
            return None
        head, separator, _ = error.partition(": ")
        try:
            code = cls(head)
        except ValueError:
            return None
        if bool(separator) != code.takes_detail:
            return None
        return code


# Failures that end a backtest at once: no later cycle can succeed.
FATAL: Final[frozenset[Hold]] = frozenset(
    {Hold.BUDGET_EXCEEDED, Hold.MODEL_AUTH_FAILED, Hold.MODEL_NOT_CONFIGURED}
)
# Failures that end a backtest when they keep coming: the endpoint is down, every cycle would hold.
TRANSIENT: Final[frozenset[Hold]] = frozenset(
    {Hold.MODEL_UNREACHABLE, Hold.MODEL_TIMEOUT, Hold.MODEL_RATE_LIMITED, Hold.REASONING_TIMEOUT_EXCEEDED}
)

_WITH_DETAIL: Final[frozenset[Hold]] = frozenset({Hold.REASONING_EXCEPTION, Hold.UNKNOWN_REASONING_MODE})

_WORDS: Final[dict[Hold, str]] = {
    Hold.ACTION_NOT_ALLOWED: "the profile does not allow this action",
    Hold.NON_FINITE_NUMBER: "a price, the leverage, the confidence, reward/risk or the size was not finite",
    Hold.TRADE_INCOMPLETE: "a trade left out its leverage or its confidence",
    Hold.ENTRY_PRICE_REQUIRED: "a trade gave no entry price",
    Hold.NON_POSITIVE_PRICE: "a price was zero or negative",
    Hold.STOP_LOSS_REQUIRED: "the profile requires a stop loss and the trade had none",
    Hold.TAKE_PROFIT_REQUIRED: "the profile needs a take profit to check reward/risk",
    Hold.TP_NOT_ABOVE_ENTRY: "a buy's take profit was not above its entry",
    Hold.TP_NOT_BELOW_ENTRY: "a sell's take profit was not below its entry",
    Hold.SL_WRONG_SIDE: "the stop loss was on the wrong side of the entry",
    Hold.ENTRY_TOO_FAR_FROM_MARKET: "the entry was further from the last close than the profile allows",
    Hold.TP_TOO_FAR_FROM_MARKET: "the take profit was further from the last close than the profile allows",
    Hold.SL_TOO_FAR_FROM_MARKET: "the stop loss was further from the last close than the profile allows",
    Hold.SL_TOO_CLOSE_TO_ENTRY: "the stop loss was closer to the entry than the profile allows",
    Hold.LEVERAGE_BELOW_ONE: "the leverage was below 1",
    Hold.LEVERAGE_ABOVE_PROFILE: "the leverage was above the profile's maximum",
    Hold.STOP_BEYOND_LIQUIDATION: "the position would be liquidated before its stop loss",
    Hold.REWARD_RISK_BELOW_PROFILE: "reward/risk was below the profile's minimum",
    Hold.NO_POSITION: "a close with no position open",
    Hold.POSITION_OPEN: "a position is already open on this symbol (hold keeps it, close ends it)",
    Hold.MAX_OPEN_POSITIONS: "the account already holds the profile's maximum of open positions",
    Hold.EXPOSURE_LIMIT: "the position would take the account past the profile's total exposure",
    Hold.MODEL_NOT_CONFIGURED: "no model is configured",
    Hold.MODEL_AUTH_FAILED: "the endpoint refused the API key",
    Hold.MODEL_TIMEOUT: "the model did not answer in time",
    Hold.MODEL_RATE_LIMITED: "the endpoint kept rate-limiting after retries",
    Hold.MODEL_UNREACHABLE: "the model endpoint could not be reached",
    Hold.MODEL_BAD_RESPONSE: "the endpoint rejected the request",
    Hold.MODEL_ERROR: "the model call failed",
    Hold.MAX_TURNS_EXCEEDED: "the model kept calling tools and never answered",
    Hold.BUDGET_EXCEEDED: "the next call would have passed --max-cost",
    Hold.EMPTY_OUTPUT: "the model's answer was empty",
    Hold.NO_JSON_FOUND: "the model's answer held no decision JSON",
    Hold.INVALID_DECISION_JSON: "the model's JSON was not a valid decision",
    Hold.UNPARSEABLE_OUTPUT: "the answer could not stand and no repair was recorded",
    Hold.REPAIR_FAILED: "the resilience model could not produce a decision",
    Hold.REPAIR_INVENTED_PRICES: "the resilience model gave prices the model never wrote",
    Hold.INVALIDATION_UNPARSABLE: "a trade's invalidation was not a condition Rez can parse, even repaired",
    Hold.NO_MODEL_OUTPUT: "the journal holds no model output to replay",
    Hold.REASONING_TIMEOUT_EXCEEDED: "the cycle ran out of time",
    Hold.REASONING_EXCEPTION: "the reasoning mode raised an error",
    Hold.UNKNOWN_REASONING_MODE: "no reasoning mode has that name",
    Hold.SIGNAL_CONSTRUCTION_FAILED: "the reasoning mode's output was not a valid signal",
    Hold.NO_DECISION: "the reasoning mode returned no decision",
    Hold.EXCHANGE_UNAVAILABLE: "the exchange could not be reached",
    Hold.DATA_ERROR: "the candles could not be read",
    Hold.DATA_NOT_FOUND: "the data holds no candles for a market or timeframe the cycle needed",
    Hold.INVALID_CANDLES: "the candles broke a rule (order, duplicates, non-finite prices)",
    Hold.EXCHANGE_ERROR: "the exchange answered with an error",
    Hold.SYMBOL_NOT_LISTED: "the exchange does not list the market",
    Hold.TIMEFRAME_NOT_OFFERED: "the exchange does not offer a timeframe the cycle asked for",
    Hold.INVALID_EVENT_PAYLOAD: "the decision event's payload was not a dict",
    Hold.MISSING_DECISION_ID: "the decision event's payload had no id",
    Hold.INVALID_DECISION: "the decision event's fields make no decision",
    Hold.INVALID_EVENT_PAYLOAD_TYPE: "the payload handed to the reasoning manager was not a dict",
}
