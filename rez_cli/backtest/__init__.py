"""Backtests: decision cycles replayed over history without look-ahead, traded and scored.

``walk`` runs them, ``history`` holds the candles and cuts them at each step, ``account.fills`` (the
engine the paper account shares) trades the decisions, ``metrics`` scores them.
"""

from rez_cli.account.fills import FillConfig
from rez_cli.backtest.walk import BacktestReport, BacktestRequest, Progress, run_backtest

__all__ = ["BacktestReport", "BacktestRequest", "FillConfig", "Progress", "run_backtest"]
