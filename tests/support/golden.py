"""Golden text files: what a ``rez`` command printed, compared byte for byte with a file in tests/golden/.

``REZ_UPDATE_GOLDEN=1 .venv/bin/pytest <test module>`` rewrites the files instead of comparing;
review the diff before committing it.

``normalise`` is the only place volatile text is replaced, and each rule is as narrow as it can be:
everything it leaves alone must match exactly.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

from tests.support.cli import Result

GOLDEN_DIR = Path(__file__).resolve().parents[1] / "golden"
# Read once at import: the autouse ``isolated_env`` fixture strips every REZ_* variable from each test.
UPDATE = os.environ.get("REZ_UPDATE_GOLDEN") == "1"

# The usage footer under the decision panel is one line that the terminal wraps at a space; where it wraps
# depends on how many digits each duration has, so it is compared unwrapped. It starts with the
# model and the LLM call count and ends with the trace id, which nothing else prints last.
_FOOTER = re.compile(
    r"^model \S+ · \d+ LLM calls · [^\n]*(?:\n[^\n]*)*?trace\s+(?:[0-9a-f]{16}|<trace-id>)$", re.M
)
# Wall time of a turn, a tool call or a stage: "· 77 ms ·", "· 1 ms" at the end of a tool-call line,
# "market 110 ms ·" in the footer. Always a bare integer before " ms", then " ·" or the line's end.
_DURATION = re.compile(r"(?<= )\d+ ms(?= ·|$)", re.M)


def normalise(text: str, *, replace: Mapping[str, str] | None = None, durations: bool = False) -> str:
    """``text`` with its volatile parts replaced by stable placeholders.

    Args:
        replace: exact strings known to vary from run to run (a tmp path, a trace id) and what to
            write instead; applied first, longest first, so a path inside another is not cut.
        durations: also replace measured durations with ``<n> ms`` and unwrap the usage footer;
            for output of a live run, never for one replayed from a journal, whose stored
            durations are fixed and must stay as they were.
    """
    known = replace or {}
    for old in sorted(known, key=len, reverse=True):
        text = text.replace(old, known[old])
    if durations:
        text = _FOOTER.sub(lambda match: re.sub(r" *\n", " ", match.group(0)), text)
        text = _DURATION.sub("<n> ms", text)
    return text


def render(args: tuple[str, ...], result: Result) -> str:
    """One command as a golden file shows it: the command, its exit code, stdout, then stderr."""
    return (
        f"$ rez {' '.join(args)}\nexit {result.exit_code}\n"
        f"--- stdout\n{result.stdout}--- stderr\n{result.stderr}--- end\n"
    )


def assert_golden(name: str, text: str) -> None:
    """``text`` equals tests/golden/``name``; with REZ_UPDATE_GOLDEN=1, ``name`` is rewritten instead."""
    path = GOLDEN_DIR / name
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8", newline="\n")
        return
    assert path.exists(), f"{path} is missing: run with REZ_UPDATE_GOLDEN=1 to write it"
    expected = path.read_text(encoding="utf-8")
    # Compared as lists of lines: pytest then shows which line changed, not one long string diff.
    assert text.splitlines(keepends=True) == expected.splitlines(keepends=True), (
        f"{name} differs from the golden file (REZ_UPDATE_GOLDEN=1 rewrites it, if the change is intended)"
    )
