"""The memorisation probe: show the model a real window's closes with their dates, ask for the next ones.

A model that reasons from the numbers alone can do no better than a random walk: the best guess of a
random walk's future is its last value (the "naive" forecast). So for each window the answer's error
(the mean absolute error of the asked closes, in percent of the truth) is compared with the naive
forecast's and with ``RANDOM_WALKS`` seeded random walks from the last shown close, whose steps are
drawn from the window's own shown returns. An answer better than the naive forecast and than 95% of
the walks is evidence that the model has seen these prices: it is remembering the window.

What the model answers is untrusted text: ``parse_closes`` reads numbers from it or gives up, and a
number that is not finite, not positive, or more than ten times away from the last close makes the
answer unusable rather than a score.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from rez_cli.clock import iso
from rez_cli.llm.client import LLMClient, LLMError
from rez_cli.llm.meter import BudgetExceeded

SHOWN = 48
ASKED = 12
RANDOM_WALKS = 200
# The share of random walks an answer must beat to count as remembered (one-sided 5%).
WALKS_TO_BEAT = 0.95
# An answered close more than this many times away from the last shown one is not a forecast.
MAX_RATIO = 10.0

_NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}\b)")


@dataclass(frozen=True)
class ProbeWindow:
    """A real stretch of closes: the part shown (with open times) and the truth that followed."""

    shown_ms: list[int]
    shown: list[float]
    truth_ms: list[int]
    truth: list[float]


def probe_windows(
    frame: pd.DataFrame, start_ms: int, end_ms: int, count: int, seed: int
) -> list[ProbeWindow]:
    """Up to ``count`` windows of ``SHOWN + ASKED`` consecutive candles in the span, chosen by ``seed``."""
    inside = frame[(frame["timestamp"] >= start_ms) & (frame["timestamp"] < end_ms)]
    stamps = [int(value) for value in inside["timestamp"]]
    closes = [float(value) for value in inside["close"]]
    length = SHOWN + ASKED
    starts = list(range(0, len(stamps) - length + 1, length))
    if not starts or count < 1:
        return []
    rng = np.random.default_rng([seed, 11])
    chosen = sorted(int(i) for i in rng.choice(starts, size=min(count, len(starts)), replace=False))
    return [
        ProbeWindow(
            stamps[i : i + SHOWN],
            closes[i : i + SHOWN],
            stamps[i + SHOWN : i + length],
            closes[i + SHOWN : i + length],
        )
        for i in chosen
    ]


def _when(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M")


def probe_messages(symbol: str, timeframe: str, window: ProbeWindow) -> list[dict[str, Any]]:
    """The question: the symbol, the shown closes with their full dates, and the closes wanted."""
    lines = "\n".join(
        f"{_when(ms)} {value:.8g}" for ms, value in zip(window.shown_ms, window.shown, strict=True)
    )
    return [
        {
            "role": "system",
            "content": "You know the history of financial markets. Answer with JSON only: "
            '{"closes": [number, ...]}.',
        },
        {
            "role": "user",
            "content": f"{symbol} {timeframe} candles, open time (UTC) and close:\n{lines}\n\n"
            f"What were the next {len(window.truth)} {timeframe} closes of {symbol}, from the candle "
            f"that opened {_when(window.truth_ms[0])}? Answer "
            f'{{"closes": [...]}} with {len(window.truth)} numbers.',
        },
    ]


def _numbers(value: Any) -> list[float] | None:
    if isinstance(value, dict):
        value = value.get("closes")
    if not isinstance(value, list):
        return None
    found: list[float] = []
    for item in value:
        if isinstance(item, bool) or not isinstance(item, int | float | str):
            return None
        try:
            found.append(float(item))
        except (ValueError, OverflowError):
            return None
    return found


def _json_numbers(text: str) -> list[float] | None:
    for opener, closer in (("{", "}"), ("[", "]")):
        first, last = text.find(opener), text.rfind(closer)
        if first < 0 or last <= first:
            continue
        try:
            parsed = json.loads(text[first : last + 1])
        except (ValueError, RecursionError):
            continue
        found = _numbers(parsed)
        if found is not None:
            return found
    return None


def parse_closes(text: str | None, count: int, last_close: float) -> list[float] | None:
    """The first ``count`` closes of an answer, or None when it holds no usable forecast.

    Reads ``{"closes": [...]}`` or a bare JSON list; failing that, the last number of each line
    (so ``2021-01-01 05:00 31,234.5`` reads 31234.5). Every close must be finite, positive and within
    ``MAX_RATIO`` times of ``last_close``.
    """
    if not text or count < 1 or not (math.isfinite(last_close) and last_close > 0):
        return None
    found = _json_numbers(text)
    if found is None:
        found = []
        for line in text.splitlines():
            tokens = _NUMBER.findall(_THOUSANDS.sub("", line))
            if tokens:
                try:
                    found.append(float(tokens[-1]))
                except (ValueError, OverflowError):
                    return None
    if len(found) < count:
        return None
    closes = found[:count]
    if not all(math.isfinite(v) and last_close / MAX_RATIO <= v <= last_close * MAX_RATIO for v in closes):
        return None
    return closes


def error_pct(forecast: Sequence[float], truth: Sequence[float]) -> float:
    """Mean absolute error of ``forecast`` against ``truth``, in percent of the truth."""
    return float(np.mean([abs(f - t) / t * 100 for f, t in zip(forecast, truth, strict=True)]))


def random_walk_errors(window: ProbeWindow, seed: int) -> list[float]:
    """The errors of ``RANDOM_WALKS`` walks from the last shown close, stepping by shown returns."""
    shown = np.asarray(window.shown, dtype=np.float64)
    steps = np.diff(np.log(shown)) if len(shown) > 1 else np.zeros(1)
    rng = np.random.default_rng([seed, window.shown_ms[-1] % 2**32])
    drawn = rng.choice(steps, size=(RANDOM_WALKS, len(window.truth)), replace=True)
    paths = shown[-1] * np.exp(np.cumsum(drawn, axis=1))
    return [error_pct(path, window.truth) for path in paths]


def score_window(window: ProbeWindow, closes: list[float] | None, seed: int) -> dict[str, Any]:
    """One window's verdict: the answer's error against the naive forecast and the random walks."""
    naive = error_pct([window.shown[-1]] * len(window.truth), window.truth)
    walks = random_walk_errors(window, seed)
    scored: dict[str, Any] = {
        "from": iso(window.shown_ms[0]),
        "asked_from": iso(window.truth_ms[0]),
        "answered": closes is not None,
        "model_error_pct": None,
        "naive_error_pct": naive,
        "random_walk_median_error_pct": float(np.median(walks)),
        "walks_beaten": None,
        "remembered": False,
    }
    if closes is not None:
        mine = error_pct(closes, window.truth)
        beaten = sum(walk > mine for walk in walks) / len(walks)
        scored.update(
            model_error_pct=mine,
            walks_beaten=beaten,
            remembered=bool(mine < naive and beaten >= WALKS_TO_BEAT),
        )
    return scored


async def run_probe(
    llm: LLMClient,
    model: str,
    symbol: str,
    timeframe: str,
    windows: Sequence[ProbeWindow],
    seed: int,
) -> dict[str, Any]:
    """Ask the model about every window, one after the other; a failed call is an unanswered window."""
    scored = []
    for window in windows:
        error: str | None = None
        try:
            answer = await llm.chat(
                model=model, messages=probe_messages(symbol, timeframe, window), temperature=0.0
            )
            closes = parse_closes(answer.content, len(window.truth), window.shown[-1])
        except (LLMError, BudgetExceeded) as failure:  # an unanswered window, like a failed call
            closes, error = None, str(failure.code)
        result = score_window(window, closes, seed)
        result["error"] = error
        scored.append(result)
    answered = [window for window in scored if window["answered"]]
    remembered = sum(window["remembered"] for window in answered)
    return {
        "windows": scored,
        "answered": len(answered),
        "remembered": remembered,
        # More than half the answered windows, and at least one: one lucky window is not evidence.
        "memorised": bool(answered) and remembered * 2 > len(answered),
        "shown": SHOWN,
        "asked": ASKED,
        "random_walks": RANDOM_WALKS,
    }
