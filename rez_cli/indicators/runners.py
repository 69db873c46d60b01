"""The pandas-ta bridge: one runner per allowed indicator, over ``pandas_ta_classic``.

This is the only module that imports ``pandas_ta_classic``, and it does so lazily (``library``), so
``rez --help`` and every command that computes no indicator never pay for it. The library is always
asked for its own (pure pandas) implementation with ``talib=False``: TA-Lib is a test-only oracle,
and every indicator both implement is checked against it to 1e-6 (``tests/indicators``).

Each runner takes the library, a RangeIndex candle frame and the indicator's parameters, and returns
one float series per output, NaN where pandas-ta has no value yet. Where pandas-ta and TA-Lib differ
(a warm-up row early, a seed), the runner says which and why.
"""

from __future__ import annotations

import functools
import warnings
from typing import Any

import numpy as np
import pandas as pd

from rez_cli.indicators.params import (
    BbandsParams,
    DonchianParams,
    IchimokuParams,
    KcParams,
    Length14Params,
    LengthParams,
    MacdParams,
    NoParams,
    PsarParams,
    RsiParams,
    StochParams,
    StochRsiParams,
    SupertrendParams,
    VwapParams,
)

Outputs = dict[str, "pd.Series[float]"]


@functools.cache
def library() -> Any:
    """``pandas_ta_classic``, imported on the first call only."""
    with warnings.catch_warnings():
        # Building its default Strategy at import calls Timestamp.dayofyear, which pandas 3
        # deprecates (Pandas4Warning); pytest runs with warnings as errors.
        warnings.filterwarnings("ignore", message=r".*dayofyear is deprecated", category=DeprecationWarning)
        import pandas_ta_classic

    return pandas_ta_classic


def _pick(result: Any, prefix: str, size: int) -> pd.Series[float]:
    """The one column of a pandas-ta frame whose name starts with ``prefix`` (NaN if it gave up)."""
    if result is None:
        # pandas-ta returns None when there are fewer candles than the window.
        return pd.Series(np.full(size, np.nan))
    matches = [column for column in result.columns if str(column).startswith(prefix)]
    if len(matches) != 1:
        raise RuntimeError(f"pandas-ta output {list(result.columns)} has no single {prefix!r} column")
    return _as_float(result[matches[0]], size)


def _as_float(series: Any, size: int) -> pd.Series[float]:
    if series is None:
        return pd.Series(np.full(size, np.nan))
    return pd.Series(np.asarray(series, dtype="float64"))


def _hlc(frame: pd.DataFrame) -> tuple[pd.Series[float], pd.Series[float], pd.Series[float]]:
    return frame["high"], frame["low"], frame["close"]


def ema(ta: Any, frame: pd.DataFrame, p: LengthParams) -> Outputs:
    return {"ema": _as_float(ta.ema(frame["close"], length=p.length, talib=False), len(frame))}


def sma(ta: Any, frame: pd.DataFrame, p: LengthParams) -> Outputs:
    return {"sma": _as_float(ta.sma(frame["close"], length=p.length, talib=False), len(frame))}


def wma(ta: Any, frame: pd.DataFrame, p: LengthParams) -> Outputs:
    return {"wma": _as_float(ta.wma(frame["close"], length=p.length, talib=False), len(frame))}


def rsi(ta: Any, frame: pd.DataFrame, p: RsiParams) -> Outputs:
    return {"rsi": _as_float(ta.rsi(frame["close"], length=p.length, talib=False), len(frame))}


def macd(ta: Any, frame: pd.DataFrame, p: MacdParams) -> Outputs:
    # The MACD line starts at slow - 1, TA-Lib's at slow + signal - 2 with a later-seeded fast EMA:
    # the two agree once the seeds have decayed, which warmup_bars waits for.
    out = ta.macd(frame["close"], fast=p.fast, slow=p.slow, signal=p.signal, talib=False)
    n = len(frame)
    return {
        "macd": _pick(out, "MACD_", n),
        "signal": _pick(out, "MACDs_", n),
        "hist": _pick(out, "MACDh_", n),
    }


def bbands(ta: Any, frame: pd.DataFrame, p: BbandsParams) -> Outputs:
    # ddof=0: population standard deviation, as Bollinger and TA-Lib define the bands.
    out = ta.bbands(frame["close"], length=p.length, std=p.std, ddof=0, mamode="sma", talib=False)
    n = len(frame)
    return {
        "upper": _pick(out, "BBU_", n),
        "middle": _pick(out, "BBM_", n),
        "lower": _pick(out, "BBL_", n),
        "bandwidth": _pick(out, "BBB_", n),
        "percent_b": _pick(out, "BBP_", n),
    }


def atr(ta: Any, frame: pd.DataFrame, p: Length14Params) -> Outputs:
    out = ta.atr(*_hlc(frame), length=p.length, mamode="rma", talib=False)
    return {"atr": _as_float(out, len(frame))}


def adx(ta: Any, frame: pd.DataFrame, p: Length14Params) -> Outputs:
    out = ta.adx(*_hlc(frame), length=p.length, lensig=p.length, mamode="rma", talib=False)
    n = len(frame)
    return {"adx": _pick(out, "ADX_", n), "plus_di": _pick(out, "DMP_", n), "minus_di": _pick(out, "DMN_", n)}


def stoch(ta: Any, frame: pd.DataFrame, p: StochParams) -> Outputs:
    # %K is valid from k + smooth_k - 2, two candles before TA-Lib, which starts %K with %D; same values.
    out = ta.stoch(*_hlc(frame), k=p.k, d=p.d, smooth_k=p.smooth_k, mamode="sma", talib=False)
    n = len(frame)
    return {"k": _pick(out, "STOCHk_", n), "d": _pick(out, "STOCHd_", n)}


