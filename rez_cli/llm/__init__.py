"""Talking to a model: the client protocol, the OpenAI-compatible client, the local GGUF server, the
meter that counts tokens and cost, and the answer cache that lets a backtest rerun without calls."""
