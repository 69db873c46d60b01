"""The allow-list: every indicator a model may ask for, what it is told of each, and what comes back.

Three rules hold for every indicator here:

- **No look-ahead.** The value at a candle uses only that candle and earlier ones. Ichimoku's chikou
  span (the close plotted ``kijun`` candles back) and its projected cloud are therefore left out.
- **Warm-up stays visible.** Rows without enough history are NaN, never filled or dropped.
- **Warm-up is honest.** ``warmup_bars`` counts the candles after which a value no longer depends on
  where the history started: rolling windows are exact once full; recursive smoothings (EMA, Wilder's
  RMA) count as settled when the weight left on their seed is below 0.1%.

Everything that looks an indicator up by name reads ``INDICATORS`` here, when it is called.
"""

from __future__ import annotations

import difflib
import math
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Generic

import pandas as pd
from pydantic import BaseModel

from rez_cli.indicators import fast, runners
from rez_cli.indicators.params import (
    BbandsParams,
    DonchianParams,
    IchimokuParams,
    IndicatorError,
    KcParams,
    Length14Params,
    LengthParams,
    MacdParams,
    NoParams,
    P,
    PsarParams,
    RsiParams,
    StochParams,
    StochRsiParams,
    SupertrendParams,
    VwapParams,
    param_help,
    parse,
)

DAY_MS = 86_400_000


class Unit(StrEnum):
    """What an output measures, which decides how it is rounded for display."""

    PRICE = "price"
    """Quote-currency prices or price distances: rounded to the instrument's precision."""
    OSCILLATOR = "oscillator"
    """Bounded scores, percentages and ratios: 2 decimals."""
    VOLUME = "volume"
    """Base-currency volume: 6 significant digits of the largest value shown."""
    DIRECTION = "direction"
    """+1 (up-trend / long side) or -1 (down-trend / short side)."""


@dataclass(frozen=True)
class IndicatorSpec(Generic[P]):
    """One allowed indicator: what the model is told, what it may pass, what comes back."""

    name: str
    description: str
    """One line for the model's tool description."""
    params: type[P]
    outputs: Mapping[str, Unit]
    """Output columns in order, each with its unit."""
    run: Callable[[Any, pd.DataFrame, P], runners.Outputs]
    """Calls the library on a RangeIndex candle frame; returns one series per output."""
    warmup: Callable[[P], int]
    fast: Callable[[fast.Column, P], fast.FastOutputs] | None = None
    """The same values as ``run`` without the library (numpy), from the frame's columns, when every
    value of ``fast_inputs`` is finite."""
    fast_inputs: tuple[str, ...] = ()

    @property
    def in_price_units(self) -> bool:
        """Whether every output is a price (overlays such as EMA or bands), as opposed to a score."""
        return all(unit is Unit.PRICE for unit in self.outputs.values())


def _settle_ema(length: int) -> int:
    # Seed weight (1 - 2/(n+1))**k falls below 0.1% after k ≈ 3.45 (n + 1).
    return math.ceil(3.5 * (length + 1))


def _settle_wilder(length: int) -> int:
    # Seed weight (1 - 1/n)**k falls below 0.1% after k ≈ 6.9 n.
    return 7 * length


def _spec(
    name: str,
    description: str,
    params: type[P],
    outputs: Mapping[str, Unit],
    run: Callable[[Any, pd.DataFrame, P], runners.Outputs],
    warmup: Callable[[P], int],
    fast: Callable[[fast.Column, P], fast.FastOutputs] | None = None,
    fast_inputs: tuple[str, ...] = (),
) -> IndicatorSpec[P]:
    return IndicatorSpec(name, description, params, outputs, run, warmup, fast, fast_inputs)


_PRICE, _OSC = Unit.PRICE, Unit.OSCILLATOR