def stochrsi(ta: Any, frame: pd.DataFrame, p: StochRsiParams) -> Outputs:
    # k smooths %K (TradingView's convention); with k=1 the result is TA-Lib's STOCHRSI fastk/fastd.
    out = ta.stochrsi(
        frame["close"], length=p.length, rsi_length=p.rsi_length, k=p.k, d=p.d, mamode="sma", talib=False
    )
    n = len(frame)
    return {"k": _pick(out, "STOCHRSIk_", n), "d": _pick(out, "STOCHRSId_", n)}


def cci(ta: Any, frame: pd.DataFrame, p: Length14Params) -> Outputs:
    return {"cci": _as_float(ta.cci(*_hlc(frame), length=p.length, talib=False), len(frame))}


def mfi(ta: Any, frame: pd.DataFrame, p: Length14Params) -> Outputs:
    mfi = _as_float(ta.mfi(*_hlc(frame), frame["volume"], length=p.length, talib=False), len(frame))
    # pandas-ta reports a value at row length - 1 from only length - 1 money flows (the first candle
    # has no previous typical price); TA-Lib, rightly, starts one candle later.
    mfi.iloc[: p.length] = np.nan
    return {"mfi": mfi}


def obv(ta: Any, frame: pd.DataFrame, p: NoParams) -> Outputs:
    return {"obv": _as_float(ta.obv(frame["close"], frame["volume"], talib=False), len(frame))}


def vwap(ta: Any, frame: pd.DataFrame, p: VwapParams) -> Outputs:
    # pandas-ta groups by calendar period of a DatetimeIndex; naive UTC times give UTC sessions
    # (a tz-aware index would make to_period warn that it drops the zone).
    when = pd.DatetimeIndex(pd.to_datetime(frame["timestamp"].to_numpy(dtype="int64"), unit="ms"))
    columns = {
        name: pd.Series(frame[name].to_numpy(), index=when) for name in ("high", "low", "close", "volume")
    }
    out = ta.vwap(columns["high"], columns["low"], columns["close"], columns["volume"], anchor=p.anchor)
    vwap = _as_float(out, len(frame))
    if len(when):
        sessions = when.to_period(p.anchor)
        if when[0] != sessions[0].start_time:
            # The first session began before the first candle: its VWAP would miss that volume.
            vwap[np.asarray(sessions == sessions[0])] = np.nan
    return {"vwap": vwap}


def roc(ta: Any, frame: pd.DataFrame, p: LengthParams) -> Outputs:
    return {"roc": _as_float(ta.roc(frame["close"], length=p.length, talib=False), len(frame))}


def willr(ta: Any, frame: pd.DataFrame, p: Length14Params) -> Outputs:
    return {"willr": _as_float(ta.willr(*_hlc(frame), length=p.length, talib=False), len(frame))}


def kc(ta: Any, frame: pd.DataFrame, p: KcParams) -> Outputs:
    out = ta.kc(*_hlc(frame), length=p.length, scalar=p.scalar, mamode="ema")
    n = len(frame)
    return {"upper": _pick(out, "KCU", n), "middle": _pick(out, "KCB", n), "lower": _pick(out, "KCL", n)}


def donchian(ta: Any, frame: pd.DataFrame, p: DonchianParams) -> Outputs:
    out = ta.donchian(frame["high"], frame["low"], lower_length=p.lower_length, upper_length=p.upper_length)
    n = len(frame)
    return {"upper": _pick(out, "DCU_", n), "middle": _pick(out, "DCM_", n), "lower": _pick(out, "DCL_", n)}


def supertrend(ta: Any, frame: pd.DataFrame, p: SupertrendParams) -> Outputs:
    out = ta.supertrend(*_hlc(frame), length=p.length, multiplier=p.multiplier)
    n = len(frame)
    long, short = _pick(out, "SUPERTl_", n), _pick(out, "SUPERTs_", n)
    # The combined SUPERT_ column holds 0.0 on the first row and a direction of 1 before the ATR
    # exists; rebuilding both from the long/short sides keeps those rows NaN.
    return {"supertrend": long.fillna(short), "direction": _direction(long, short)}


def psar(ta: Any, frame: pd.DataFrame, p: PsarParams) -> Outputs:
    # Without close, pandas-ta starts the SAR at the first low/high as TA-Lib's SAR does; given a
    # close it would start from that close instead and differ until the first reversal.
    out = ta.psar(frame["high"], frame["low"], af0=p.af0, af=p.af0, max_af=p.max_af, talib=False)
    n = len(frame)
    long, short = _pick(out, "PSARl_", n), _pick(out, "PSARs_", n)
    return {"psar": long.fillna(short), "direction": _direction(long, short)}


def _direction(long: pd.Series[float], short: pd.Series[float]) -> pd.Series[float]:
    return pd.Series(np.where(long.notna(), 1.0, np.where(short.notna(), -1.0, np.nan)))


def ichimoku(ta: Any, frame: pd.DataFrame, p: IchimokuParams) -> Outputs:
    # as_dataframe=True: only the candles' own rows (the projected cloud is a separate frame, and
    # the tuple return is deprecated). include_chikou=False: the chikou span at row t is the close
    # of row t + kijun. Span A/B at row t are computed from candles up to t - kijun: known at t.
    out = ta.ichimoku(
        *_hlc(frame), tenkan=p.tenkan, kijun=p.kijun, senkou=p.senkou, include_chikou=False, as_dataframe=True
    )
    n = len(frame)
    return {
        "tenkan": _pick(out, "ITS_", n),
        "kijun": _pick(out, "IKS_", n),
        "span_a": _pick(out, "ISA_", n),
        "span_b": _pick(out, "ISB_", n),
    }
