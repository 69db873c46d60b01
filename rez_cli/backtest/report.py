"""``rez backtest --report FILE.html``: one self-contained page with the price, the trades and the equity.

The page holds a header (market, span, strategy, fills), the metrics side by side with the
baselines, one interactive figure in three rows sharing the time axis (the price each cycle saw with
every trade's entry and exit marked on it; the equity curves of the strategy and its baselines; the
strategy's drawdown), and the list of trades.

plotly draws the figure. It is an optional extra (``pip install 'rez-cli[report]'``), imported only
here and only when a report is written; its JavaScript is inlined in the page, so the file opens
offline, can be mailed or archived, and loads nothing from the network.

The price comes from the journal (the ``last_price`` of each cycle's context), not from a second
pass over the market: with ``--every N`` it has one point per cycle, while trade markers sit at
their exact fill times and prices.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rez_cli.account.fills import LIQUIDATION
from rez_cli.backtest.metrics import METRIC_ROWS, format_metric
from rez_cli.errors import UsageError

if TYPE_CHECKING:
    from rez_cli.account.fills import Trade
    from rez_cli.backtest.walk import BacktestReport

__all__ = ["INSTALL_HINT", "drawdown_pct", "render_report", "require_plotly", "write_report"]

INSTALL_HINT = "pip install 'rez-cli[report]'"
# Beyond this many rows the trades table stops growing (the chart still shows every trade).
MAX_TRADE_ROWS = 1_000
STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5rem auto; max-width: 1200px; color: #222; }
h1 { font-size: 1.4rem; margin-bottom: 0.2rem; }
h2 { font-size: 1.1rem; margin-top: 2rem; }
.meta { color: #555; margin: 0.2rem 0; }
.simulated { color: #b00; font-weight: bold; }
.warning { color: #8a5a00; }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; }
th, td { padding: 0.2rem 0.8rem; border-bottom: 1px solid #ddd; text-align: right; }
th:first-child, td:first-child { text-align: left; }
.win { color: #137333; } .loss { color: #b00; }
.liquidation { color: #7a0000; font-weight: bold; }
"""


def require_plotly() -> None:
    """Check, before any work, that a report can be drawn.

    Raises:
        UsageError: plotly (the ``report`` extra) is not installed.
    """
    try:
        import plotly.graph_objects  # noqa: F401  # only whether it imports matters here
    except ImportError:
        raise UsageError("--report needs plotly", hint=INSTALL_HINT) from None


def _time(ts_ms: int) -> datetime:
    return datetime.fromtimestamp(ts_ms / 1000, tz=UTC)


def drawdown_pct(curve: Sequence[float]) -> list[float]:
    """How far below its running peak the curve is at each point, in percent (0 or negative)."""
    peak = float("-inf")
    found = []
    for value in curve:
        peak = max(peak, value)
        found.append((value / peak - 1.0) * 100 if peak > 0 else 0.0)
    return found


def _figure(report: BacktestReport, prices: Sequence[tuple[int, float]]) -> Any:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    figure = make_subplots(
        rows=3,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.05,
        row_heights=[0.5, 0.3, 0.2],
        subplot_titles=("price and trades", "equity", "drawdown of the strategy"),
    )
    if prices:
        figure.add_trace(
            go.Scatter(
                x=[_time(ts) for ts, _ in prices],
                y=[price for _, price in prices],
                mode="lines",
                name="price at each cycle",
                line={"color": "#555", "width": 1},
            ),
            row=1,
            col=1,
        )
    _add_trades(figure, go, report.strategy.trades)
    curves = [("strategy", report.strategy, "#1f77b4")]
    if report.buy_and_hold is not None:
        curves.append(("buy & hold", report.buy_and_hold, "#999"))
    if report.rules is not None and report.rules is not report.strategy:
        curves.append(("rules baseline", report.rules, "#ff7f0e"))
    for name, run, color in curves:
        figure.add_trace(
            go.Scatter(
                x=[_time(ts) for ts in run.curve_ms],
                y=run.curve,
                mode="lines",
                name=f"equity: {name}",
                line={"color": color, "width": 1.5},
            ),
            row=2,
            col=1,
        )
    figure.add_trace(
        go.Scatter(
            x=[_time(ts) for ts in report.strategy.curve_ms],
            y=drawdown_pct(report.strategy.curve),
            mode="lines",
            name="drawdown %",
            fill="tozeroy",
            line={"color": "#b00", "width": 1},
        ),
        row=3,
        col=1,
    )
    figure.update_yaxes(title_text="price", row=1, col=1)
    figure.update_yaxes(title_text="equity", row=2, col=1)
    figure.update_yaxes(title_text="%", row=3, col=1)
    figure.update_layout(
        height=900,
        hovermode="x unified",
        template="plotly_white",
        margin={"l": 60, "r": 20, "t": 40, "b": 40},
        legend={"orientation": "h", "y": -0.05},
    )
    return figure


