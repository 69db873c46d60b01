"""The two streams: the trace and messages go to stderr, machine-readable output to stdout."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from rich.console import Console

PIPED_WIDTH = 120


def stderr_console() -> Console:
    """A console on stderr; plain text when NO_COLOR is set or stderr is not a terminal.

    Piped output has no width to respect, so tables get room instead of Rich's 80-column default
    (COLUMNS still wins when set).
    """
    console = Console(stderr=True, no_color="NO_COLOR" in os.environ, highlight=False, soft_wrap=False)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console.width = PIPED_WIDTH
    return console


def stdout_console() -> Console:
    return Console(no_color="NO_COLOR" in os.environ, highlight=False)


def print_json_line(payload: Any) -> None:
    """One JSON object on one line of stdout: what cron pipes on."""
    sys.stdout.write(json.dumps(payload, separators=(",", ":"), allow_nan=False) + "\n")
    sys.stdout.flush()
