"""``rez arena --report FILE.html``: the contestants' equity curves on one chart, and the leaderboard.

Built as ``rez backtest --report`` builds its page: plotly (the ``report`` extra) is imported only
here and only when a page is written, its JavaScript inlined so the file opens offline; without it
the command is refused before any walk (``require_plotly``). Every name and value from outside is
escaped: a contestant's name or a model's error is text on the page, never markup.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rez_cli.arena.run import ArenaResult
from rez_cli.backtest.report import STYLE, require_plotly
from rez_cli.errors import UsageError

__all__ = ["render_report", "require_plotly", "write_report"]

COLUMNS = (
    ("return %", "total_return_pct", "{:+.2f}"),
    ("max DD %", "max_drawdown_pct", "{:.2f}"),
    ("Sharpe", "sharpe", "{:.2f}"),
    ("win rate", "win_rate", "{:.0%}"),
    ("avg R", "avg_r", "{:+.2f}"),
    ("hold rate", "hold_rate", "{:.0%}"),
    ("taken", "decisions_taken", "{:.0f}"),
    ("fallback", "fallback_rate", "{:.0%}"),
    ("Brier", "brier", "{:.3f}"),
    ("$/decision", "cost_per_decision_usd", "{:.4f}"),
    ("latency s", "median_latency_s", "{:.2f}"),
)


def cell(value: Any, pattern: str) -> str:
    """A number as the leaderboard shows it; ``–`` for nothing to measure."""
    if value is None:
        return "–"
    return pattern.format(value)


def _table(board: Sequence[Mapping[str, Any]]) -> str:
    head = "".join(f"<th>{html.escape(title)}</th>" for title, _, _ in COLUMNS)
    rows = []
    for row in board:
        cells = "".join(f"<td>{html.escape(cell(row.get(key), pattern))}</td>" for _, key, pattern in COLUMNS)
        interval = row.get("sharpe_ci")
        ci = f"[{interval[0]:.2f}, {interval[1]:.2f}]" if interval else "–"
        beats = ", ".join(
            f"{name} (p={verdict['p_value']:.3f})"
            for name, verdict in row.get("beats", {}).items()
            if verdict.get("beaten") and verdict.get("p_value") is not None
        )
        errors = "; ".join(row.get("errors") or [])
        rows.append(
            f"<tr><td>{html.escape(row['name'])}</td>{cells}<td>{html.escape(ci)}</td>"
            f"<td>{html.escape(beats or '–')}</td><td>{html.escape(errors)}</td></tr>"
        )
    return (
        f"<table><tr><th>contestant</th>{head}<th>Sharpe 95% CI</th><th>beats</th><th>errors</th></tr>"
        + "".join(rows)
        + "</table>"
    )


def _figure(result: ArenaResult) -> Any:
    import plotly.graph_objects as go

    figure = go.Figure()
    for entry in result.runs:
        run = entry.run
        if run is None or not run.curve:
            continue
        label = entry.contestant.name + (
            f" #{entry.repeat + 1}" if entry.seed is not None and entry.repeat else ""
        )
        times = [datetime.fromtimestamp(ts / 1000, tz=UTC) for ts in run.curve_ms]
        figure.add_trace(go.Scatter(x=times, y=run.curve, mode="lines", name=label))
    figure.update_layout(
        template="plotly_white", height=520, yaxis_title="equity", margin={"l": 60, "r": 20, "t": 30, "b": 40}
    )
    return figure


def render_report(result: ArenaResult, board: Sequence[Mapping[str, Any]]) -> str:
    """The page as one HTML string, plotly's JavaScript inlined.

    Raises:
        UsageError: plotly is not installed.
    """
    require_plotly()
    chart = _figure(result).to_html(
        full_html=False, include_plotlyjs=True, config={"displaylogo": False, "responsive": True}
    )
    spec = result.spec
    title = f"Arena: {spec.symbol} {spec.timeframe}"
    tape = f" · tape {spec.tape_hash}" if spec.tape_hash else ""
    state = ""
    if result.interrupted:
        state = "<p class='warning'>interrupted: the walks cover the cycles finished</p>"
    elif result.budget_exceeded:
        state = "<p class='warning'>stopped by --max-cost: the walks cover the cycles finished</p>"
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>"
        f"<h1>{html.escape(title)}</h1><p class='meta'>{html.escape(tape)}</p>{state}"
        f"<h2>Equity</h2>{chart}<h2>Leaderboard</h2>{_table(board)}</body></html>"
    )


def write_report(result: ArenaResult, board: Sequence[Mapping[str, Any]], path: Path) -> Path:
    """Write the page; returns the path written.

    Raises:
        UsageError: plotly is not installed, or the file cannot be written.
    """
    page = render_report(result, board)
    try:
        path.write_text(page, encoding="utf-8")
    except OSError as error:
        raise UsageError(f"cannot write the report {path}: {error.strerror or error}") from None
    return path