def _add_trades(figure: Any, go: Any, trades: Sequence[Trade]) -> None:
    """Entries as triangles (up: long, down: short), exits as crosses, joined by a dotted line."""
    if not trades:
        return
    path_x: list[datetime | None] = []
    path_y: list[float | None] = []
    for trade in trades:
        # None between trades breaks the line, so one trace draws every trade's segment.
        path_x += [_time(trade.entry_ms), _time(trade.exit_ms), None]
        path_y += [trade.entry_price, trade.exit_price, None]
    figure.add_trace(
        go.Scatter(
            x=path_x,
            y=path_y,
            mode="lines",
            line={"color": "#888", "width": 1, "dash": "dot"},
            hoverinfo="skip",
            showlegend=False,
        ),
        row=1,
        col=1,
    )
    for side, name, symbol, color in (
        (1, "long entry", "triangle-up", "#137333"),
        (-1, "short entry", "triangle-down", "#b00"),
    ):
        chosen = [trade for trade in trades if trade.side == side]
        if chosen:
            figure.add_trace(
                go.Scatter(
                    x=[_time(trade.entry_ms) for trade in chosen],
                    y=[trade.entry_price for trade in chosen],
                    mode="markers",
                    name=name,
                    marker={"symbol": symbol, "size": 10, "color": color},
                ),
                row=1,
                col=1,
            )
    # Liquidations get their own marker and legend entry: they are not just another losing exit.
    for name, chosen, marker in (
        ("exit", [trade for trade in trades if trade.reason != LIQUIDATION], {"symbol": "x", "size": 9}),
        (
            "liquidation",
            [trade for trade in trades if trade.reason == LIQUIDATION],
            {"symbol": "star", "size": 13, "line": {"width": 1, "color": "#000"}},
        ),
    ):
        if not chosen:
            continue
        figure.add_trace(
            go.Scatter(
                x=[_time(trade.exit_ms) for trade in chosen],
                y=[trade.exit_price for trade in chosen],
                mode="markers",
                name=name,
                marker={**marker, "color": ["#137333" if trade.pnl > 0 else "#b00" for trade in chosen]},
                text=[
                    f"{trade.reason}, pnl {trade.pnl:+,.2f}"
                    + (f", {trade.r_multiple:+.2f}R" if trade.r_multiple is not None else "")
                    for trade in chosen
                ],
                hovertemplate=f"%{{text}}<extra>{name}</extra>",
            ),
            row=1,
            col=1,
        )


