"""Every bad input is exit 2 and one line on stderr, never a traceback (issue 8, section 4).

Each case is a kind, not an example: empty and garbage symbols, files that are not UTF-8, moments
before the market or after now, absurd timeframes and seeds, hostile candle files, a journal from a
newer Rez, an endpoint that reports absurd usage, and a stdout that is closed or whose reader left.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from rez_cli.journal.store import Journal
from tests.support.candles import make_candles
from tests.support.cli import Result, run
from tests.support.openai_server import FakeOpenAI, reply

AS_OF = "2021-07-01T00:00"
SIM = ("--exchange", "sim", "--mode", "rules")
HOLD = json.dumps(
    {
        "action": "hold",
        "entry_price": None,
        "tp_price": None,
        "sl_price": None,
        "leverage": 1,
        "confidence": 0.3,
        "rationale": "mixed",
        "invalidation": None,
    }
)


def one_line_exit_2(result: Result) -> str:
    """The one line on stderr of a run that must have ended in exit 2; nothing on stdout."""
    assert result.exit_code == 2, result
    assert "Traceback" not in result.stderr + result.stdout
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("rez: error: ")
    return lines[0]


@pytest.mark.parametrize(
    "symbol", ["", " ", "\t", "BTC USDT", "BTC/\nUSDT", "a\x1b[31m", "é" * 70, "///", "'"]
)
def test_a_symbol_that_names_no_market_is_refused(capsys: pytest.CaptureFixture[str], symbol: str) -> None:
    for command in (("decide", symbol, *SIM), ("context", symbol, "--exchange", "sim")):
        line = one_line_exit_2(run(capsys, *command, "--as-of", AS_OF))
        assert "symbol" in line


def test_symbols_are_checked_for_every_command(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    journal = str(tmp_path / "j.sqlite")
    for command in (
        ("backtest", "", *SIM, "--from", "2021-06-01", "--to", "2021-06-02"),
        ("data", "download", " ", "--since", "2021-01-01"),
        ("traces", "list", "--symbol", "", "--journal", journal),
        ("score", "--symbol", "a b", "--journal", journal),
        ("doctor", "--symbol", "", "--exchange", "sim"),
    ):
        Journal(Path(journal)).close()
        one_line_exit_2(run(capsys, *command))


@pytest.mark.parametrize("command", [("decide", "BTC/USDT", *SIM, "--as-of", AS_OF), ("config", "show")])
def test_a_config_that_is_not_utf8(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, command: tuple[str, ...]
) -> None:
    config = tmp_path / "config.toml"
    config.write_bytes(b'[market]\ntimeframe = "1h"\n# caf\xe9\n')
    line = one_line_exit_2(run(capsys, *command, "--config", str(config)))
    assert "not UTF-8" in line
    assert str(config) in line


def test_a_profile_that_is_not_utf8(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    profile = tmp_path / "mine.toml"
    profile.write_bytes(b"max_leverage = 2\n\xff\xfe\n")
    line = one_line_exit_2(
        run(capsys, "decide", "BTC/USDT", *SIM, "--as-of", AS_OF, "--profile", str(profile))
    )
    assert "not UTF-8" in line


def test_toml_nested_too_deeply(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    config = tmp_path / "deep.toml"
    config.write_text("a = " + "[" * 50_000 + "]" * 50_000 + "\n")
    assert "nested too deeply" in one_line_exit_2(run(capsys, "config", "show", "--config", str(config)))


@pytest.mark.parametrize("as_of", ["2014-12-31", "2015-01-01T00:00", "1970-01-01", "0"])
def test_as_of_before_the_simulated_market_starts(capsys: pytest.CaptureFixture[str], as_of: str) -> None:
    line = one_line_exit_2(run(capsys, "decide", "BTC/USDT", *SIM, "--as-of", as_of))
    assert "it starts at 2015-01-01" in line


@pytest.mark.parametrize(
    "command",
    [
        ("decide", "BTC/USDT", *SIM, "--as-of", "{future}"),
        ("decide", "BTC/USDT", *SIM, "--dry-run", "--as-of", "{future}"),
        ("context", "BTC/USDT", "--exchange", "sim", "--as-of", "{future}"),
        ("backtest", "BTC/USDT", *SIM, "--from", "2021-06-01", "--to", "{future}"),
        ("backtest", "BTC/USDT", *SIM, "--from", "{future}"),
        ("data", "download", "BTC/USDT", "--since", "{future}"),
        ("data", "download", "BTC/USDT", "--since", "2021-01-01", "--until", "{future}"),
    ],
)
@pytest.mark.parametrize("future", ["2031-01-01", "9999-12-31T23:59", "99999999999999"])
def test_a_future_moment_is_refused_everywhere(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, command: tuple[str, ...], future: str
) -> None:
    args = [part.replace("{future}", future) for part in command]
    journal = tmp_path / "j.sqlite"
    line = one_line_exit_2(run(capsys, *args, *(("--journal", str(journal)) if args[0] == "decide" else ())))
    assert "is in the future" in line
    assert not journal.exists(), "refused before anything was written"


@pytest.mark.parametrize("moment", ["10000-01-01", "-5", "99999999999999999999999", "²", "nan", "\udcff"])
def test_moments_that_are_no_dates(capsys: pytest.CaptureFixture[str], moment: str) -> None:
    one_line_exit_2(run(capsys, "decide", "BTC/USDT", *SIM, "--as-of", moment))


@pytest.mark.parametrize("timeframes", ["100000w", "53w", "9999999999999999999999m", "²h", "1h,100000w"])
def test_absurd_timeframes(capsys: pytest.CaptureFixture[str], tmp_path: Path, timeframes: str) -> None:
    one_line_exit_2(run(capsys, "context", "BTC/USDT", "--exchange", "sim", "--timeframes", timeframes))
    config = tmp_path / "config.toml"
    config.write_text(f'[market]\ntimeframe = "{timeframes.split(",")[-1]}"\n')
    one_line_exit_2(run(capsys, "decide", "BTC/USDT", *SIM, "--as-of", AS_OF, "--config", str(config)))


@pytest.mark.parametrize("seed", ["-1", "-99999999999999999999", str(2**64)])
def test_a_seed_numpy_cannot_take(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seed: str
) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f"[market]\nseed = {seed}\n")
    assert "market.seed" in one_line_exit_2(
        run(capsys, "decide", "BTC/USDT", *SIM, "--as-of", AS_OF, "--config", str(config))
    )
    monkeypatch.setenv("REZ__MARKET__SEED", seed)
    assert "market.seed" in one_line_exit_2(run(capsys, "context", "BTC/USDT", "--exchange", "sim"))


def test_a_json_candle_file_nested_too_deeply(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "BTC_USDT-1h.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    line = one_line_exit_2(run(capsys, "context", "BTC/USDT", "--data", str(path), "-t", "1h"))
    assert str(path) in line


@pytest.mark.parametrize("data", ["/dev/null", "/dev/zero", "fifo", "unreadable"])
def test_data_that_is_not_a_file_or_directory(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, data: str
) -> None:
    if data == "fifo":
        os.mkfifo(tmp_path / "fifo")
        data = str(tmp_path / "fifo")
    elif data == "unreadable":
        if os.geteuid() == 0:
            pytest.skip("root reads any directory")
        folder = tmp_path / "locked"
        folder.mkdir(mode=0)
        data = str(folder)
    one_line_exit_2(run(capsys, "decide", "BTC/USDT", "--mode", "rules", "--data", data))


def test_a_csv_error_names_the_line_the_user_can_find(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    frame = make_candles(40, seed=5)
    lines = frame.to_csv(index=False).splitlines()
    # Blank lines, as hand-edited files have: pandas skips them, the user's editor does not.
    lines.insert(3, "")
    lines.insert(10, "   ")
    bad = lines[20].split(",")
    bad[4] = "-1"  # the close of the candle on line 21
    lines[20] = ",".join(bad)
    path = tmp_path / "BTC_USDT-1h.csv"
    path.write_text("\n".join(lines) + "\n")
    line = one_line_exit_2(run(capsys, "context", "BTC/USDT", "--data", str(path), "-t", "1h"))
    assert "line 21 " in line
    lines[20] = lines[20].replace("-1", "abc")
    path.write_text("\n".join(lines) + "\n")
    assert "line 21: close 'abc' is not a number" in one_line_exit_2(
        run(capsys, "context", "BTC/USDT", "--data", str(path), "-t", "1h")
    )


def test_a_journal_from_a_newer_rez_is_refused_before_anything_is_written(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "j.sqlite"
    Journal(path).close()
    db = sqlite3.connect(path)
    db.execute("INSERT INTO _migrations (name, applied_ms) VALUES ('m999_from_the_future', 0)")
    db.commit()
    db.close()
    before = path.read_bytes()
    for command in (("decide", "BTC/USDT", *SIM, "--as-of", AS_OF), ("traces", "list"), ("score",)):
        line = one_line_exit_2(run(capsys, *command, "--journal", str(path)))
        assert "newer Rez" in line
        assert "m999_from_the_future" in line
    assert path.read_bytes() == before
    assert not (tmp_path / "j.sqlite.locks").exists()


def test_usage_errors_of_the_parser_are_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    for command in (
        ("decide",),
        ("decide", "BTC/USDT", "--max-turns", "0"),
        ("decide", "BTC/USDT", "--max-cost", "nan"),
        ("decide", "BTC/USDT", "--concurrency", "1e308"),
        ("backtest", "BTC/USDT", "--equity", "inf"),
        ("backtest", "BTC/USDT", "--fee-pct", "-1"),
        ("no-such-command",),
        ("decide", "BTC/USDT", "--no-such-option"),
    ):
        line = one_line_exit_2(run(capsys, *command))
        assert "--help" in line


@pytest.mark.parametrize(
    "path",
    ["~nosuchuser-rez/x.toml", "x" * 5000, "\udcff.toml"],
    ids=["unknown-user", "too-long", "not-utf8"],
)
def test_paths_the_system_cannot_take(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, path: str
) -> None:
    monkeypatch.chdir(tmp_path)  # a relative path that works is created here, not in the repository
    for option in ("--config", "--profile", "--journal", "--data"):
        command = ["decide", "BTC/USDT", *SIM, "--as-of", AS_OF, option, path]
        if option != "--journal":
            command += ["--journal", str(tmp_path / "j.sqlite")]
        result = run(capsys, *command)
        if result.exit_code == 0:
            # A valid, if odd, file name.
            assert option == "--journal"
            assert path.startswith("\udcff")
            continue
        one_line_exit_2(result)
    for command in (("traces", "list", "--journal", path), ("score", "--journal", path)):
        result = run(capsys, *command)
        if not (result.exit_code == 0 and path.startswith("\udcff")):  # journaled just above
            one_line_exit_2(result)


def test_argv_that_is_not_utf8_is_journaled(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    journal = tmp_path / "j.sqlite"
    result = run(
        capsys,
        "decide",
        "BTC/USDT",
        *SIM,
        "--as-of",
        AS_OF,
        "--json",
        "--journal",
        str(journal),
        "--model",
        "m\udcff",
    )
    assert result.exit_code == 0, result
    db = sqlite3.connect(journal)
    [(argv,)] = db.execute("SELECT argv FROM runs").fetchall()
    db.close()
    assert "\\udcff" in argv


def test_absurd_token_counts_are_bounded_and_the_cycle_completes(
    capsys: pytest.CaptureFixture[str],
    fake_openai: FakeOpenAI,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", fake_openai.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-0123456789")
    monkeypatch.setenv("REZ__LLM__MODEL", "test-model")
    fake_openai.push(reply(HOLD, usage=(10**19, 10**30)))
    journal = tmp_path / "j.sqlite"
    result = run(
        capsys,
        "decide",
        "BTC/USDT",
        "--exchange",
        "sim",
        "--as-of",
        AS_OF,
        "--json",
        "--journal",
        str(journal),
    )
    assert result.exit_code == 0, result
    [decision] = result.json_lines()
    assert decision["usage"]["prompt_tokens"] <= 10**9
    assert decision["usage"]["completion_tokens"] <= 10**9
    db = sqlite3.connect(journal)
    [(finished, status)] = db.execute("SELECT finished_ms, status FROM cycles").fetchall()
    [(prompt, completion)] = db.execute("SELECT prompt_tokens, completion_tokens FROM turns").fetchall()
    db.close()
    assert finished is not None
    assert status == "decided"
    assert prompt <= 10**9
    assert completion <= 10**9


def test_two_spellings_of_a_market_take_one_lock_and_journal_one_symbol(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    journal = tmp_path / "j.sqlite"
    with Journal(journal).lock("BTC/USDT"):
        for spelling in ("btc/usdt", "BTC-USDT", "btc_usdt", " Btc/Usdt "):
            result = run(capsys, "decide", spelling, *SIM, "--as-of", AS_OF, "--journal", str(journal))
            assert result.exit_code == 4, (spelling, result)
            assert len(result.stderr.splitlines()) == 1
    for spelling in ("btc/usdt", "BTC-USDT"):
        result = run(capsys, "decide", spelling, *SIM, "--as-of", AS_OF, "--json", "--journal", str(journal))
        assert result.exit_code == 0, result
        assert result.json_lines()[0]["symbol"] == "BTC/USDT"
    both = run(
        capsys, "decide", "btc/usdt", "BTC/USDT", *SIM, "--as-of", AS_OF, "--json", "--journal", str(journal)
    )
    assert both.exit_code == 0, both
    assert [line["symbol"] for line in both.json_lines()] == ["BTC/USDT"]
    db = sqlite3.connect(journal)
    assert {row[0] for row in db.execute("SELECT symbol FROM cycles")} == {"BTC/USDT"}
    db.close()
    listed = run(capsys, "traces", "list", "--symbol", "btc-usdt", "--journal", str(journal), "--json")
    assert listed.exit_code == 0
    assert len(listed.json_lines()) == 3


# -- the process as a shell runs it: closed stdout, a reader that leaves -----------------------------


DECIDE = ["decide", "BTC/USDT", "ETH/USDT", "SOL/USDT", *SIM, "--as-of", AS_OF, "--json"]


def test_a_closed_stdout_is_one_line_and_exit_2(tmp_path: Path) -> None:
    journal = tmp_path / "j.sqlite"
    done = subprocess.run(
        [
            "/bin/sh",
            "-c",
            'exec "$@" >&-',
            "sh",
            sys.executable,
            "-m",
            "rez_cli",
            *DECIDE,
            "--journal",
            str(journal),
        ],
        env={**os.environ, "REZ_HOME": str(tmp_path / "home"), "NO_COLOR": "1"},
        stderr=subprocess.PIPE,
        timeout=120,
        check=False,
    )
    stderr = done.stderr.decode()
    assert done.returncode == 2, stderr
    assert "Traceback" not in stderr
    assert stderr.splitlines() == [
        "rez: error: cannot write to stdout: it is closed (redirect it to a file or /dev/null instead)"
    ]
    # The descriptor of the closed stdout was not handed to the journal: nothing was written into it.
    db = sqlite3.connect(journal)
    assert db.execute("SELECT COUNT(*) FROM cycles").fetchone()[0] == 3
    db.close()


def test_a_broken_pipe_exits_quietly_with_141(tmp_path: Path) -> None:
    for args in (DECIDE, ["decide", "BTC/USDT", *SIM, "--as-of", AS_OF], ["config", "show"], ["--help"]):
        # The reader has left before Rez writes: every write to stdout meets a closed pipe (EPIPE).
        read_end, write_end = os.pipe()
        os.close(read_end)
        try:
            done = subprocess.run(
                [sys.executable, "-m", "rez_cli", *args],
                env={**os.environ, "REZ_HOME": str(tmp_path / "home"), "NO_COLOR": "1", "COLUMNS": "120"},
                stdout=write_end,
                stderr=subprocess.PIPE,
                timeout=120,
                check=False,
            )
        finally:
            os.close(write_end)
        stderr = done.stderr.decode()
        assert done.returncode == 141, (args, stderr)
        assert "Traceback" not in stderr
        assert "Exception ignored" not in stderr
        assert "BrokenPipe" not in stderr


def test_a_closed_stderr_changes_nothing_but_what_is_seen(tmp_path: Path) -> None:
    env = {**os.environ, "REZ_HOME": str(tmp_path / "home"), "NO_COLOR": "1"}
    for args, code in ((["decide", "", *SIM], 2), ([*DECIDE[:1], "BTC/USDT", *DECIDE[4:]], 0)):
        done = subprocess.run(
            ["/bin/sh", "-c", 'exec "$@" 2>&-', "sh", sys.executable, "-m", "rez_cli", *args],
            env=env,
            stdout=subprocess.PIPE,
            timeout=120,
            check=False,
        )
        assert done.returncode == code, (args, done.returncode, done.stdout[-500:])
        # The error line has nowhere to go; it must not land in stdout, where the JSON goes.
        assert [json.loads(line)["symbol"] for line in done.stdout.splitlines()] == (
            ["BTC/USDT"] if code == 0 else []
        )


def test_a_damaged_journal_is_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    journal = tmp_path / "j.sqlite"
    decided = run(capsys, "decide", "BTC/USDT", *SIM, "--as-of", AS_OF, "--json", "--journal", str(journal))
    trace_id = decided.json_lines()[0]["trace_id"]
    db = sqlite3.connect(journal)
    db.execute("UPDATE cycles SET decision = '{not json', trace = '[', started_ms = 10 * 1e17")
    db.commit()
    db.close()
    assert run(capsys, "traces", "list", "--journal", str(journal)).exit_code == 0
    for command in (
        ("traces", "show", trace_id),
        ("traces", "export", trace_id),
        ("traces", "replay", trace_id),
    ):
        assert "is damaged" in one_line_exit_2(run(capsys, *command, "--journal", str(journal)))
    garbage = tmp_path / "garbage.sqlite"
    garbage.write_bytes(b"\x00\xff" * 4000)
    for command in (("traces", "list"), ("score",), ("decide", "BTC/USDT", *SIM, "--as-of", AS_OF)):
        one_line_exit_2(run(capsys, *command, "--journal", str(garbage)))


def test_counts_too_big_for_the_journal_are_refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    journal = tmp_path / "j.sqlite"
    Journal(journal).close()
    for command in (("traces", "list", "--limit", str(10**30)), ("score", "--horizon", str(10**30))):
        one_line_exit_2(run(capsys, *command, "--journal", str(journal)))


def test_data_download_refuses_what_it_cannot_write(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.support.exchange_server import FAST_CCXT, NOW_MS, FakeBinance, exchange_config

    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    resumed = tmp_path / "resumed"
    resumed.mkdir()
    (resumed / "BTC_USDT-1h.json").write_text("[" * 100_000)
    since = str(NOW_MS // 3_600_000 * 3_600_000 - 50 * 3_600_000)
    with FakeBinance(now_ms=NOW_MS) as server:
        monkeypatch.setenv("REZ__EXCHANGE__CCXT", json.dumps({**exchange_config(server), **FAST_CCXT}))
        for out in ("/dev/null", str(a_file), str(a_file / "sub"), "x" * 5000, str(resumed)):
            result = run(
                capsys,
                "data",
                "download",
                "BTC/USDT",
                "--exchange",
                "binance",
                "--since",
                since,
                "--out",
                out,
            )
            one_line_exit_2(result)
        for bad in (("--timeframe", "52w"), ("--timeframe", "100000w"), ("--format", "xml")):
            args = ("data", "download", "BTCUSDT", "--exchange", "binance", "--since", since, *bad)
            one_line_exit_2(run(capsys, *args, "--out", str(tmp_path / "out")))


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("REZ_HOME", "x" * 5000),
        ("REZ_HOME", "~nosuchuser-rez"),
        ("REZ_CONFIG", "/"),
        ("REZ_CONFIG", "~nosuchuser-rez/c.toml"),
        ("REZ__MARKET", "5"),
        ("REZ__EXCHANGE__CCXT", "[1]"),
        ("REZ__JOURNAL__PATH", "/"),
        ("REZ__MARKET__CANDLES", "1e400"),
        ("REZ__MARKET__CONTEXT_TIMEFRAMES", "[" * 50_000),
    ],
)
def test_environment_overrides_that_cannot_be_used(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    one_line_exit_2(run(capsys, "decide", "BTC/USDT", *SIM, "--as-of", AS_OF))


def test_a_candle_file_that_is_not_a_regular_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    (tmp_path / "BTC_USDT-1h.csv").symlink_to(tmp_path / "loop")
    (tmp_path / "loop").symlink_to(tmp_path / "BTC_USDT-1h.csv")
    os.mkfifo(tmp_path / "ETH_USDT-1h.csv")
    for symbol in ("BTC/USDT", "ETH/USDT"):
        line = one_line_exit_2(run(capsys, "context", symbol, "--data", str(tmp_path), "-t", "1h"))
        assert "not a regular file" in line
