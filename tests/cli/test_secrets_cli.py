"""Secrets as a user meets them: what reaches the terminal, the journal and the disk, and with what mode.

Real ccxt and the real openai SDK talk to the loopback fakes; everything is asserted on what a user
would see (stdout, stderr) or find (the files under REZ_HOME).
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from rez_cli.journal.store import Journal
from rez_cli.llm.cache import ResponseCache
from rez_cli.llm.client import ChatResponse, TokenUsage
from tests.support.cli import run
from tests.support.exchange_server import FAST_CCXT, NOW_MS, FakeBinance, exchange_config
from tests.support.openai_server import FakeOpenAI, reply

AS_OF = "2021-07-01T00:00"
KEY = "sk-test-ECHOED-KEY-5f2e9c1d"


@pytest.fixture(autouse=True)
def usual_umask() -> Iterator[None]:
    # What most systems start with: files 0644 and directories 0755 unless Rez asks for less.
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def everything_written(home: Path) -> bytes:
    return b"".join(path.read_bytes() for path in home.rglob("*") if path.is_file())


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def answer(rationale: str, invalidation: str | None = None) -> str:
    return json.dumps(
        {
            "action": "hold",
            "entry_price": None,
            "tp_price": None,
            "sl_price": None,
            "leverage": 1,
            "confidence": 0.4,
            "rationale": rationale,
            "invalidation": invalidation,
        }
    )


# -- a short key is no secret, and the journal keeps its shape ----------------------------------------------


def test_a_short_key_leaves_the_journal_whole_and_traces_show_and_replay_read_it(
    capsys: pytest.CaptureFixture[str], fake_openai: FakeOpenAI, isolated_env: Path, tmp_path: Path
) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f'[llm]\nmodel = "test-model"\nbase_url = "{fake_openai.base_url}"\napi_key = "x"\n')
    fake_openai.push(reply("x marks the spot: max_leverage stays at 1x.\n" + answer("mixed; x-axis flat")))

    decided = run(
        capsys, "decide", "BTC/USDT", "--exchange", "sim", "--as-of", AS_OF, "--json", "--config", str(config)
    )

    assert decided.exit_code == 0, decided.stderr
    [decision] = decided.json_lines()
    assert decision["rationale"] == "mixed; x-axis flat"
    record = Journal(isolated_env / "data" / "journal.sqlite", create=False).get_cycle(decision["trace_id"])
    assert "max_leverage" in record["profile"]
    assert record["turns"][0]["content"].startswith("x marks the spot: max_leverage")
    assert "***" not in json.dumps(record)
    shown = run(capsys, "traces", "show", decision["trace_id"], "--config", str(config))
    assert shown.exit_code == 0, shown.stderr
    assert "x marks the spot" in shown.stdout
    replayed = run(capsys, "traces", "replay", decision["trace_id"], "--config", str(config), "--json")
    assert replayed.exit_code == 0, replayed.stderr
    assert replayed.json_lines()[0]["changed"] is False


# -- a model that echoes the key --------------------------------------------------------------------------


@pytest.fixture(params=["config", "env", "base_url"])
def keyed_config(
    request: pytest.FixtureRequest, fake_openai: FakeOpenAI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """A config whose model key is ``KEY``: in the file, in OPENAI_API_KEY, or inside base_url."""
    url = fake_openai.base_url
    lines = ['[llm]\nmodel = "test-model"']
    if request.param == "config":
        lines += [f'base_url = "{url}"', f'api_key = "{KEY}"']
    elif request.param == "env":
        lines.append(f'base_url = "{url}"')
        monkeypatch.setenv("OPENAI_API_KEY", KEY)
    else:
        lines.append(f'base_url = "{url.replace("://", f"://rez:{KEY}@", 1)}"')
    config = tmp_path / "config.toml"
    config.write_text("\n".join(lines) + "\n")
    return config


def test_a_model_echoing_the_key_never_gets_it_on_screen_in_the_journal_or_in_a_trace(
    capsys: pytest.CaptureFixture[str], fake_openai: FakeOpenAI, keyed_config: Path, isolated_env: Path
) -> None:
    echo = reply(
        f"Your key is {KEY}.\n" + answer(f"the key {KEY} says hold", invalidation=f"when {KEY} expires")
    )
    fake_openai.push(echo, echo)
    common = ("--exchange", "sim", "--as-of", AS_OF, "--config", str(keyed_config))

    as_json = run(capsys, "decide", "BTC/USDT", *common, "--json")
    human = run(capsys, "decide", "BTC/USDT", *common)

    assert as_json.exit_code == human.exit_code == 0, as_json.stderr + human.stderr
    [decision] = as_json.json_lines()
    assert decision["rationale"] == "the key *** says hold"
    assert decision["invalidation"] == "when *** expires"
    assert "the key *** says hold" in human.stdout
    outputs = [as_json, human]
    for command in ("show", "export"):
        outputs.append(run(capsys, "traces", command, decision["trace_id"], "--config", str(keyed_config)))
    outputs.append(run(capsys, "traces", "list", "--config", str(keyed_config)))
    for result in outputs:
        assert KEY not in result.stdout + result.stderr
    assert KEY.encode() not in everything_written(isolated_env)
    assert (
        "Your key is ***."
        in Journal(isolated_env / "data" / "journal.sqlite").get_cycle(decision["trace_id"])["turns"][0][
            "content"
        ]
    )


# -- keys in URLs ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "base_url",
    [
        f"https://llm.example.test/v1?api_key={KEY}",
        f"https://llm.example.test/v1?key={KEY}&x=1",
        f"https://rez:{KEY}@llm.example.test/v1",
        f"https://{KEY}@llm.example.test/v1",
        f"rez:{KEY}@llm.example.test:8080/v1",
    ],
)
def test_config_show_never_prints_a_key_embedded_in_base_url(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, base_url: str
) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        f'[llm]\nbase_url = "{base_url}"\n[exchange.ccxt]\nproxy = "http://me:{KEY}-proxy@127.0.0.1:3128"\n'
    )
    human = run(capsys, "config", "show", "--config", str(config))
    as_json = run(capsys, "config", "show", "--config", str(config), "--json")

    assert human.exit_code == as_json.exit_code == 0
    for result in (human, as_json):
        assert KEY not in result.stdout + result.stderr
        assert "llm.example.test" in result.stdout
    values = as_json.json_lines()[0]["values"]
    assert "***" in values["llm.base_url"]["value"]
    assert values["exchange.ccxt.proxy"]["value"] == "http://***@127.0.0.1:3128"


def test_doctor_and_dry_run_name_the_endpoint_without_its_credentials(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, closed_port: int
) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        f'[llm]\nmodel = "m"\nbase_url = "http://rez:{KEY}@127.0.0.1:{closed_port}/v1?key={KEY}"\n'
    )

    results = [
        run(capsys, "doctor", "--config", str(config), "--exchange", "sim"),
        run(capsys, "doctor", "--config", str(config), "--exchange", "sim", "--json"),
        run(
            capsys,
            "decide",
            "BTC/USDT",
            "--exchange",
            "sim",
            "--as-of",
            AS_OF,
            "--dry-run",
            "--config",
            str(config),
        ),
        run(
            capsys,
            "decide",
            "BTC/USDT",
            "--exchange",
            "sim",
            "--as-of",
            AS_OF,
            "--config",
            str(config),
            "--json",
        ),
    ]

    for result in results:
        assert KEY not in result.stdout + result.stderr
    assert f"127.0.0.1:{closed_port}" in results[0].stdout
    assert f"127.0.0.1:{closed_port}" in results[2].stdout


@pytest.fixture
def closed_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# -- config errors -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("toml", "env"),
    [
        (f'[llm]\napi_key = ["{KEY}"]\n', {}),
        ("", {"REZ__LLM__API_KEY": json.dumps([KEY])}),
        ("", {"REZ__LLM": json.dumps([KEY])}),
        ("", {"REZ__EXCHANGE": json.dumps({"ccxt": f"{KEY}"})}),
        (f'[llm]\napi_key = "{KEY}"\ntimeout_s = "{KEY}"\n', {}),
    ],
)
def test_a_rejected_config_value_holding_a_key_is_never_echoed(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    toml: str,
    env: dict[str, str],
) -> None:
    config = tmp_path / "config.toml"
    config.write_text(toml)
    for name, value in env.items():
        monkeypatch.setenv(name, value)

    results = [
        run(capsys, "config", "show", "--config", str(config)),
        run(capsys, "decide", "BTC/USDT", "--exchange", "sim", "--config", str(config), "--json"),
        run(capsys, "doctor", "--config", str(config), "--exchange", "sim", "--json"),
    ]

    for result in results[:2]:
        assert result.exit_code == 2
        assert result.stdout == ""
        assert len(result.stderr.strip().splitlines()) == 1
        assert result.stderr.startswith("rez: error: ")
    assert json.loads(results[2].stdout)["checks"][2]["status"] == "fail"
    for result in results:
        assert KEY not in result.stdout + result.stderr


# -- nested exchange credentials ---------------------------------------------------------------------------

TOKEN = "hdr-TOKEN-nested-0a1b2c3d4e"


@pytest.fixture
def echoing_binance(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeBinance]:
    """A Binance that fails every request, quoting back the X-Auth-Token header it was sent."""
    with FakeBinance(now_ms=NOW_MS) as server:
        table = {**exchange_config(server), **FAST_CCXT, "headers": {"X-Auth-Token": TOKEN}}
        monkeypatch.setenv("REZ__EXCHANGE__CCXT", json.dumps(table))
        monkeypatch.setenv("REZ__EXCHANGE__RETRIES", "0")
        server.fail(500, times=None, path=None, echo_header="X-Auth-Token")
        yield server


def test_a_nested_header_echoed_by_the_exchange_never_reaches_a_user(
    capsys: pytest.CaptureFixture[str], echoing_binance: FakeBinance, isolated_env: Path
) -> None:
    as_of = str(NOW_MS)
    context = run(capsys, "context", "BTC/USDT", "--exchange", "binance", "--as-of", as_of)
    decided = run(capsys, "decide", "BTC/USDT", "--exchange", "binance", "--as-of", as_of, "--json")
    doctor = run(capsys, "doctor", "--exchange", "binance")
    download = run(
        capsys, "data", "download", "BTC/USDT", "--exchange", "binance", "--out", str(isolated_env / "dl")
    )

    # The header did reach the exchange, and came back in its error: the message is the one struck.
    assert any(request.headers.get("X-Auth-Token") == TOKEN for request in echoing_binance.requests)
    assert context.exit_code == 2
    assert len(context.stderr.strip().splitlines()) == 1
    assert "invalid X-Auth-Token: ***" in context.stderr
    assert decided.exit_code == 3
    [decision] = decided.json_lines()
    assert decision["error"] == "exchange_unavailable"
    assert "***" in decision["rationale"]
    for result in (context, decided, doctor, download):
        assert TOKEN not in result.stdout + result.stderr
    assert TOKEN.encode() not in everything_written(isolated_env)


# -- file modes ---------------------------------------------------------------------------------------


def test_config_init_writes_the_config_and_profiles_for_the_user_alone(
    capsys: pytest.CaptureFixture[str], isolated_env: Path
) -> None:
    assert run(capsys, "config", "init").exit_code == 0
    config_dir = isolated_env / "config"
    assert mode(config_dir) == mode(config_dir / "profiles") == 0o700
    written = [config_dir / "config.toml", *(config_dir / "profiles").glob("*.toml")]
    assert len(written) == 4
    assert all(mode(path) == 0o600 for path in written)

    (config_dir / "config.toml").chmod(0o644)
    assert run(capsys, "config", "init", "--force").exit_code == 0
    assert mode(config_dir / "config.toml") == 0o600


def test_the_journal_its_wal_and_shm_and_its_locks_are_the_users_alone(
    capsys: pytest.CaptureFixture[str], isolated_env: Path
) -> None:
    result = run(capsys, "decide", "BTC/USDT", "--exchange", "sim", "--as-of", AS_OF, "--json")
    assert result.exit_code == 0
    data = isolated_env / "data"
    assert mode(data) == 0o700
    assert mode(data / "journal.sqlite") == 0o600
    assert mode(data / "journal.sqlite.locks") == 0o700
    assert all(mode(lock) == 0o600 for lock in (data / "journal.sqlite.locks").iterdir())
    with Journal(data / "journal.sqlite") as journal, journal.lock("ETH/USDT") as lock:
        journal.list_cycles()  # a reader while open: the -wal and -shm files exist now
        siblings = [data / "journal.sqlite-wal", data / "journal.sqlite-shm", lock]
        assert all(path.exists() and mode(path) == 0o600 for path in siblings)


def test_candle_and_model_answer_caches_are_the_users_alone(
    capsys: pytest.CaptureFixture[str], isolated_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with FakeBinance(now_ms=NOW_MS) as server:
        monkeypatch.setenv("REZ__EXCHANGE__CCXT", json.dumps({**exchange_config(server), **FAST_CCXT}))
        result = run(capsys, "context", "BTC/USDT", "--exchange", "binance", "--as-of", str(NOW_MS), "--json")
    assert result.exit_code == 0, result.stderr
    cache = isolated_env / "cache"
    files = [path for path in cache.rglob("*") if path.is_file()]
    directories = [path for path in cache.rglob("*") if path.is_dir()]
    assert files
    assert all(mode(path) == 0o600 for path in files)
    assert all(mode(path) == 0o700 for path in [cache, *directories])

    answers = ResponseCache(cache / "llm" / "responses.jsonl")
    answers.put("k", ChatResponse(content="ok", usage=TokenUsage(1, 1), model="m", finish_reason="stop"))
    assert mode(cache / "llm") == 0o700
    assert mode(cache / "llm" / "responses.jsonl") == 0o600
