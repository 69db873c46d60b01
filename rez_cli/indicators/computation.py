"""Computing an allowed indicator over a candle frame, by its numpy version or by pandas-ta."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel

from rez_cli.indicators import runners, specs
from rez_cli.indicators.fast import Column, FloatArray


def compute(
    frame: pd.DataFrame,
    name: str,
    params: Mapping[str, Any] | BaseModel | None = None,
    *,
    fast: bool = True,
) -> pd.DataFrame:
    """Compute an allowed indicator over a candle frame.

    Args:
        frame: a validated candle frame (see ``rez_cli.market.candles``), oldest candle first.
        name: an indicator of ``INDICATORS``.
        params: its parameters, as for ``validate_params``.
        fast: use the indicator's numpy version where it has one (the same values); False always
            runs pandas-ta, which is what the numpy versions are tested against.

    Returns:
        One row per candle, indexed by the candle's open time (``timestamp``, int ms), one float
        column per output (``spec.outputs``, e.g. ``macd, signal, hist``); NaN where the history is
        too short. ``attrs`` holds ``indicator``, ``params`` and ``units`` (column -> ``Unit``) for
        ``summarize``.

    Raises:
        IndicatorError: as ``validate_params``.
    """
    spec = specs.spec_for(name)
    model = specs.validate_params(spec.name, params)

    columns: dict[str, FloatArray] = {}

    def column(label: str) -> FloatArray:
        # Each column out of pandas once: the finiteness check and the indicator both read it.
        if label not in columns:
            columns[label] = frame[label].to_numpy(dtype="float64")
        return columns[label]

    outputs = output_arrays(spec, model, frame, column if fast else None, finite=None)
    return result_frame(spec, model, outputs, open_index(frame["timestamp"].to_numpy(dtype="int64")))


def output_arrays(
    spec: specs.IndicatorSpec[Any],
    model: BaseModel,
    frame: pd.DataFrame,
    column: Column | None,
    *,
    finite: bool | None,
) -> dict[str, FloatArray]:
    """Every output of ``spec`` over ``frame`` as float arrays.

    The numpy version when ``column`` is given and the inputs are finite: ``finite`` says whether
    the whole frame is (None: check the indicator's inputs here).
    """
    if column is not None and spec.fast is not None:
        if finite is None:
            finite = all(bool(np.isfinite(column(name)).all()) for name in spec.fast_inputs)
        if finite:
            return spec.fast(column, model)
    if not len(frame):
        # pandas-ta cannot take an empty frame (psar reads the first candle).
        return {output: np.empty(0) for output in spec.outputs}
    series = spec.run(runners.library(), frame.reset_index(drop=True), model)
    return {output: np.asarray(series[output], dtype="float64") for output in spec.outputs}


def open_index(opens: np.ndarray[Any, np.dtype[np.int64]]) -> pd.Index:
    """A result's index: the candles' open times, named ``timestamp``."""
    index: pd.Index = pd.Index(opens, name="timestamp")
    return index


@functools.cache
def _output_labels(name: str) -> pd.Index:
    # Immutable, so one per indicator serves every result.
    return pd.Index(list(specs.INDICATORS[name].outputs))


def result_frame(
    spec: specs.IndicatorSpec[Any], model: BaseModel, outputs: Mapping[str, FloatArray], index: pd.Index
) -> pd.DataFrame:
    """The DataFrame ``compute`` returns, from the outputs of ``spec`` as arrays."""
    # One 2-D block built at once: a dict of columns costs pandas several times as much.
    stacked = np.empty((len(spec.outputs), len(index)))
    for row, output in enumerate(spec.outputs):
        stacked[row] = outputs[output]
    result = pd.DataFrame(stacked.T, index=index, columns=_output_labels(spec.name), copy=False)
    result.attrs = {"indicator": spec.name, "params": model.model_dump(), "units": dict(spec.outputs)}
    return result
