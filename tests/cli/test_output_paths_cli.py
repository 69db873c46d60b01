"""Files a command writes are checked before any work: a folder that is not there, or a tape that
would be overwritten, is one line on stderr and exit 2, and nothing is fetched or walked."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.cli import run

SPAN = ("--from", "2021-01-01", "--to", "2021-01-02")


@pytest.mark.parametrize(
    ("command", "what"),
    [
        (("backtest", "BTC/USDT", "--exchange", "sim", "--mode", "rules", *SPAN, "--report"), "the report"),
        (("arena", "no-such.tape", "--report"), "the report"),
        (("tape", "record", "BTC/USDT", "--exchange", "sim", *SPAN, "-o"), "the tape"),
    ],
    ids=["backtest --report", "arena --report", "tape record -o"],
)
def test_a_file_in_a_missing_folder_is_refused_before_any_work(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, command: tuple[str, ...], what: str
) -> None:
    pytest.importorskip("plotly")  # without the report extra, --report is refused for that first
    target = tmp_path / "missing" / "out.file"
    result = run(capsys, *command, str(target))
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr == f"rez: error: cannot write {what} {target}: {target.parent} is not a directory\n"
    assert not target.parent.exists()


def test_tape_record_keeps_an_existing_file_without_force(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    existing = tmp_path / "kept.tape"
    existing.write_text("someone's notes")
    result = run(capsys, "tape", "record", "BTC/USDT", "--exchange", "sim", *SPAN, "-o", str(existing))
    assert result.exit_code == 2
    assert result.stderr == f"rez: error: {existing} exists: not overwriting it (use --force to replace it)\n"
    assert existing.read_text() == "someone's notes"
