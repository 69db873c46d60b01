"""Rez: a command-line LLM trading assistant."""

__version__ = "0.1.0"
