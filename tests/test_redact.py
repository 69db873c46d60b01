"""The one redactor: what counts as a secret, and that striking one never changes anything else."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from rez_cli.config import paths
from rez_cli.config.settings import load_settings, secrets_of
from rez_cli.errors import ConfigError
from rez_cli.redact import (
    MIN_SECRET_CHARS,
    REDACTED,
    Redactor,
    credentials_in,
    mask_secret_keys,
    redact_url,
    strip_url_credentials,
    url_credentials,
)

KEY = "sk-test-REDACT-ME-0123456789"

# -- what is a secret -----------------------------------------------------------------------------------


def test_values_under_the_length_threshold_are_not_secrets() -> None:
    short = "x" * (MIN_SECRET_CHARS - 1)
    redactor = Redactor(["x", short, "  k  ", ""])
    assert redactor.secrets == ()
    text = f"max_leverage x {short} k"
    assert redactor.text(text) == text
    assert Redactor([short + "y"]).text(f"a {short}y b") == f"a {REDACTED} b"


def test_a_secret_is_struck_whole_in_every_spelling_the_journal_or_a_server_may_use() -> None:
    secret = 'sk-"quoted"/é+key'
    redactor = Redactor([secret])
    for spelled in (
        secret,
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
        "sk-%22quoted%22%2F%C3%A9%2Bkey",
        repr(secret)[1:-1],
    ):
        assert redactor.text(f"<{spelled}>") == f"<{REDACTED}>"
        assert redactor.holds_secret(f"<{spelled}>")
    # A URL is no secret of its own: holds_secret answers for the registered secrets only.
    assert not redactor.holds_secret("https://example.com/v1")
    assert not Redactor(["short"]).holds_secret("short")


def test_striking_a_secret_never_leaves_a_new_one_behind() -> None:
    # Removing the inner occurrence joins "x" and "***bbbbb": the secret again, struck too.
    secret = "x***bbbbb"
    assert secret not in Redactor([secret]).text("x" + secret + "bbbbb")


def test_credentials_in_urls_are_struck_by_position_whatever_their_length() -> None:
    assert (
        strip_url_credentials("GET https://u:pw@h.example:8443/v1/x?api_key=k&limit=5#token=t failed")
        == "GET https://***@h.example:8443/v1/x?api_key=***&limit=5#token=*** failed"
    )
    assert strip_url_credentials("see http://host/path?key=abc;Access-Token=q") == (
        "see http://host/path?key=***;Access-Token=***"
    )
    assert strip_url_credentials("no url, key=abc") == "no url, key=abc"
    assert redact_url("me:s3cret@localhost:11434/v1") == "***@localhost:11434/v1"
    assert redact_url("http://localhost:11434/v1") == "http://localhost:11434/v1"


def test_url_credentials_are_secrets_wherever_they_turn_up() -> None:
    found = url_credentials("https://user:pass%2Fword-long@h/v1?key=querykey123&x=1")
    assert {"user:pass%2Fword-long", "pass%2Fword-long", "pass/word-long", "querykey123"} <= set(found)
    assert url_credentials("TOKEN-as-user-0001@host/v1") == ["TOKEN-as-user-0001"]
    assert url_credentials("plain words, no url") == []


def test_credentials_in_walks_every_level_of_a_table() -> None:
    table = {
        "apiKey": "top-level-key-1",
        "timeout": 5000,
        "headers": {"X-Auth-Token": "nested-token-22", "Accept": "application/json"},
        "proxies": [{"https": "http://proxyuser:proxy-pass-333@proxy:3128"}],
        "options": {"defaultType": "spot", "signing": {"privateKey": ["k-in-a-list-4444"]}},
    }
    assert set(credentials_in(table)) == {
        "top-level-key-1",
        "nested-token-22",
        "proxyuser:proxy-pass-333",
        "proxy-pass-333",
        "k-in-a-list-4444",
    }


def test_secrets_of_a_config_include_keys_embedded_in_base_urls(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        '[llm]\nbase_url = "https://me:url-password-1@llm.example/v1?api_key=url-query-key-2"\n'
        '[exchange.ccxt]\nheaders = { X-Auth-Token = "header-token-3" }\n'
    )
    found = secrets_of(load_settings(config, {"OPENAI_BASE_URL": "http://h/v1?key=env-url-key-4"}).value, {})
    assert {"url-password-1", "url-query-key-2", "header-token-3"} <= set(found)
    assert "env-url-key-4" not in found  # environ={} given to secrets_of: only the one it was told of
    assert "env-url-key-4" in secrets_of(
        load_settings(config, {}).value, {"OPENAI_BASE_URL": "http://h/?key=env-url-key-4"}
    )


def test_config_show_masks_by_name_and_strikes_url_credentials() -> None:
    assert mask_secret_keys(
        {"apiKey": "", "token": "t", "proxy": "http://u:p@proxy:1", "nested": [{"password": 5}]}
    ) == {"apiKey": "", "token": REDACTED, "proxy": "http://***@proxy:1", "nested": [{"password": REDACTED}]}


# -- structure is kept ----------------------------------------------------------------------------------

_CREDENTIAL_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.~+/="
secret_text = st.text(alphabet=_CREDENTIAL_CHARS, min_size=MIN_SECRET_CHARS, max_size=40)
short_secret = st.text(min_size=1, max_size=MIN_SECRET_CHARS - 1).filter(
    lambda s: len(s.strip()) < MIN_SECRET_CHARS
)


def json_like(
    leaves: st.SearchStrategy[Any], keys: st.SearchStrategy[str] | None = None
) -> st.SearchStrategy[Any]:
    names = keys if keys is not None else st.text(max_size=12)
    return st.recursive(
        leaves,
        lambda children: st.lists(children, max_size=4) | st.dictionaries(names, children, max_size=4),
        max_leaves=25,
    )


def holding(secrets: list[str]) -> st.SearchStrategy[str]:
    """Text that often holds the secrets, whole, among arbitrary characters (escapes and all)."""
    return st.lists(st.sampled_from(secrets) | st.text(max_size=10), max_size=5).map("".join)


@st.composite
def structures_and_secrets(draw: st.DrawFn) -> tuple[Any, list[str]]:
    secrets = draw(st.lists(secret_text, min_size=1, max_size=3))
    leaves = (
        st.none()
        | st.booleans()
        | st.integers()
        | st.floats(allow_nan=False)
        | st.text(max_size=20)
        | holding(secrets)
    )
    # Names too short to hold a secret, or Rez's own kind of names: a key holding a whole secret is
    # the one key that changes (test_a_key_is_changed_only_when_it_holds_a_whole_secret).
    keys = st.text(max_size=MIN_SECRET_CHARS - 1) | st.from_regex(r"[a-z][a-z_]{7,20}", fullmatch=True)
    return draw(json_like(leaves, keys)), secrets


def same_shape(before: Any, after: Any) -> bool:
    if isinstance(before, dict):
        return (
            isinstance(after, dict)
            and list(before) == list(after)
            and all(same_shape(before[key], after[key]) for key in before)
        )
    if isinstance(before, list):
        return (
            isinstance(after, list)
            and len(before) == len(after)
            and all(same_shape(b, a) for b, a in zip(before, after, strict=True))
        )
    if isinstance(before, str):
        return isinstance(after, str)
    return type(after) is type(before) and after == before


def keys_of(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [*value, *(key for item in value.values() for key in keys_of(item))]
    if isinstance(value, list):
        return [key for item in value for key in keys_of(item)]
    return []


def without_text(value: Any) -> Any:
    """The structure with every string emptied: what its numbers and punctuation serialise to."""
    if isinstance(value, dict):
        return [without_text(item) for item in value.values()]
    if isinstance(value, list):
        return [without_text(item) for item in value]
    return "" if isinstance(value, str) else value


@given(structures_and_secrets())
@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
def test_redaction_keeps_the_structure_and_leaves_no_secret(case: tuple[Any, list[str]]) -> None:
    value, secrets = case
    assume(not any(secret in key for key in keys_of(value) for secret in secrets))
    # A "secret" such as "-Infinit" that a number's own JSON spells out is no leak of the secret.
    assume(not any(secret in json.dumps(without_text(value)) for secret in secrets))
    redacted = Redactor(secrets).value(value)
    assert same_shape(value, redacted)
    for serialised in (json.dumps(redacted), json.dumps(redacted, ensure_ascii=False)):
        for secret in secrets:
            assert secret not in serialised
            assert json.dumps(secret)[1:-1] not in serialised


@given(
    json_like(st.none() | st.booleans() | st.integers() | st.text(max_size=20)),
    st.lists(st.text(), max_size=3),
)
@settings(max_examples=200)
def test_redaction_of_arbitrary_secrets_leaves_none_in_any_text(value: Any, secrets: list[str]) -> None:
    redactor = Redactor(secrets)
    redacted = redactor.value(value)
    long_ones = [secret for secret in secrets if len(secret.strip()) >= MIN_SECRET_CHARS]

    def texts(item: Any) -> list[str]:
        if isinstance(item, str):
            return [item]
        if isinstance(item, dict):
            return [*item, *(text for child in item.values() for text in texts(child))]
        if isinstance(item, list):
            return [text for child in item for text in texts(child)]
        return []

    for text in texts(redacted):
        assert not any(secret in text for secret in long_ones)


@given(
    json_like(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)),
    st.lists(short_secret, max_size=3),
)
@settings(max_examples=200)
def test_short_values_change_nothing_at_all(value: Any, secrets: list[str]) -> None:
    assume("://" not in json.dumps(value))
    assert Redactor(secrets).value(value) == value


def test_a_key_is_changed_only_when_it_holds_a_whole_secret() -> None:
    redactor = Redactor([KEY, "x"])
    assert redactor.value({"max_leverage": "x", KEY: [1, 2.5, None, True], "k": f"a {KEY} b"}) == {
        "max_leverage": "x",
        REDACTED: [1, 2.5, None, True],
        "k": f"a {REDACTED} b",
    }


# -- config validation errors -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("toml", "env"),
    [
        (f'[llm]\napi_key = ["{KEY}"]\n', {}),
        ("", {"REZ__LLM__API_KEY": json.dumps([KEY])}),
        ("", {"REZ__LLM__API_KEY": json.dumps({"value": KEY})}),
        # Rejected at a parent of the key: the location names no credential, the value is one.
        ("", {"REZ__LLM": json.dumps([KEY])}),
        ("", {"REZ__LLM": json.dumps(KEY)}),
        ("", {"REZ__EXCHANGE": json.dumps({"ccxt": KEY})}),
        ("", {"REZ__EXCHANGE__CCXT": json.dumps([KEY])}),
        ("", {"REZ__EXCHANGE": json.dumps(KEY)}),
        ("", {"REZ__MARKET": json.dumps({"apiKey": KEY})}),
        (f'[llm]\napi_key = "{KEY}"\ntimeout_s = "{KEY}"\n', {}),
        (f'[market]\ntimeframe = "1h"\ncandles = "{KEY}"\n[llm]\napi_key = "{KEY}"\n', {}),
        ('[llm]\nbase_url = 5\n[market]\ncandles = "https://u:pw-12345678@h/"\n', {}),
    ],
)
def test_validation_errors_never_echo_a_secret(tmp_path: Path, toml: str, env: dict[str, str]) -> None:
    config = tmp_path / "config.toml"
    config.write_text(toml)
    with pytest.raises(ConfigError) as caught:
        load_settings(config, env)
    line = caught.value.one_line()
    assert KEY not in line
    assert "pw-12345678" not in line
    assert "\n" not in line


def test_validation_errors_still_show_what_was_wrong_with_an_ordinary_value(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[market]\ncandles = "lots"\n')
    with pytest.raises(ConfigError, match=r"market\.candles: .* \(got 'lots'\)"):
        load_settings(config, {})


# -- private files ---------------------------------------------------------------------------------------


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_private_files_and_directories_ignore_a_permissive_umask(tmp_path: Path) -> None:
    previous = os.umask(0)
    try:
        directory = paths.private_dir(tmp_path / "a" / "b")
        os.close(paths.open_private(directory / "f", os.O_WRONLY))
        wide = tmp_path / "wide"
        wide.write_text("")
        wide.chmod(0o644)
        paths.tighten(wide)
    finally:
        os.umask(previous)
    assert mode(tmp_path / "a") == mode(directory) == 0o700
    assert mode(directory / "f") == mode(wide) == 0o600
