"""Run every benchmark, one after another, then summarize their verdicts.

    python bench/run.py                  # all of them but the opt-in ones
    python bench/run.py decide fetch     # only those whose file name contains a word given
    python bench/run.py real_model       # an opt-in one runs only when named

``bench_real_model.py`` is opt-in: it serves a real model (SmolLM2 on llama.cpp, a 98 MB download on
the first run) on real candles from a data directory, and takes minutes.

Each benchmark runs in its own process (as it would alone), so one's imports and caches never warm
up another. Their output is shown as it comes; the summary repeats each line that states a goal and
the exit status (1 when a goal was missed). The numbers depend on the machine: run them on an idle
one, and compare ratios rather than absolute times.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHMARKS = (
    "bench_startup.py",
    "bench_fetch.py",
    "bench_indicators.py",
    "bench_invalidation.py",
    "bench_paper.py",
    "bench_decide.py",
    "bench_backtest.py",
    "bench_journal.py",
    "bench_text_and_tape.py",
)
# Run only when a word given names them: they need what a plain checkout does not have.
# bench_arena.py: three contestants × 500 cycles of a 1 s fake model, alone then together (~35 min).
OPT_IN = ("bench_real_model.py", "bench_arena.py")


def run_one(path: Path) -> tuple[int, float, list[str]]:
    """Run one benchmark, echoing its output; return its exit code, wall time and output lines."""
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, str(path)],
        cwd=HERE.parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
    )
    assert process.stdout is not None
    lines = []
    for line in process.stdout:
        print(f"  {line}", end="", flush=True)
        lines.append(line.rstrip("\n"))
    code = process.wait()
    return code, time.perf_counter() - started, lines


def main(argv: list[str]) -> int:
    chosen = [name for name in BENCHMARKS if not argv or any(word in name for word in argv)]
    chosen += [name for name in OPT_IN if any(word in name.removeprefix("bench_") for word in argv)]
    if not chosen:
        known = ", ".join((*BENCHMARKS, *OPT_IN))
        print(f"no benchmark matches {' '.join(argv)}; there are {known}", file=sys.stderr)
        return 2
    results = []
    for name in chosen:
        print(f"== {name}", flush=True)
        results.append((name, *run_one(HERE / name)))
    print("\n== summary")
    worst = 0
    for name, code, seconds, lines in results:
        status = {0: "ok", 1: "goal MISSED"}.get(code, f"FAILED (exit {code})")
        print(f"{name:<22} {status:<12} ({seconds:.0f} s)")
        verdicts = [line.strip() for line in lines if "goal <=" in line or "goal >=" in line]
        for line in verdicts or ["(measures only: no goal)"]:
            print(f"    {line}")
        worst = max(worst, code)
    return worst


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
