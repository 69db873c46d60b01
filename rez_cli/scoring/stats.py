"""Statistics over final scores: per group, and confidence against outcome.

- Hit rate = tp_first / (tp_first + sl_first). ``neither`` is no verdict on the forecast: it is
  counted in its own column and left out of hit rates, the calibration and the Brier score.
- Calibration: the decision's confidence in buckets 0-0.2, ..., 0.8-1 (the last one includes 1)
  against the hit rate in each bucket.
- Brier score: the mean of (confidence - y)², y = 1 for tp_first and 0 for sl_first. 0 is perfect;
  always answering 0.5 scores 0.25.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from rez_cli.scoring.judge import NEITHER, SL_FIRST, TP_FIRST, Score

__all__ = ["Bucket", "Calibration", "GroupStats", "brier_score", "calibration", "group_stats"]

BUCKETS = 5


@dataclass(frozen=True)
class Bucket:
    """Trades decided (TP or SL) with a confidence in ``[low, high)``; the last bucket includes 1."""

    low: float
    high: float
    count: int
    hits: int
    hit_rate: float | None
    mean_confidence: float | None


@dataclass(frozen=True)
class Calibration:
    """Confidence against hit rate, and the Brier score, over trades that reached TP or SL."""

    buckets: list[Bucket]
    brier: float | None
    count: int

    def to_json(self) -> dict[str, Any]:
        return {
            "buckets": [asdict(bucket) for bucket in self.buckets],
            "brier": self.brier,
            "count": self.count,
        }


def _verdicts(pairs: Iterable[tuple[float | None, str]]) -> list[tuple[float, int]]:
    """(confidence, 1 for tp_first / 0 for sl_first); neither, pending and unknown confidence left out."""
    found = []
    for confidence, outcome in pairs:
        if confidence is None or not math.isfinite(confidence) or outcome not in (TP_FIRST, SL_FIRST):
            continue
        found.append((min(max(float(confidence), 0.0), 1.0), int(outcome == TP_FIRST)))
    return found


def brier_score(pairs: Iterable[tuple[float | None, str]]) -> float | None:
    """The mean of (confidence - y)² with y = 1 for tp_first, 0 for sl_first; None without any.

    Args:
        pairs: (confidence, outcome) per trade; other outcomes and a None confidence are left out.
    """
    verdicts = _verdicts(pairs)
    if not verdicts:
        return None
    return sum((confidence - hit) ** 2 for confidence, hit in verdicts) / len(verdicts)


def calibration(pairs: Iterable[tuple[float | None, str]]) -> Calibration:
    """Hit rate per confidence bucket (0-0.2, ..., 0.8-1) and the Brier score.

    Args:
        pairs: (confidence, outcome) per trade; only tp_first and sl_first count.
    """
    verdicts = _verdicts(pairs)
    grouped: list[list[tuple[float, int]]] = [[] for _ in range(BUCKETS)]
    for confidence, hit in verdicts:
        # The epsilon keeps 0.6 (0.6 * 5 = 2.9999...) in the bucket that starts at 0.6.
        grouped[min(int(confidence * BUCKETS + 1e-9), BUCKETS - 1)].append((confidence, hit))
    buckets = []
    for index, members in enumerate(grouped):
        hits = sum(hit for _, hit in members)
        buckets.append(
            Bucket(
                low=index / BUCKETS,
                high=(index + 1) / BUCKETS,
                count=len(members),
                hits=hits,
                hit_rate=hits / len(members) if members else None,
                mean_confidence=sum(c for c, _ in members) / len(members) if members else None,
            )
        )
    return Calibration(
        buckets, brier_score(pairs=[(c, TP_FIRST if h else SL_FIRST) for c, h in verdicts]), len(verdicts)
    )


@dataclass(frozen=True)
class GroupStats:
    """Scores of one (symbol, exchange, model, mode, profile)."""

    symbol: str
    exchange: str | None
    model: str | None
    mode: str | None
    profile: str | None
    decisions: int
    trades: int
    tp_first: int
    sl_first: int
    neither: int
    hit_rate: float | None
    avg_r: float | None
    total_r: float
    holds: int
    avg_missed_r: float | None


def group_stats(scores: Sequence[Score]) -> list[GroupStats]:
    """The scores by symbol, exchange, model, mode and profile, in that order."""
    groups: dict[tuple[str, str, str, str, str], list[Score]] = {}
    for score in scores:
        key = (score.symbol, score.exchange or "", score.model or "", score.mode or "", score.profile or "")
        groups.setdefault(key, []).append(score)
    found = []
    for key in sorted(groups):
        members = groups[key]
        trades = [score for score in members if score.is_trade]
        holds = [score for score in members if not score.is_trade]
        counts = {
            outcome: sum(score.outcome == outcome for score in trades)
            for outcome in (TP_FIRST, SL_FIRST, NEITHER)
        }
        decided = counts[TP_FIRST] + counts[SL_FIRST]
        r_values = [score.r_multiple for score in trades if score.r_multiple is not None]
        missed = [score.r_multiple for score in holds if score.r_multiple is not None]
        first = members[0]
        found.append(
            GroupStats(
                symbol=first.symbol,
                exchange=first.exchange,
                model=first.model,
                mode=first.mode,
                profile=first.profile,
                decisions=len(members),
                trades=len(trades),
                tp_first=counts[TP_FIRST],
                sl_first=counts[SL_FIRST],
                neither=counts[NEITHER],
                hit_rate=counts[TP_FIRST] / decided if decided else None,
                avg_r=sum(r_values) / len(r_values) if r_values else None,
                total_r=sum(r_values),
                holds=len(holds),
                avg_missed_r=sum(missed) / len(missed) if missed else None,
            )
        )
    return found
