"""What ``rez --help`` costs beyond starting Python: the price of every command line typed at a shell.

    python bench/bench_startup.py

Runs the real console script in a subprocess, as a shell does, and the bare interpreter with
``python -c pass``, in interleaved rounds (a machine that gets busier halfway skews both alike). The
goal is a median ``rez --help`` at most 250 ms over the median ``python -c pass``: the help loads
typer and rich, and nothing a cycle needs (pandas, ccxt, openai, the journal). ``rez decide --help``
is shown as well, without a goal: typer validates a command's options with pydantic, which the top
level help does not load.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

ROUNDS = 15
GOAL_MS = 250.0


def rez_command() -> list[str]:
    """The installed console script next to this interpreter, else ``python -m rez_cli``."""
    script = Path(sys.executable).parent / "rez"
    return [str(script)] if script.exists() else [sys.executable, "-m", "rez_cli"]


def timed(command: Sequence[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} exited {done.returncode}:\n{done.stderr[-2000:]}")
    return seconds


def main() -> int:
    # The user's own config, keys and endpoints must not change what is measured.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REZ_", "OPENAI_"))}
    env["NO_COLOR"] = "1"
    commands = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "rez --help": [*rez_command(), "--help"],
        "rez decide --help": [*rez_command(), "decide", "--help"],
    }
    for command in commands.values():
        timed(command, env)  # the first run may compile bytecode
    times: dict[str, list[float]] = {label: [] for label in commands}
    for _ in range(ROUNDS):
        for label, command in commands.items():
            times[label].append(timed(command, env))
    median_ms = {label: statistics.median(seconds) * 1000 for label, seconds in times.items()}
    bare = median_ms["python -c pass"]
    print(f"rez: {' '.join(rez_command())}; medians of {ROUNDS} runs")
    for label, ms in median_ms.items():
        print(f"{label:<20} {ms:7.0f} ms  = {ms / bare:5.2f}x python -c pass")
    over = median_ms["rez --help"] - bare
    verdict = "ok" if over <= GOAL_MS else "MISSED"
    print(
        f"rez --help {over:.0f} ms over python -c pass, {median_ms['rez --help'] / bare:.2f}x"
        f" (goal <= {GOAL_MS:.0f} ms over python -c pass): {verdict}"
    )
    return 0 if over <= GOAL_MS else 1


if __name__ == "__main__":
    sys.exit(main())