_SPECS: tuple[IndicatorSpec[Any], ...] = (
    _spec(
        "ema",
        "Exponential moving average of close (trend, price units).",
        LengthParams,
        {"ema": _PRICE},
        runners.ema,
        lambda p: p.length - 1 + _settle_ema(p.length),
        fast.ema,
        ("close",),
    ),
    _spec(
        "sma",
        "Simple moving average of close (trend, price units).",
        LengthParams,
        {"sma": _PRICE},
        runners.sma,
        lambda p: p.length - 1,
    ),
    _spec(
        "wma",
        "Linearly weighted moving average of close, recent candles weigh most.",
        LengthParams,
        {"wma": _PRICE},
        runners.wma,
        lambda p: p.length - 1,
    ),
    _spec(
        "rsi",
        "Relative Strength Index 0-100 (Wilder); above 70 overbought, below 30 oversold.",
        RsiParams,
        {"rsi": _OSC},
        runners.rsi,
        lambda p: p.length + _settle_wilder(p.length),
        fast.rsi,
        ("close",),
    ),
    _spec(
        "macd",
        "MACD: fast EMA minus slow EMA, its signal EMA, and hist = macd - signal (price units).",
        MacdParams,
        {"macd": _PRICE, "signal": _PRICE, "hist": _PRICE},
        runners.macd,
        lambda p: p.slow - 1 + _settle_ema(p.slow) + p.signal - 1 + _settle_ema(p.signal),
    ),
    _spec(
        "bbands",
        "Bollinger Bands: SMA +/- std deviations; bandwidth % of middle; percent_b 0 = lower, 1 = upper.",
        BbandsParams,
        {"upper": _PRICE, "middle": _PRICE, "lower": _PRICE, "bandwidth": _OSC, "percent_b": _OSC},
        runners.bbands,
        lambda p: p.length - 1,
    ),
    _spec(
        "atr",
        "Average True Range (Wilder): typical candle range in price units, e.g. for stop distance.",
        Length14Params,
        {"atr": _PRICE},
        runners.atr,
        lambda p: p.length + _settle_wilder(p.length),
        fast.atr,
        ("high", "low", "close"),
    ),
    _spec(
        "adx",
        "ADX trend strength 0-100 (above 25 trending) with +DI/-DI for its direction.",
        Length14Params,
        {"adx": _OSC, "plus_di": _OSC, "minus_di": _OSC},
        runners.adx,
        lambda p: 2 * p.length + _settle_wilder(p.length),
    ),
    _spec(
        "stoch",
        "Slow stochastic %K/%D 0-100: close within the k-candle high-low range; 80/20 extremes.",
        StochParams,
        {"k": _OSC, "d": _OSC},
        runners.stoch,
        lambda p: p.k + p.smooth_k + p.d - 3,
    ),
    _spec(
        "stochrsi",
        "Stochastic RSI 0-100: RSI within its own length-candle range; %K smoothed by k, %D by d.",
        StochRsiParams,
        {"k": _OSC, "d": _OSC},
        runners.stochrsi,
        # Normalising RSI over a short window magnifies what is left of its seed: twice the settle.
        lambda p: p.rsi_length + 2 * _settle_wilder(p.rsi_length) + p.length + p.k + p.d - 3,
    ),
    _spec(
        "cci",
        "Commodity Channel Index: typical price vs its SMA in mean deviations; beyond +/-100 is extreme.",
        Length14Params,
        {"cci": _OSC},
        runners.cci,
        lambda p: p.length - 1,
    ),
    _spec(
        "mfi",
        "Money Flow Index 0-100: volume-weighted RSI; above 80 overbought, below 20 oversold.",
        Length14Params,
        {"mfi": _OSC},
        runners.mfi,
        lambda p: p.length,
    ),
    _spec(
        "obv",
        "On-Balance Volume: running sum of signed volume; its level is arbitrary, read its slope.",
        NoParams,
        {"obv": Unit.VOLUME},
        runners.obv,
        lambda p: 0,
    ),
    _spec(
        "vwap",
        "Volume-weighted average price, restarting each UTC day (anchor D), week (W) or month (M).",
        VwapParams,
        {"vwap": _PRICE},
        runners.vwap,
        # The leading partial session is masked in compute; warmup_bars adds the session length.
        lambda p: 0,
    ),
    _spec(
        "roc",
        "Rate of change: % change of close over length candles.",
        LengthParams,
        {"roc": _OSC},
        runners.roc,
        lambda p: p.length,
    ),
    _spec(
        "willr",
        "Williams %R -100..0: above -20 overbought, below -80 oversold.",
        Length14Params,
        {"willr": _OSC},
        runners.willr,
        lambda p: p.length - 1,
    ),
    _spec(
        "kc",
        "Keltner Channels: EMA of close +/- scalar x EMA of true range.",
        KcParams,
        {"upper": _PRICE, "middle": _PRICE, "lower": _PRICE},
        runners.kc,
        lambda p: p.length + _settle_ema(p.length),
    ),
    _spec(
        "donchian",
        "Donchian channel: highest high, lowest low over the lengths, and their midpoint.",
        DonchianParams,
        {"upper": _PRICE, "middle": _PRICE, "lower": _PRICE},
        runners.donchian,
        lambda p: max(p.lower_length, p.upper_length) - 1,
    ),
    _spec(
        "supertrend",
        "Supertrend: ATR trailing stop line; direction 1 = up-trend (line below price), -1 = down-trend.",
        SupertrendParams,
        {"supertrend": _PRICE, "direction": Unit.DIRECTION},
        runners.supertrend,
        # The line ratchets with the trend, so a different start is forgotten at the next flip;
        # ATR's settle is the longer of the two.
        lambda p: p.length + _settle_wilder(p.length),
    ),
    _spec(
        "psar",
        "Parabolic SAR stop-and-reverse level; direction 1 = below price (long), -1 = above (short).",
        PsarParams,
        {"psar": _PRICE, "direction": Unit.DIRECTION},
        runners.psar,
        # Path-dependent: histories started at different candles agree after a few reversals.
        lambda p: 100,
    ),
    _spec(
        "ichimoku",
        "Ichimoku: tenkan, kijun, and the cloud (span_a, span_b) under each candle; no chikou.",
        IchimokuParams,
        {"tenkan": _PRICE, "kijun": _PRICE, "span_a": _PRICE, "span_b": _PRICE},
        runners.ichimoku,
        lambda p: max(p.tenkan, p.kijun, p.senkou) - 1 + p.kijun,
    ),
)

