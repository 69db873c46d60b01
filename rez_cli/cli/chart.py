"""``--chart``: a terminal price chart of the primary timeframe (plotext, an optional extra)."""

from __future__ import annotations

from rich.text import Text

from rez_cli.cycle.trace import ChartSeries
from rez_cli.decision.model import Decision
from rez_cli.display import display_str
from rez_cli.errors import UsageError
from rez_cli.formatting import price

CHART_HEIGHT = 18


def price_chart(series: ChartSeries, decision: Decision, *, width: int) -> Text:
    """Closes and EMA 20 with the entry, take-profit and stop-loss as horizontal lines.

    Raises:
        UsageError: plotext is not installed.
    """
    try:
        import plotext as plt
    except ImportError:
        raise UsageError("--chart needs plotext", hint="pip install 'rez-cli[chart]'") from None
    closes = series.close
    ema = series.ema_20
    plt.clear_figure()
    plt.plotsize(max(40, width), CHART_HEIGHT)
    plt.theme("clear")
    timeframe = display_str(series.timeframe, multiline=False)
    plt.plot(closes, label=f"close {timeframe}", color="white")
    first = next((i for i, value in enumerate(ema) if value is not None), len(ema))
    if first < len(ema):
        plt.plot(list(range(first + 1, len(ema) + 1)), ema[first:], label="EMA 20", color="cyan")
    levels = []
    for name, value, color in (
        ("entry", decision.entry_price, "white"),
        ("tp", decision.tp_price, "green"),
        ("sl", decision.sl_price, "red"),
    ):
        if value is not None:
            plt.hline(value, color)
            levels.append(f"{name} {price(value)}")
    # Labels drawn inside the plot collide with the legend; the title names the lines instead. The
    # drawing is read back as ANSI: the symbol is cleaned first, so it cannot smuggle in a link.
    plt.title(
        " · ".join([display_str(f"{decision.symbol} {decision.action.upper()}", multiline=False), *levels])
    )
    return Text.from_ansi(plt.build())
