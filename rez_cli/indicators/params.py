"""What an indicator may be given: one strict pydantic model per shape of parameters.

Parameters arrive from a language model, so every model rejects unknown keys, bounds every length,
and every error reads as a short instruction the model can act on (``parse``).
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from rez_cli.errors import UsageError


class IndicatorError(UsageError):
    """An unknown indicator or parameters it cannot take; the message tells the model what would work."""

    reference = "indicator_error"


Length = Annotated[int, Field(ge=2, le=500)]
Smoothing = Annotated[int, Field(ge=1, le=100)]
Multiplier = Annotated[float, Field(ge=0.1, le=10.0)]


class Params(BaseModel):
    """Every indicator's parameters: unknown keys rejected, frozen (so a model can key a cache)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class LengthParams(Params):
    length: Length = 10


class RsiParams(Params):
    length: Length = 14


class MacdParams(Params):
    fast: Length = 12
    slow: Length = 26
    signal: Length = 9

    @model_validator(mode="after")
    def _fast_below_slow(self) -> MacdParams:
        # pandas-ta swaps them silently; a model that mixed them up should hear about it.
        if self.fast >= self.slow:
            raise ValueError(f"fast ({self.fast}) must be below slow ({self.slow})")
        return self


class BbandsParams(Params):
    # Bollinger's own 20/2 rather than pandas-ta's and TA-Lib's default length of 5.
    length: Length = 20
    std: Multiplier = 2.0


class Length14Params(Params):
    length: Length = 14


class StochParams(Params):
    k: Length = 14
    d: Smoothing = 3
    smooth_k: Smoothing = 3


class StochRsiParams(Params):
    length: Length = 14
    rsi_length: Length = 14
    k: Smoothing = 3
    d: Smoothing = 3


class NoParams(Params):
    pass


class VwapParams(Params):
    anchor: Literal["D", "W", "M"] = "D"


class KcParams(Params):
    length: Length = 20
    scalar: Multiplier = 2.0


class DonchianParams(Params):
    lower_length: Length = 20
    upper_length: Length = 20


class SupertrendParams(Params):
    length: Length = 7
    multiplier: Multiplier = 3.0


class PsarParams(Params):
    af0: Annotated[float, Field(ge=0.001, le=0.5)] = 0.02
    max_af: Annotated[float, Field(ge=0.01, le=1.0)] = 0.2

    @model_validator(mode="after")
    def _start_below_max(self) -> PsarParams:
        if self.af0 > self.max_af:
            raise ValueError(f"af0 ({self.af0}) must not exceed max_af ({self.max_af})")
        return self


class IchimokuParams(Params):
    tenkan: Length = 9
    kijun: Length = 26
    senkou: Length = 52


def param_help(params: type[Params]) -> str:
    """``length=14 (2..500), anchor='D' (D|W|M)``: what a model may pass, with defaults."""
    parts = []
    for field_name, schema in params.model_json_schema().get("properties", {}).items():
        if "enum" in schema:
            span = "|".join(str(value) for value in schema["enum"])
        else:
            span = f"{schema.get('minimum')}..{schema.get('maximum')}"
        parts.append(f"{field_name}={schema.get('default')!r} ({span})")
    return ", ".join(parts)


def _describe_error(error: Mapping[str, Any], fields: list[str]) -> str:
    where = ".".join(str(part) for part in error.get("loc", ()))
    context = error.get("ctx") or {}
    kind = error.get("type", "")
    got = f" (got {error['input']!r})" if "input" in error and kind != "extra_forbidden" else ""
    if kind == "extra_forbidden":
        close = difflib.get_close_matches(where, fields, n=1, cutoff=0.6)
        return f"unknown parameter {where!r}" + (f" (did you mean {close[0]!r}?)" if close else "")
    if kind in ("greater_than_equal", "greater_than"):
        return f"{where} must be at least {context.get('ge', context.get('gt'))}{got}"
    if kind in ("less_than_equal", "less_than"):
        return f"{where} must be at most {context.get('le', context.get('lt'))}{got}"
    if kind.startswith("int_"):
        return f"{where} must be a whole number{got}"
    if kind.startswith("float_"):
        return f"{where} must be a number{got}"
    if kind == "literal_error":
        return f"{where} must be one of {context.get('expected')}{got}"
    # Cross-field checks (model validators) already word their own message.
    message = str(error.get("msg", "invalid value")).removeprefix("Value error, ")
    return f"{where}: {message}{got}" if where else message


P = TypeVar("P", bound=Params)


def parse(name: str, params_type: type[P], params: Mapping[str, Any] | None) -> P:
    """``params`` as ``params_type``, defaults filled in.

    Raises:
        IndicatorError: a parameter is unknown, of the wrong type or out of bounds; the message names
            it, its bounds and everything ``name`` accepts.
    """
    try:
        return params_type.model_validate(dict(params or {}))
    except ValidationError as error:
        fields = list(params_type.model_fields)
        problems = "; ".join(_describe_error(detail, fields) for detail in error.errors())
        accepted = param_help(params_type) or "no parameters"
        raise IndicatorError(f"{name}: {problems}. Accepted: {accepted}") from None
