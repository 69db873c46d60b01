"""Many windows at once give, row for row, the bits the one-window numpy functions give each window."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from rez_cli.indicators import fast, specs
from rez_cli.indicators.params import Length14Params, LengthParams, RsiParams
from tests.support.candles import make_candles

CASES: list[tuple[Callable[..., fast.FastOutputs], Callable[..., fast.WindowsOutputs], Any]] = [
    (fast.ema, fast.ema_windows, LengthParams),
    (fast.rsi, fast.rsi_windows, RsiParams),
    (fast.atr, fast.atr_windows, Length14Params),
]


def _random_walk() -> dict[str, fast.FloatArray]:
    """Noise with the stretches that take the recursions' other branches: flat closes, zero ranges."""
    rng = np.random.default_rng(7)
    close = 30_000 * np.exp(np.cumsum(rng.normal(0, 0.01, 1_500)))
    close[400:460] = close[400]
    high = close * (1 + rng.uniform(0, 0.01, close.size))
    low = close * (1 - rng.uniform(0, 0.01, close.size))
    high[700:720] = low[700:720] = close[700:720]
    return {"close": close, "high": high, "low": low}


def _real_looking() -> dict[str, fast.FloatArray]:
    frame = make_candles(1_500, seed=12)
    return {label: frame[label].to_numpy(dtype="float64") for label in ("close", "high", "low")}


SERIES = {"random walk": _random_walk, "real-looking": _real_looking}


def _bits(values: np.ndarray[Any, np.dtype[np.float64]]) -> np.ndarray[Any, np.dtype[np.int64]]:
    # NaN == NaN here, and 0.0 != -0.0: the same bits, not merely equal values.
    return values.view(np.int64)


@pytest.mark.parametrize("series", SERIES)
@pytest.mark.parametrize(("one", "windowed", "params"), CASES, ids=[case[0].__name__ for case in CASES])
@pytest.mark.parametrize("length", [2, 14, 20, 50])
@pytest.mark.parametrize(("size", "stride"), [(300, 1), (300, 4), (60, 7), (15, 1), (14, 2), (13, 1), (1, 3)])
def test_every_window_is_the_one_window_result_bit_for_bit(
    series: str,
    one: Callable[..., fast.FastOutputs],
    windowed: Callable[..., fast.WindowsOutputs],
    params: Any,
    length: int,
    size: int,
    stride: int,
) -> None:
    columns = SERIES[series]()
    model = params(length=length)
    rows = windowed(columns.__getitem__, model, size, stride)
    count = (len(columns["close"]) - size) // stride + 1
    for output, block in rows.items():
        assert block.shape == (count, size)
        for row in range(count):
            cut = {label: values[row * stride : row * stride + size] for label, values in columns.items()}
            alone = one(cut.__getitem__, model)[output]
            assert np.array_equal(_bits(block[row]), _bits(alone)), (output, row)


def test_every_indicator_with_a_numpy_version_has_a_windowed_one() -> None:
    with_numpy = [spec.name for spec in specs.INDICATORS.values() if spec.fast is not None]
    assert with_numpy
    assert [name for name in with_numpy if specs.INDICATORS[name].fast not in fast.WINDOWED] == []