def _metrics_table(payload: Mapping[str, Any]) -> str:
    strategy = payload["mode"] + (f" ({payload['model']})" if payload.get("model") else "")
    columns: list[tuple[str, Mapping[str, Any] | None]] = [(strategy, payload["metrics"])]
    baselines = payload["baselines"]
    columns.append(("buy & hold", baselines.get("buy_and_hold")))
    if payload["mode"] != "rules":
        columns.append(("rules baseline", baselines.get("rules")))
    head = "".join(f"<th>{html.escape(title)}</th>" for title, _ in columns)
    rows = []
    for label, key, kind in METRIC_ROWS:
        cells = "".join(
            f"<td>{html.escape(format_metric(metrics.get(key), kind) if metrics else 'n/a')}</td>"
            for _, metrics in columns
        )
        rows.append(f"<tr><td>{html.escape(label)}</td>{cells}</tr>")
    return f"<table><thead><tr><th>metric</th>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _trades_table(trades: Sequence[Trade]) -> str:
    if not trades:
        return "<p class='meta'>No trade.</p>"
    rows = []
    for trade in trades[:MAX_TRADE_ROWS]:
        css = "win" if trade.pnl > 0 else "loss"
        r_multiple = "n/a" if trade.r_multiple is None else f"{trade.r_multiple:+.2f}"
        reason_css = " class='liquidation'" if trade.reason == LIQUIDATION else ""
        rows.append(
            "<tr>"
            f"<td>{_time(trade.entry_ms):%Y-%m-%d %H:%M}</td>"
            f"<td>{'long' if trade.side > 0 else 'short'}</td>"
            f"<td>{trade.entry_price:,.6g}</td>"
            f"<td>{_time(trade.exit_ms):%Y-%m-%d %H:%M}</td>"
            f"<td>{trade.exit_price:,.6g}</td>"
            f"<td{reason_css}>{html.escape(trade.reason)}</td>"
            f"<td class='{css}'>{trade.pnl:+,.2f}</td>"
            f"<td class='{css}'>{r_multiple}</td>"
            f"<td class='{css}'>{trade.return_pct:+.2f}%</td>"
            "</tr>"
        )
    more = (
        f"<p class='meta'>The first {MAX_TRADE_ROWS} of {len(trades)} trades; the chart shows them all.</p>"
        if len(trades) > MAX_TRADE_ROWS
        else ""
    )
    head = "".join(
        f"<th>{name}</th>"
        for name in ("entry (UTC)", "side", "entry", "exit (UTC)", "exit", "reason", "pnl", "R", "return")
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>{more}"


def render_report(report: BacktestReport, prices: Sequence[tuple[int, float]]) -> str:
    """The whole page as one HTML string, plotly's JavaScript inlined.

    Args:
        report: the backtest's result.
        prices: ``(ms, price)`` points of the price line, oldest first (``Journal.backtest_prices``).

    Raises:
        UsageError: plotly is not installed.
    """
    require_plotly()
    payload = report.to_json()
    figure = _figure(report, prices)
    # include_plotlyjs=True inlines plotly.js: the page works offline and fetches nothing.
    chart: str = figure.to_html(
        full_html=False, include_plotlyjs=True, config={"displaylogo": False, "responsive": True}
    )
    title = f"Rez backtest · {payload['symbol']} · {payload['from'][:10]} → {payload['to'][:10]}"
    every = payload["every"]
    fills = payload["fills"]
    market = " · ".join(
        html.escape(str(part))
        for part in (
            f"{payload['symbol']} on {payload['exchange']}",
            payload["timeframe"],
            f"{payload['from']} → {payload['to']}",
            f"a cycle every {every} candle{'s' if every > 1 else ''}",
            f"{payload['cycles']} cycles",
        )
    )
    entry = "open" if fills["entry"] == "open" else "entry price (limit)"
    costs = html.escape(
        f"fills: entry at the next candle's {entry}, fee {fills['fee_pct']:g}%, "
        f"slippage {fills['slippage_pct']:g}%, maintenance margin {fills['maintenance_margin_pct']:g}% "
        f"· model cost ${payload['cost_usd']:.4f} "
        f"({payload['llm_calls']} calls, {payload['cache_hits']} cached) · backtest {payload['backtest_id']}"
    )
    meta = [market, costs]
    notes = [f"<p class='warning'>warning: {html.escape(text)}</p>" for text in payload["warnings"]]
    notes += [f"<p class='meta'>note: {html.escape(text)}</p>" for text in payload["notices"]]
    if payload.get("stopped"):
        notes.append(
            f"<p class='warning'>incomplete: stopped early ({html.escape(str(payload['stopped']))})</p>"
        )
    simulated = (
        "<p class='simulated'>SIMULATED market: synthetic candles, not prices anyone traded at.</p>"
        if payload["simulated"]
        else ""
    )
    generated = datetime.now(tz=UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        "<!DOCTYPE html>\n<html lang='en'>\n<head>\n<meta charset='utf-8'>\n"
        f"<title>{html.escape(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
        f"<h1>{html.escape(title)}</h1>\n{simulated}\n"
        + "".join(f"<p class='meta'>{line}</p>\n" for line in meta)
        + "".join(notes)
        + "<h2>Metrics</h2>\n"
        + _metrics_table(payload)
        + "\n<h2>Price, equity and drawdown</h2>\n"
        + chart
        + "\n<h2>Trades</h2>\n"
        + _trades_table(report.strategy.trades)
        + f"\n<p class='meta'>Written by rez on {generated}.</p>\n</body>\n</html>\n"
    )


def write_report(report: BacktestReport, path: Path) -> Path:
    """Write the report page for ``report`` to ``path``, reading the price from its journal.

    Args:
        report: the backtest's result (its journal and backtest id locate the prices).
        path: the HTML file to write; its directory must exist.

    Returns:
        The path written.

    Raises:
        UsageError: plotly is not installed, or the file cannot be written.
        ConfigError: the journal cannot be read.
    """
    from rez_cli.journal.store import Journal

    with Journal(report.journal, create=False) as journal:
        prices = journal.backtest_prices(report.backtest_id)
    page = render_report(report, prices)
    target = Path(path).expanduser()
    try:
        target.write_text(page, encoding="utf-8")
    except OSError as error:
        raise UsageError(f"cannot write the report {target}: {error.strerror or error}") from None
    return target
