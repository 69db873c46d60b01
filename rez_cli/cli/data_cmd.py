"""``rez data``: candles on disk."""

from __future__ import annotations

import typer

app = typer.Typer(help="Download candles into files that --data reads (freqtrade's layout).", no_args_is_help=True)
