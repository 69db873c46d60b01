"""The credibility grade of a backtest, A to D, and the reasons that set it.

The grade is the worst one any rule gives; every rule that fired is a reason. No rule firing is A.

D (the result is memory, not skill):
- the memorisation probe: the model continued most of the real windows it answered better than the
  naive forecast and than 95% of random walks;
- an altered copy: the model did significantly worse once the name, the price level or the dates
  were changed (a paired t of at least 2 over the sampled cycles, and at least half its edge lost).
C (the result cannot be checked, or does not hold out of sample):
- the whole span lies before the training cutoff: nothing after it to compare with;
- Sharpe falls by more than half after the cutoff;
- more than 30% of the decisions change on an altered copy (the model reacts to the disguise).
B (the result is thin):
- fewer than 30 cycles after the cutoff, or fewer than 10 trades in all;
- the strategy beats buy-and-hold in one regime and trails it in every other one it saw;
- the probe could not be read (no window answered).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

GRADES = ("A", "B", "C", "D")
MIN_CYCLES_AFTER_CUTOFF = 30
MIN_TRADES = 10
MAX_SHARPE_DECAY_PCT = 50.0
MAX_CHANGED_SHARE = 0.30


def grade(
    report: Mapping[str, Any],
    cutoff: Mapping[str, Any],
    regimes: Mapping[str, Any] | None,
    altered: Sequence[Mapping[str, Any]] | None,
    probe: Mapping[str, Any] | None,
) -> tuple[str, list[str]]:
    """The grade and its reasons, worst first (``A`` alone says why nothing fired)."""
    fired: list[tuple[str, str]] = []
    if probe is not None:
        if probe.get("memorised"):
            fired.append(
                (
                    "D",
                    f"memorisation probe: it continued {probe['remembered']} of {probe['answered']} real "
                    "windows better than the naive forecast and 95% of random walks",
                )
            )
        elif not probe.get("answered"):
            fired.append(("B", "memorisation probe: no window got a usable answer"))
    for row in altered or []:
        if row["copy"] == "true":
            continue
        if row.get("worse_than_true"):
            fired.append(
                (
                    "D",
                    f"{row['copy']} copy: its edge fell from {row['edge_pct'] + row['edge_drop_pct']:+.3f}% "
                    f"to {row['edge_pct']:+.3f}% a cycle (paired t {_t(row.get('t_stat'))})",
                )
            )
        elif row["cycles"] and row["decisions_changed"] / row["cycles"] > MAX_CHANGED_SHARE:
            fired.append(
                (
                    "C",
                    f"{row['copy']} copy: {row['decisions_changed']} of {row['cycles']} decisions changed",
                )
            )
    before, after = cutoff.get("before"), cutoff.get("after")
    if cutoff.get("cutoff") is not None:
        if before is not None and after is None:
            fired.append(("C", f"the whole span lies before the training cutoff {cutoff['cutoff'][:10]}"))
        decay = cutoff.get("sharpe_decay_pct")
        if decay is not None and decay > MAX_SHARPE_DECAY_PCT and before and after:
            fired.append(
                (
                    "C",
                    f"Sharpe fell {decay:.0f}% after the training cutoff "
                    f"({before['sharpe']:.2f} → {after['sharpe']:.2f})",
                )
            )
        if after is not None and after["cycles"] < MIN_CYCLES_AFTER_CUTOFF:
            fired.append(("B", f"only {after['cycles']} cycles after the training cutoff"))
    trades = len(report.get("trades") or [])
    if trades < MIN_TRADES:
        fired.append(("B", f"only {trades} trades"))
    if regimes is not None:
        seen = {name: regimes[name] for name in ("bull", "bear", "sideways") if regimes.get(name)}
        ahead = [name for name, found in seen.items() if (found.get("excess_pct") or 0) > 0]
        if len(seen) > 1 and len(ahead) == 1:
            fired.append(("B", f"it beats buy-and-hold only in {ahead[0]} windows"))
    if not fired:
        return "A", ["A: no rule fired: no sign of memorisation, and the result holds on the altered copies"]
    worst = max(letter for letter, _ in fired)
    fired.sort(key=lambda item: item[0], reverse=True)
    return worst, [f"{letter}: {reason}" for letter, reason in fired]


def _t(value: Any) -> str:
    return f"{value:.1f}" if isinstance(value, int | float) else "unbounded"