INDICATORS: Mapping[str, IndicatorSpec[Any]] = types.MappingProxyType({spec.name: spec for spec in _SPECS})
"""The allow-list, in the order the model is shown it."""


def spec_for(name: str) -> IndicatorSpec[Any]:
    """The allowed indicator ``name`` (case and surrounding spaces ignored).

    Raises:
        IndicatorError: not allowed; the message suggests close names and lists the allowed ones.
    """
    key = name.strip().lower() if isinstance(name, str) else name
    spec = INDICATORS.get(key)
    if spec is not None:
        return spec
    close = difflib.get_close_matches(str(key), list(INDICATORS), n=3, cutoff=0.6)
    guess = f" (did you mean {' or '.join(repr(match) for match in close)}?)" if close else ""
    raise IndicatorError(f"unknown indicator {name!r}{guess}. Allowed: {', '.join(sorted(INDICATORS))}")


def validate_params(name: str, params: Mapping[str, Any] | BaseModel | None) -> BaseModel:
    """Check an indicator's parameters and fill in its defaults.

    Args:
        name: an indicator of ``INDICATORS`` (case and surrounding spaces ignored).
        params: the parameters as the model sent them; ``None`` or ``{}`` for all defaults. An
            already-validated parameter model of the indicator is returned as it is.

    Returns:
        The indicator's parameter model (frozen, every field set).

    Raises:
        IndicatorError: the indicator is not allowed, or a parameter is unknown, of the wrong
            type or out of bounds; the message names it, its bounds and what the indicator accepts.
    """
    spec = spec_for(name)
    if isinstance(params, BaseModel):
        if type(params) is spec.params:
            return params
        params = params.model_dump()
    if params is not None and not isinstance(params, Mapping):
        raise IndicatorError(f"{spec.name}: params must be an object such as {{}}, got {params!r}")
    model: BaseModel = parse(spec.name, spec.params, params)
    return model


def label(name: str, params: Mapping[str, Any] | BaseModel | None = None) -> str:
    """The call as a model would read it, every parameter shown: ``macd(fast=12, slow=26, signal=9)``.

    Raises:
        IndicatorError: as ``validate_params``.
    """
    spec = spec_for(name)
    model = validate_params(spec.name, params)
    arguments = ", ".join(f"{key}={value!r}" for key, value in model.model_dump().items())
    return f"{spec.name}({arguments})"


def catalog() -> str:
    """One line per allowed indicator with its parameters and defaults, for the model's instructions."""
    return "\n".join(
        f"{spec.name}({param_help(spec.params)}): {spec.description}" for spec in INDICATORS.values()
    )


def warmup_bars(
    name: str, params: Mapping[str, Any] | BaseModel | None = None, *, timeframe_ms: int | None = None
) -> int:
    """How many candles come before the first value that does not depend on where the history starts.

    Fetch ``warmup_bars(...) + lookback`` candles to get ``lookback`` reliable values.

    Args:
        name: an indicator of ``INDICATORS``.
        params: its parameters, as for ``validate_params``.
        timeframe_ms: the candle interval; only ``vwap`` needs it, to cover one whole session
            (without it, ``vwap`` counts 0 and ``compute`` masks the partial first session).

    Raises:
        IndicatorError: as ``validate_params``.
    """
    spec = spec_for(name)
    model = validate_params(spec.name, params)
    bars = int(spec.warmup(model))
    if isinstance(model, VwapParams) and timeframe_ms:
        session_ms = {"D": DAY_MS, "W": 7 * DAY_MS, "M": 31 * DAY_MS}[model.anchor]
        bars += math.ceil(session_ms / timeframe_ms)
    return bars
