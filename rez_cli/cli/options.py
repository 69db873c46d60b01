"""Options shared by several commands, declared once."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from typer.models import OptionInfo

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="Config file (TOML). Default: $REZ_CONFIG, then the user config dir, then the shipped defaults.",
        show_default=False,
    ),
]
ProfileOption = Annotated[
    str | None,
    typer.Option(
        "--profile",
        "-p",
        help="Risk profile: conservative, moderate, aggressive, or a path to a .toml file. "
        "Default: \\[risk] profile.",
        show_default=False,
    ),
]
ExchangeOption = Annotated[
    str | None,
    typer.Option(
        "--exchange",
        "-e",
        help="A ccxt exchange id (binance, kraken, okx...) or 'sim' for the seeded offline market. "
        "Default: \\[exchange] id.",
        show_default=False,
    ),
]
DataOption = Annotated[
    Path | None,
    typer.Option(
        "--data",
        "-d",
        help="Read candles from a CSV/JSON/Parquet/Feather file or a freqtrade data directory "
        "instead of an exchange.",
        show_default=False,
    ),
]
TimeframeOption = Annotated[
    str | None,
    typer.Option(
        "--timeframe",
        help="Primary timeframe: the one trades are planned on (a backtest steps, fills and scores by "
        "its candles). Default: \\[market] timeframe.",
        show_default=False,
    ),
]
TimeframesOption = Annotated[
    str | None,
    typer.Option(
        "--timeframes",
        "-t",
        help="Comma-separated timeframes for the context, e.g. 15m,1h,4h. "
        "Default: \\[market] context_timeframes.",
        show_default=False,
    ),
]
NoCacheOption = Annotated[
    bool,
    typer.Option("--no-cache", help="Ask the exchange for every candle; neither read nor write the cache."),
]
AsOfOption = Annotated[
    str | None,
    typer.Option(
        "--as-of",
        help="See the market as it was then (2021-03-01T12:00, UTC): only candles closed by that moment.",
        show_default=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON on stdout and nothing else there.")]
JournalOption = Annotated[
    Path | None,
    typer.Option(
        "--journal",
        help="Journal file (SQLite). Default: \\[journal] path, else journal.sqlite in the user data dir.",
        show_default=False,
    ),
]
ModelOption = Annotated[
    str | None,
    typer.Option(
        "--model",
        "-m",
        help="Model name at the endpoint, or a .gguf file Rez serves itself. Default: \\[llm] model.",
        show_default=False,
    ),
]
NotifyOption = Annotated[
    str | None,
    typer.Option(
        "--notify",
        metavar="URL",
        help="POST a message to this webhook (Discord, Slack or any) when a position opens or a failure "
        "forces a hold. Default: \\[notify] webhook.",
        show_default=False,
    ),
]


def max_cost_option(help: str) -> Any:
    """``--max-cost USD``, its ``help`` saying what the budget stops."""
    return typer.Option("--max-cost", min=0, help=help, show_default=False)


def report_option(page: str) -> Any:
    """``--report FILE.html``, its help saying what the ``page`` shows."""
    return typer.Option(
        "--report",
        help=f"Also write {page} (needs the report extra: pip install 'rez-cli\\[report]').",
        dir_okay=False,
        show_default=False,
    )


def writable_path(path: Path, what: str) -> Path:
    """``path`` with ``~`` expanded, once its folder is known to exist.

    Raises:
        UsageError: the folder is not a directory (``what`` names the file in the message).
    """
    from rez_cli.config import paths
    from rez_cli.errors import UsageError

    target = paths.expand_user(path)
    if not target.parent.is_dir():
        raise UsageError(f"cannot write {what} {target}: {target.parent} is not a directory")
    return target


def report_target(path: Path) -> Path:
    """Where ``--report`` writes, checked before any work: a missing extra or folder must not cost a
    whole run's model calls.

    Raises:
        UsageError: plotly (the ``report`` extra) is not installed, or the folder does not exist.
    """
    from rez_cli.backtest.report import require_plotly

    require_plotly()
    return writable_path(path, "the report")


class _ModeOptionInfo(OptionInfo):
    """``--mode``, whose help lists the modes registered when the command line is built (typer builds
    it on every invocation), so that a mode a plugin registers shows up like Rez's own."""

    def __init__(self) -> None:
        super().__init__(default=..., param_decls=("--mode",), show_default=False)

    @property
    def help(self) -> str:
        from rez_cli.reasoning.registry import MODEL_MODE, OFFLINE_MODE, modes_help

        return f"{modes_help()}. Default: {MODEL_MODE} when a model is configured, else {OFFLINE_MODE}."

    @help.setter
    def help(self, value: str | None) -> None:
        # OptionInfo.__init__ sets it; the registry, not a fixed text, is what this help says.
        pass


ModeOption = Annotated[str | None, _ModeOptionInfo()]
