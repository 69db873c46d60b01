"""``rez config init`` and ``rez config show`` as a user runs them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rez_cli.config import paths
from rez_cli.redact import is_secret_key, mask_secret_keys
from tests.support.cli import run

SECRET = "sk-test-SECRET-1234"
CCXT_SECRET = "ccxt-SECRET-5678"


def test_init_writes_the_commented_config_and_the_three_profiles(
    capsys: pytest.CaptureFixture[str], isolated_env: Path
) -> None:
    result = run(capsys, "config", "init")
    assert result.exit_code == 0, result.stderr
    config_dir = isolated_env / "config"
    written = [
        config_dir / "config.toml",
        *(config_dir / "profiles" / f"{name}.toml" for name in ("aggressive", "conservative", "moderate")),
    ]
    for path in written:
        assert f"wrote {path}" in result.stdout
        shipped = paths.shipped_configs_dir() / path.relative_to(config_dir)
        assert path.read_text() == shipped.read_text()
    assert "# Rez configuration" in written[0].read_text()


def test_init_refuses_to_overwrite_without_force(
    capsys: pytest.CaptureFixture[str], isolated_env: Path
) -> None:
    assert run(capsys, "config", "init").exit_code == 0
    moderate = isolated_env / "config" / "profiles" / "moderate.toml"
    moderate.write_text("# mine\n")
    refused = run(capsys, "config", "init")
    assert refused.exit_code == 2
    assert refused.stdout == ""
    [line] = refused.stderr.strip().splitlines()
    assert str(isolated_env / "config" / "config.toml") in line
    assert "--force" in line
    assert moderate.read_text() == "# mine\n"
    forced = run(capsys, "config", "init", "--force")
    assert forced.exit_code == 0
    assert f"replaced {moderate}" in forced.stdout
    assert moderate.read_text() == (paths.shipped_configs_dir() / "profiles" / "moderate.toml").read_text()


def test_show_names_the_origin_of_every_value(
    capsys: pytest.CaptureFixture[str], isolated_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = isolated_env / "config" / "config.toml"
    user.parent.mkdir(parents=True)
    user.write_text(
        '[market]\ncandles = 500\n[exchange.ccxt]\ntimeout = 7000\n[risk]\nprofile = "aggressive"\n'
    )
    monkeypatch.setenv("REZ__MARKET__TIMEFRAME", "4h")
    monkeypatch.setenv("REZ__EXCHANGE__CCXT__RATELIMIT", "50")
    result = run(capsys, "config", "show", "--json")
    assert result.exit_code == 0, result.stderr
    [report] = result.json_lines()
    values = report["values"]
    assert report["config_file"] == str(user)
    assert report["shipped_defaults"] is False
    assert report["env_overrides"] == ["REZ__EXCHANGE__CCXT__RATELIMIT", "REZ__MARKET__TIMEFRAME"]
    assert values["market.candles"] == {"value": 500, "origin": str(user)}
    assert values["market.timeframe"] == {"value": "4h", "origin": "REZ__MARKET__TIMEFRAME"}
    # The shipped file is the layer under the user's: what it sets is named as its origin.
    assert values["market.seed"] == {"value": 7, "origin": str(paths.shipped_configs_dir() / "config.toml")}
    assert values["exchange.ccxt.timeout"] == {"value": 7000, "origin": str(user)}
    # Env keys are lower-cased on the way in, as load_settings reads them.
    assert values["exchange.ccxt.ratelimit"] == {"value": 50, "origin": "REZ__EXCHANGE__CCXT__RATELIMIT"}
    assert values["llm.api_key"] == {"value": None, "origin": "default"}
    assert report["profile"]["name"] == "aggressive"
    assert report["profile"]["file"].endswith("profiles/aggressive.toml")


def test_show_without_a_user_file_reads_the_shipped_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    [report] = run(capsys, "config", "show", "--json").json_lines()
    shipped = str(paths.shipped_configs_dir() / "config.toml")
    assert report["config_file"] == shipped
    assert report["shipped_defaults"] is True
    assert report["values"]["exchange.id"] == {"value": "binance", "origin": shipped}
    # Keys with dots are quoted as TOML quotes them.
    assert report["values"]['llm.prices."gpt-4.1"']["value"] == {"input": 2.0, "output": 8.0}
    assert report["profile"]["name"] == "moderate"


def test_an_env_table_replaces_the_file_table_and_takes_its_origin(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "rez.toml"
    config.write_text("[exchange.ccxt]\ntimeout = 7000\n")
    monkeypatch.setenv("REZ__EXCHANGE__CCXT", json.dumps({"rateLimit": 5}))
    [report] = run(capsys, "config", "show", "--config", str(config), "--json").json_lines()
    ccxt = {key: item for key, item in report["values"].items() if key.startswith("exchange.ccxt")}
    assert ccxt == {"exchange.ccxt.rateLimit": {"value": 5, "origin": "REZ__EXCHANGE__CCXT"}}


def test_show_redacts_every_secret(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "rez.toml"
    config.write_text(f'[llm]\napi_key = "{SECRET}"\n[exchange.ccxt]\nsecret = "{CCXT_SECRET}"\n')
    ccxt_env = {"apiKey": CCXT_SECRET + "-key", "headers": {"X-MBX-APIKEY": CCXT_SECRET}, "timeout": 1}
    monkeypatch.setenv("REZ__EXCHANGE__CCXT__OPTIONS", json.dumps(ccxt_env))
    for args in (("--json",), ()):
        result = run(capsys, "config", "show", "--config", str(config), *args)
        assert result.exit_code == 0, result.stderr
        assert SECRET not in result.stdout + result.stderr
        assert CCXT_SECRET not in result.stdout + result.stderr
    [report] = run(capsys, "config", "show", "--config", str(config), "--json").json_lines()
    values = report["values"]
    assert values["llm.api_key"] == {"value": "***", "origin": str(config)}
    assert values["exchange.ccxt.secret"]["value"] == "***"
    assert values["exchange.ccxt.options"]["value"] == {
        "apiKey": "***",
        "headers": {"X-MBX-APIKEY": "***"},
        "timeout": 1,
    }


def test_show_renders_a_table_with_origins(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REZ__LLM__MAX_TURNS", "3")
    result = run(capsys, "config", "show")
    assert result.exit_code == 0, result.stderr
    rows = {line.split()[0]: line.split() for line in result.stdout.splitlines() if line.strip()}
    assert rows["llm.max_turns"][1:] == ["3", "REZ__LLM__MAX_TURNS"]
    assert rows["llm.model"][1:] == ["null", "default"]
    assert "moderate" in rows["profile"]
    assert "REZ__LLM__MAX_TURNS" in rows["overrides"]


def test_show_of_an_invalid_config_is_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("[market]\ncandles = 10\n")
    result = run(capsys, "config", "show", "--config", str(config))
    assert result.exit_code == 2
    [line] = result.stderr.strip().splitlines()
    assert str(config) in line
    assert "market.candles" in line


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("apiKey", True),
        ("secret", True),
        ("password", True),
        ("uid", True),
        ("privateKey", True),
        ("walletAddress", True),
        ("token", True),
        ("X-MBX-APIKEY", True),
        ("timeout", False),
        ("rateLimit", False),
        ("options", False),
        ("fluid", False),
    ],
)
def test_secret_key_names(name: str, secret: bool) -> None:
    assert is_secret_key(name) is secret


def test_redact_keeps_empty_credentials_visible_as_empty() -> None:
    assert mask_secret_keys({"apiKey": "", "secret": None, "urls": [{"token": "x"}]}) == {
        "apiKey": "",
        "secret": None,
        "urls": [{"token": "***"}],
    }


def test_a_table_with_keys_from_file_and_env_names_both(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "rez.toml"
    config.write_text('[exchange.ccxt.options]\ndefaultType = "spot"\n')
    monkeypatch.setenv("REZ__EXCHANGE__CCXT__OPTIONS__ADJUSTFORTIMEDIFFERENCE", "true")
    [report] = run(capsys, "config", "show", "--config", str(config), "--json").json_lines()
    assert report["values"]["exchange.ccxt.options"] == {
        "value": {"defaultType": "spot", "adjustfortimedifference": True},
        "origin": f"{config} + REZ__EXCHANGE__CCXT__OPTIONS__ADJUSTFORTIMEDIFFERENCE",
    }


def test_a_user_file_setting_the_model_keeps_the_shipped_prices(
    capsys: pytest.CaptureFixture[str], isolated_env: Path
) -> None:
    """A file says what it changes; the defaults it does not mention stay, table by table."""
    user = isolated_env / "config" / "config.toml"
    user.parent.mkdir(parents=True)
    user.write_text('[llm]\nmodel = "gpt-4o-mini"\n[llm.prices]\n"my-local" = { input = 0, output = 0 }\n')
    [report] = run(capsys, "config", "show", "--json").json_lines()
    values = report["values"]
    shipped = str(paths.shipped_configs_dir() / "config.toml")
    assert values["llm.prices.gpt-4o-mini"] == {"value": {"input": 0.15, "output": 0.6}, "origin": shipped}
    assert values["llm.prices.my-local"] == {"value": {"input": 0.0, "output": 0.0}, "origin": str(user)}
    assert report["values"]["llm.model"] == {"value": "gpt-4o-mini", "origin": str(user)}
