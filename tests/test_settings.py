from __future__ import annotations

from pathlib import Path

import pytest

from rez_cli.config.settings import load_profile, load_settings
from rez_cli.errors import ConfigError


def test_shipped_defaults_load_without_any_user_file() -> None:
    loaded = load_settings()
    assert loaded.path is not None
    assert loaded.path.name == "config.toml"
    assert loaded.value.exchange.id == "binance"
    assert loaded.value.market.timeframe == "1h"
    assert loaded.value.market.context_timeframes == ["15m", "1h", "4h"]
    assert loaded.value.market.candles >= 300
    assert loaded.value.llm.max_turns == 6


def test_lookup_order_explicit_then_env_then_user_dir(
    isolated_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = isolated_env / "config" / "config.toml"
    user.parent.mkdir(parents=True)
    user.write_text('[market]\ntimeframe = "4h"\n')
    assert load_settings().value.market.timeframe == "4h"
    env_file = tmp_path / "env.toml"
    env_file.write_text('[market]\ntimeframe = "15m"\n')
    monkeypatch.setenv("REZ_CONFIG", str(env_file))
    assert load_settings().value.market.timeframe == "15m"
    explicit = tmp_path / "explicit.toml"
    explicit.write_text('[market]\ntimeframe = "1d"\n')
    assert load_settings(explicit).value.market.timeframe == "1d"


def test_env_overrides_a_single_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REZ__MARKET__CONTEXT_TIMEFRAMES", '["4h", "1h"]')
    monkeypatch.setenv("REZ__LLM__MAX_TURNS", "3")
    settings = load_settings().value
    assert settings.market.context_timeframes == ["1h", "4h"]
    assert settings.llm.max_turns == 3


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("[market]\ncandles = 10\n", "market.candles: Input should be greater than or equal to 50"),
        ('[market]\ntimeframe = "7x"\n', "market.timeframe:"),
        ("[exchange]\nidd = 'binance'\n", "exchange.idd: unknown key"),
        ("[llm]\nmax_turns = 'six'\n", "llm.max_turns:"),
        ("[market\n", "not valid TOML"),
    ],
)
def test_bad_config_names_file_and_key(tmp_path: Path, content: str, expected: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(content)
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    message = caught.value.one_line()
    assert str(path) in message
    assert expected in message
    assert "\n" not in message


def test_missing_config_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_settings(tmp_path / "nope.toml")


@pytest.mark.parametrize(
    ("name", "max_leverage", "risk", "position", "reward_risk", "deviation"),
    [
        ("conservative", 2, 0.5, 10, 2.0, 0.5),
        ("moderate", 5, 1.0, 25, 1.5, 1.0),
        ("aggressive", 10, 2.0, 50, 1.2, 2.0),
    ],
)
def test_shipped_profiles_have_the_documented_limits(
    name: str, max_leverage: float, risk: float, position: float, reward_risk: float, deviation: float
) -> None:
    profile = load_profile(name).value
    assert profile.name == name
    assert (profile.max_leverage, profile.risk_per_trade_pct, profile.max_position_pct) == (
        max_leverage,
        risk,
        position,
    )
    assert profile.require_stop_loss is True
    assert (profile.min_reward_risk, profile.max_entry_deviation_pct) == (reward_risk, deviation)
    assert set(profile.allowed_actions) == {"buy", "sell", "hold"}


def test_profile_by_path_and_its_errors(tmp_path: Path) -> None:
    path = tmp_path / "mine.toml"
    path.write_text(
        "max_leverage = 3\nrisk_per_trade_pct = 1\nmax_position_pct = 20\n"
        "min_reward_risk = 1\nmax_entry_deviation_pct = 1\nallowed_actions = ['buy', 'hold']\n"
    )
    profile = load_profile(str(path)).value
    assert profile.name == "mine"
    assert profile.allowed_actions == ["buy", "hold"]
    path.write_text("max_leverage = 0\n")
    with pytest.raises(
        ConfigError, match=r"mine.toml: max_leverage: Input should be greater than or equal to 1"
    ):
        load_profile(str(path))
    with pytest.raises(ConfigError, match="unknown risk profile 'yolo'"):
        load_profile("yolo")


def test_secrets_of_finds_every_credential(monkeypatch: pytest.MonkeyPatch) -> None:
    from rez_cli.config.settings import secrets_of

    monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
    monkeypatch.setenv("REZ__LLM__API_KEY", "sk-config")
    monkeypatch.setenv(
        "REZ__EXCHANGE__CCXT",
        '{"apiKey": "ex-key", "secret": "ex-secret", "timeout": 5000, '
        '"headers": {"X-MBX-APIKEY": "hdr-key"}, "options": {"defaultType": "spot"}}',
    )
    found = secrets_of(load_settings().value)
    assert sorted(found) == ["ex-key", "ex-secret", "hdr-key", "sk-config", "sk-env"]


def test_credentials_in_extra_headers_and_body_are_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    from rez_cli.config.settings import secrets_of

    monkeypatch.setenv(
        "REZ__LLM__EXTRA_HEADERS", '{"Authorization": "Bearer proxy-token-123", "X-Title": "rez"}'
    )
    monkeypatch.setenv("REZ__LLM__EXTRA_BODY", '{"provider": {"api_key": "nested-key-456"}, "num_ctx": 8}')
    found = secrets_of(load_settings().value)
    assert "Bearer proxy-token-123" in found
    assert "nested-key-456" in found
    assert "rez" not in found


def test_a_huge_rejected_value_is_cut_on_its_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REZ__MARKET__CANDLES", "9" * 200_000)
    with pytest.raises(ConfigError) as raised:
        load_settings()
    line = raised.value.one_line()
    assert "market.candles" in line
    assert len(line) < 400
    assert "\n" not in line
