"""``IndicatorMemo``: indicator results remembered by the window of candles they came from."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import pandas as pd
from pydantic import BaseModel

from rez_cli.indicators import fast, specs
from rez_cli.indicators.computation import open_index, output_arrays, result_frame
from rez_cli.indicators.fast import FloatArray
from rez_cli.indicators.summary import rounded_rows, table_text

Rows = np.ndarray[tuple[int, int], np.dtype[np.float64]]


@dataclass
class _Window:
    """One candle frame as the memo knows it: its numbers, taken out of pandas once."""

    frame: pd.DataFrame  # held so that its id() is not reused while the window is remembered
    array: Rows | None = None
    history: tuple[Rows, int] | None = None
    """The array of a whole history this window's rows were cut from, and the first of them."""
    finite: bool | None = None
    span: tuple[Hashable, ...] | None = None
    index: pd.Index | None = None


@dataclass
class _Entry:
    outputs: dict[str, FloatArray]
    spec: specs.IndicatorSpec[Any]
    model: BaseModel
    result: pd.DataFrame | None = None


@dataclass
class _Block:
    """One indicator of ``count`` windows of ``size`` rows of ``history``, ending ``stride`` rows apart."""

    history: Rows
    first_end: int
    stride: int
    count: int
    outputs: fast.WindowsOutputs

    def row(self, end: int) -> int | None:
        """Which of the block's windows ends at row ``end`` (exclusive), if one does."""
        offset, remainder = divmod(end - self.first_end, self.stride)
        return offset if remainder == 0 and 0 <= offset < self.count else None


T = TypeVar("T")


