"""Any TOML value at any key of the config or a risk profile ends in a valid config or in exit 2 with
one line: never a traceback (issue 8)."""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from rez_cli.config.settings import RiskProfile, Settings, load_profile, load_settings
from rez_cli.errors import ConfigError
from tests.support.cli import run


def _keys(model: type[BaseModel], prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found: list[tuple[str, ...]] = []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            found += _keys(annotation, (*prefix, name))
        else:
            found.append((*prefix, name))
    return found


SETTINGS_KEYS = [
    *_keys(Settings),
    ("market", "unknown"),
    ("exchange", "ccxt", "timeout"),
    ("exchange", "ccxt", "options", "defaultType"),
    ("llm", "prices", "m"),
]
PROFILE_KEYS = [(name,) for name in RiskProfile.model_fields] + [("unknown",)]


def toml_value(value: Any) -> str:
    """``value`` written as TOML (no TOML writer is a dependency)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # JSON's escapes are TOML's; a lone surrogate makes invalid TOML
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    return "{" + ", ".join(f"{json.dumps(str(k))} = {toml_value(v)}" for k, v in value.items()) + "}"


scalars = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.integers(),
    st.floats(),
    st.text(max_size=12),
    st.sampled_from(["1h", "100000w", "sim", "~nosuchuser/x", "", "moderate", "/dev/null", "hold"]),
    st.datetimes(timezones=st.just(dt.UTC)),
    st.dates(),
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(min_size=1, max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)


def write(path: Path, key: tuple[str, ...], value: Any, base: str = "") -> None:
    table = f"[{'.'.join(json.dumps(part) for part in key[:-1])}]\n" if len(key) > 1 else ""
    path.write_text(base + table + f"{json.dumps(key[-1])} = {toml_value(value)}\n", encoding="utf-8")


SETTLED = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@SETTLED
@given(key=st.sampled_from(SETTINGS_KEYS), value=values)
def test_any_value_at_any_config_key(tmp_path: Path, key: tuple[str, ...], value: Any) -> None:
    path = tmp_path / "config.toml"
    write(path, key, value)
    try:
        loaded = load_settings(path, environ={})
    except ConfigError as error:
        refused = error.one_line()
    else:
        refused = None
        # Valid means usable: it shows as JSON, and the simulator can take its seed.
        assert loaded.value.model_dump_json()
        assert 0 <= loaded.value.market.seed < 2**63
    assert refused is None or "\n" not in refused


@SETTLED
@given(key=st.sampled_from(PROFILE_KEYS), value=values)
def test_any_value_at_any_profile_key(tmp_path: Path, key: tuple[str, ...], value: Any) -> None:
    path = tmp_path / "mine.toml"
    required = {
        "max_leverage": 3,
        "risk_per_trade_pct": 1,
        "max_position_pct": 25,
        "min_reward_risk": 1.5,
        "max_entry_deviation_pct": 2,
    }
    lines = [f"{name} = {number}" for name, number in required.items() if name != key[0]]
    write(path, key, value, "\n".join(lines) + "\n")
    try:
        load_profile(str(path))
    except ConfigError as error:
        refused = error.one_line()
    else:
        refused = None
    assert refused is None or "\n" not in refused


@pytest.mark.parametrize(
    ("key", "value"),
    [
        (("market", "seed"), -1),
        (("market", "timeframe"), "100000w"),
        (("market", "context_timeframes"), ["1h", "53w"]),
        (("exchange", "ccxt", "timeout"), dt.datetime(1979, 5, 27, tzinfo=dt.UTC)),
        (("journal", "path"), "~nosuchuser-rez/j.sqlite"),
        (("risk", "profile"), "x" * 5000),
        (("llm", "timeout_s"), math.inf),
    ],
)
def test_the_commands_say_one_line_for_a_bad_value(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, key: tuple[str, ...], value: Any
) -> None:
    path = tmp_path / "config.toml"
    write(path, key, value)
    for command in (
        ("decide", "BTC/USDT", "--exchange", "sim", "--mode", "rules", "--as-of", "2021-07-01"),
        ("config", "show"),
    ):
        result = run(capsys, *command, "--config", str(path))
        if result.exit_code == 0:
            assert command[0] == "config"  # show describes a config it can read, valid or not
            continue
        assert result.exit_code == 2, result
        assert len(result.stderr.splitlines()) == 1, result.stderr
        assert "Traceback" not in result.stderr
