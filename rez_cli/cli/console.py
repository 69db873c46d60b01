"""The two streams: the trace and messages go to stderr, machine-readable output to stdout."""

from __future__ import annotations

import json
import os
import sys
from contextvars import ContextVar
from typing import Any

from rich.console import Console

PIPED_WIDTH = 120

# The arguments of this invocation, as main() received them (tests call main() with their own list),
# so the journal records what was run rather than the host process's sys.argv.
invocation_argv: ContextVar[tuple[str, ...]] = ContextVar("invocation_argv", default=())


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