class IndicatorMemo:
    """``compute`` results remembered by the window of candles they were computed over.

    A backtest computes the same indicators on the same candles again and again: the context and the
    tool calls of one cycle ask for the same EMA, and a 4h window stays the same for four 1h cycles.
    A window is known by its timeframe, length, and first and last open times, which identify its
    candles only where candles never change: share one memo within one symbol of one cycle's
    ``MarketView`` or of one backtest's ``HistorySource``, never across sources or symbols. Every
    value is still computed from that window alone, as ``compute`` would; ``derived`` remembers
    anything else computed from a window alone the same way.

    It also keeps the last few frames it saw as numpy arrays (pandas charges for every column
    lookup), which ``array`` and ``column`` hand out. Frames are recognised by identity: a frame given
    here must not be modified afterwards.

    Results are shared between callers, not copied: treat them as read-only (the arrays are). Safe
    to use from several threads (tool calls compute off the event loop).

    A backtest's windows come from one history array (``adopt`` with ``history``) and each ends a
    few rows after the last. Once two misses of an indicator over windows of one size have ended the
    same number of rows apart, the next miss computes that indicator for the next ``block`` windows
    of that stride at once (``fast.WINDOWED``, the same bits as one by one) and later misses read
    their row. A window's values still depend on its own candles alone, and a cycle reads only the
    row of the window closed by its moment, so computing windows that close later shows it nothing
    of them (``tests/backtest/test_lookahead.py``). Frames that are not cut from a history (a live
    cycle's) are computed one by one, as is any window that is not all finite.

    Args:
        capacity: results kept; the least recently used go first.
        frames: frames whose arrays are kept.
        block: windows computed together; 1 computes every window on its own.
    """

    def __init__(self, capacity: int = 256, frames: int = 16, block: int = 512) -> None:
        self.capacity = capacity
        self.frames = frames
        self.block = block
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict[Hashable, Any] = OrderedDict()
        self._windows: OrderedDict[int, _Window] = OrderedDict()
        self._params: dict[Hashable, tuple[specs.IndicatorSpec[Any], BaseModel, tuple[Any, ...]]] = {}
        # Blocks by (history, window size, indicator, settings): about 1.2 MB each at 512 windows of 300.
        self._blocks: OrderedDict[Hashable, _Block] = OrderedDict()
        # The last window end computed on its own under the same key, and how far it was from the one before.
        self._ends: dict[Hashable, tuple[int, int]] = {}
        # Values of whole histories by (history, label): each holds its history, whose id it is keyed by.
        self._across: dict[Hashable, tuple[Rows, Any]] = {}
        self._lock = threading.RLock()
        self._last_window: _Window | None = None

    def __len__(self) -> int:
        return len(self._entries)

    # -- windows ----------------------------------------------------------------------------------

    def _window(self, frame: pd.DataFrame) -> _Window:
        # A cycle asks about one frame several times in a row (a snapshot's three indicators, a tool
        # call's look-ups): the last one is already the most recently used.
        last = self._last_window
        if last is not None and last.frame is frame:
            return last
        with self._lock:
            window = self._windows.get(id(frame))
            if window is not None and window.frame is frame:
                self._windows.move_to_end(id(frame))
            else:
                window = _Window(frame)
                self._windows[id(frame)] = window
                while len(self._windows) > self.frames:
                    self._windows.popitem(last=False)
            self._last_window = window
            return window

    def _array(self, window: _Window) -> Rows:
        if window.array is None:
            # One conversion of the whole frame costs about what two column lookups do.
            array = window.frame.to_numpy(dtype="float64")
            array.flags.writeable = False
            window.array = array
        return window.array

    def array(self, frame: pd.DataFrame) -> Rows:
        """``frame.to_numpy(dtype="float64")``, read-only, converted once per frame."""
        return self._array(self._window(frame))

    def adopt(
        self,
        frame: pd.DataFrame,
        array: Rows,
        *,
        finite: bool,
        history: tuple[Rows, int] | None = None,
    ) -> None:
        """Take ``array`` as ``frame``'s numbers, for a caller that has them already.

        A backtest's history holds its whole span as one array, so each window it cuts is a slice of
        it with nothing to convert. ``array`` must be what ``frame.to_numpy(dtype="float64")`` gives
        (it is made read-only here), and ``finite`` whether every one of its values is finite.
        ``history`` is that whole array, which must never change, and the row ``array`` starts at:
        windows of it are computed in blocks.
        """
        window = self._window(frame)
        array.flags.writeable = False
        window.array, window.finite, window.history = array, finite, history

    def column(self, frame: pd.DataFrame, label: str) -> FloatArray:
        """``frame[label]`` as read-only float64 (open times too: exact below 2**53 ms).

        Raises:
            KeyError: the frame has no such column.
        """
        window = self._window(frame)
        return self._array(window)[:, frame.columns.get_loc(label)]

    def _span(self, window: _Window, timeframe: str) -> tuple[Hashable, ...]:
        if window.span is None or window.span[0] != timeframe:
            opens = self._array(window)[:, window.frame.columns.get_loc("timestamp")]
            size = len(opens)
            window.span = (timeframe, size, int(opens[0]), int(opens[-1])) if size else (timeframe, 0)
        return window.span

    # -- results ----------------------------------------------------------------------------------

    def _validated(
        self, name: str, params: Mapping[str, Any] | BaseModel | None
    ) -> tuple[specs.IndicatorSpec[Any], BaseModel, tuple[Any, ...]]:
        raw: Hashable = None
        try:
            if isinstance(params, BaseModel):
                # Parameter models are frozen: one validated before is its own key.
                raw = (name, params)
            elif params is None or isinstance(params, Mapping):
                # Types too: 1, 1.0 and True are equal keys, but not necessarily equally valid.
                items = (params or {}).items()
                raw = (name, tuple(sorted((key, type(value), value) for key, value in items)))
            hash(raw)
        except TypeError:  # a list or dict among the values, keys that do not sort: validation says
            raw = None
        found = self._params.get(raw) if raw is not None else None
        if found is None:
            spec = specs.spec_for(name)
            model = specs.validate_params(spec.name, params)
            found = (spec, model, tuple(model.model_dump().items()))
            if raw is not None:
                if len(self._params) >= 1024:  # parameters come from a model: keep this bounded
                    self._params.clear()
                self._params[raw] = found
        return found

    def _lookup(self, key: Hashable) -> Any:
        with self._lock:
            found = self._entries.get(key)
            if found is not None:
                self._entries.move_to_end(key)
                self.hits += 1
            return found

    def _store(self, key: Hashable, value: Any) -> None:
        with self._lock:
            self.misses += 1
            self._entries[key] = value
            while len(self._entries) > self.capacity:
                self._entries.popitem(last=False)

    def _entry(
        self,
        frame: pd.DataFrame,
        timeframe: str,
        name: str,
        params: Mapping[str, Any] | BaseModel | None,
        *,
        compute: bool,
    ) -> tuple[_Window, _Entry | None]:
        window = self._window(frame)
        spec, model, settings = self._validated(name, params)
        key = (self._span(window, timeframe), spec.name, settings)
        entry: _Entry | None = self._lookup(key)
        if entry is not None or not compute:
            return window, entry
        array = self._array(window)

        def column(label: str) -> FloatArray:
            return array[:, frame.columns.get_loc(label)]

        if window.finite is None:
            window.finite = bool(np.isfinite(array).all())
        outputs = self._from_block(window, frame, spec, model, settings)
        if outputs is None:
            outputs = output_arrays(spec, model, frame, column, finite=window.finite)
        for values in outputs.values():
            values.flags.writeable = False
        entry = _Entry(outputs, spec, model)
        self._store(key, entry)
        return window, entry

    def _from_block(
        self,
        window: _Window,
        frame: pd.DataFrame,
        spec: specs.IndicatorSpec[Any],
        model: BaseModel,
        settings: tuple[Any, ...],
    ) -> dict[str, FloatArray] | None:
        """This window's outputs from a block of windows computed together, or None: compute it alone."""
        windowed = fast.WINDOWED.get(spec.fast) if spec.fast is not None else None
        if windowed is None or window.history is None or not window.finite or self.block < 2:
            return None
        history, start = window.history
        size = len(self._array(window))
        end = start + size
        if start == 0:
            # Cut short by the start of history: the next window is longer, not a step later.
            return None
        key = (id(history), size, spec.name, settings)
        with self._lock:
            block = self._blocks.get(key)
            if block is not None and block.history is history:
                row = block.row(end)
                if row is not None:
                    self._blocks.move_to_end(key)
                    return {output: values[row] for output, values in block.outputs.items()}
            last = self._ends.get(key)
            stride = end - last[0] if last is not None else 0
            if last is None or stride <= 0 or stride != last[1]:
                if len(self._ends) >= 1024:  # keys come partly from a model's parameters
                    self._ends.clear()
                self._ends[key] = (end, stride)
                return None
            count = min(self.block, (len(history) - end) // stride + 1)
            stretch = history[start : end + (count - 1) * stride]
            not_finite = np.flatnonzero(~np.isfinite(stretch).all(axis=1))
            if len(not_finite):
                # Only the windows before the first such row: the ones holding it go to pandas-ta.
                count = (int(not_finite[0]) - size) // stride + 1
                stretch = stretch[: size + (count - 1) * stride]

            def column(label: str) -> FloatArray:
                return stretch[:, frame.columns.get_loc(label)]

            outputs = windowed(column, model, size, stride)
            for values in outputs.values():
                values.flags.writeable = False
            self._blocks[key] = _Block(history, end, stride, count, outputs)
            self._blocks.move_to_end(key)
            while len(self._blocks) > 16:
                self._blocks.popitem(last=False)
            # The window after the block's last is then a step on from it: the next block follows.
            self._ends[key] = (end + (count - 1) * stride, stride)
            return {output: values[0] for output, values in outputs.items()}

    def _frame(self, window: _Window, entry: _Entry) -> pd.DataFrame:
        if entry.result is None:
            if window.index is None:
                opens = self._array(window)[:, window.frame.columns.get_loc("timestamp")]
                window.index = open_index(opens.astype("int64"))
            entry.result = result_frame(entry.spec, entry.model, entry.outputs, window.index)
        return entry.result

    def values(
        self,
        frame: pd.DataFrame,
        timeframe: str,
        name: str,
        params: Mapping[str, Any] | BaseModel | None = None,
    ) -> Mapping[str, FloatArray]:
        """The outputs ``compute`` would give, as read-only arrays by output name (no DataFrame).

        Args:
            frame: the window, a validated candle frame of ``timeframe``.
            timeframe: the frame's candle interval (part of the window's identity).
            name, params: as for ``compute``.

        Raises:
            IndicatorError: as ``validate_params``.
        """
        _, entry = self._entry(frame, timeframe, name, params, compute=True)
        assert entry is not None
        return entry.outputs

    def compute(
        self,
        frame: pd.DataFrame,
        timeframe: str,
        name: str,
        params: Mapping[str, Any] | BaseModel | None = None,
    ) -> pd.DataFrame:
        """``compute(frame, name, params)``, or its remembered result for the same window.

        Raises:
            IndicatorError: as ``validate_params``.
        """
        window, entry = self._entry(frame, timeframe, name, params, compute=True)
        assert entry is not None
        return self._frame(window, entry)

    def known(
        self,
        frame: pd.DataFrame,
        timeframe: str,
        name: str,
        params: Mapping[str, Any] | BaseModel | None = None,
    ) -> bool:
        """Whether this indicator of this window is remembered (so that asking for it computes nothing).

        Raises:
            IndicatorError: as ``validate_params``.
        """
        return self._entry(frame, timeframe, name, params, compute=False)[1] is not None

    def summary_table(
        self,
        frame: pd.DataFrame,
        timeframe: str,
        name: str,
        params: Mapping[str, Any] | BaseModel | None,
        lookback: int,
        reference_price: float,
        timeframe_ms: int | None = None,
    ) -> tuple[str, list[dict[str, Any]]]:
        """``summary_table(self.compute(...), ...)`` without building the result's DataFrame.

        Raises:
            IndicatorError: as ``validate_params``, or ``lookback`` is below 1.
            ValueError: the reference price is not a positive finite number.
        """
        window, entry = self._entry(frame, timeframe, name, params, compute=True)
        assert entry is not None
        opens = self._array(window)[:, frame.columns.get_loc("timestamp")]
        rows, decimals = rounded_rows(
            opens[-lookback:].astype("int64").tolist() if lookback >= 1 else [],
            {output: entry.outputs[output] for output in entry.spec.outputs},
            entry.spec.outputs,
            lookback,
            reference_price,
            timeframe_ms,
        )
        return table_text(rows, decimals), rows

    def across_history(
        self, frame: pd.DataFrame, label: Hashable, make: Callable[[Rows], T]
    ) -> tuple[T, int] | None:
        """``make(history)`` of the whole history ``frame`` was cut from, remembered for that history
        under ``label``, and the row of it ``frame`` starts at; None for a frame not cut from one
        (see ``adopt``).

        For values of each row that depend on that row and a few neighbours alone (a fractal, a gap
        to the candle before): a window's own are then the ones of its rows whose neighbours are in
        it too, found without computing them again for every window. The caller must read only
        those: every other row of the history, before the window or after it, is none of its
        business (``tests/backtest/test_lookahead.py``).
        """
        window = self._window(frame)
        if window.history is None:
            return None
        history, start = window.history
        key = (id(history), label)
        with self._lock:
            found = self._across.get(key)
            if found is None or found[0] is not history:
                if len(self._across) >= 64:  # one history per backtest: a few labels each
                    self._across.clear()
                found = (history, make(history))
                self._across[key] = found
        value: T = found[1]
        return value, start

    def derived(self, frame: pd.DataFrame, timeframe: str, label: Hashable, make: Callable[[], T]) -> T:
        """``make()``, remembered for this window under ``label``.

        For anything computed from the window's candles alone (a context's snapshot of them, a
        tool's summary): the same window gives the same value. The value is shared: return a copy
        to callers that might change it.
        """
        key = (self._span(self._window(frame), timeframe), "derived", label)
        found: T | None = self._lookup(key)
        if found is None:
            found = make()
            self._store(key, found)
        return found
