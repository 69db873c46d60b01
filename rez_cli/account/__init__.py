"""Positions: the fill engine shared by backtests and the paper account, and the paper account."""
