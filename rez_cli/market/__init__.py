"""Candles from exchanges (ccxt), files and the simulator, validated the same way."""
