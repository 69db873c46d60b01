"""``rez config``: a starter config for the user, and the effective config with each value's origin.

A value comes from one of three places, checked from the strongest down: a ``REZ__SECTION__KEY``
environment variable, the config file that the lookup order picked, or the pydantic default.
Origins are found by replaying what ``load_settings`` does (read the TOML, apply the overrides in the
same order) on a tree that records who set what, so the two can never disagree on the winner.

Secrets never leave this module: ``llm.api_key`` and the credential-like keys of ``[exchange.ccxt]``
come out as ``***``, and so do credentials embedded in URLs (``base_url = "https://h/v1?key=..."``,
``user:key@host``) and any configured secret that turns up in another value (``rez_cli.redact``).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, SecretStr

from rez_cli.config import paths
from rez_cli.config.settings import (
    ENV_PREFIX,
    Settings,
    _apply_env_overrides,
    _read_toml,
    config_path,
    load_profile,
    load_settings,
    merged,
    secrets_of,
    shipped_config_path,
)
from rez_cli.errors import ConfigError
from rez_cli.redact import REDACTED, Redactor, is_secret_key, mask_secret_keys, redact_url

DEFAULT_ORIGIN = "default"

# Fields whose value is an open table: each of its keys is shown as a value of its own.
_OPEN_TABLES = {("exchange", "ccxt"), ("llm", "prices")}

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


@dataclass(frozen=True)
class WrittenFile:
    """A file ``init_config`` wrote, and whether it replaced one."""

    path: Path
    replaced: bool


@dataclass(frozen=True)
class ConfigValue:
    """One effective value: its dotted key, its value (secrets redacted) and where it came from."""

    key: str
    value: Any
    origin: str
    """``default``, the config file's path, or the name of the environment variable."""


@dataclass(frozen=True)
class ConfigReport:
    """The effective configuration as ``rez config show`` presents it."""

    path: Path
    """The config file read."""
    shipped: bool
    """Whether that file is the defaults shipped with Rez (no user file was found)."""
    env_overrides: list[str]
    """The ``REZ__`` variables applied, in the order they were applied."""
    values: list[ConfigValue]
    profile_name: str
    profile_path: Path | None

    def as_json(self) -> dict[str, Any]:
        """The report as one JSON-ready object; values keyed by their dotted key."""
        return {
            "config_file": str(self.path),
            "shipped_defaults": self.shipped,
            "env_overrides": list(self.env_overrides),
            "profile": {
                "name": self.profile_name,
                "file": str(self.profile_path) if self.profile_path else None,
            },
            "values": {item.key: {"value": item.value, "origin": item.origin} for item in self.values},
        }


def starter_files() -> list[tuple[Path, Path]]:
    """``(shipped source, user destination)`` for the config and every shipped profile."""
    shipped = paths.shipped_configs_dir()
    target = paths.config_dir()
    pairs = [(shipped / "config.toml", target / "config.toml")]
    pairs += [
        (source, target / "profiles" / source.name)
        for source in sorted((shipped / "profiles").glob("*.toml"))
    ]
    return pairs


def init_config(*, force: bool = False) -> list[WrittenFile]:
    """Copy the commented shipped config and profiles into the user config dir.

    Nothing is written unless every file can be: an existing file stops the whole copy (without
    ``force``), so a half-initialised directory never results.

    Args:
        force: replace files that already exist.

    Returns:
        The files written, in order.

    Raises:
        ConfigError: a destination exists (without ``force``), or cannot be written.
    """
    pairs = starter_files()
    if not force:
        for _, destination in pairs:
            if destination.exists():
                raise ConfigError(f"{destination} already exists", hint="rez config init --force replaces it")
    written = []
    for source, destination in pairs:
        replaced = destination.exists()
        try:
            _write_private(destination, source.read_bytes())
        except OSError as error:
            raise ConfigError(f"{destination}: cannot write: {error.strerror or error}") from None
        written.append(WrittenFile(destination, replaced))
    return written


def _write_private(path: Path, content: bytes) -> None:
    # The config is where keys go: created 0600 in a 0700 directory, and a file that --force
    # replaces loses any wider mode it had (copyfile would have kept it, or the shipped file's).
    paths.private_dir(path.parent)
    fd = paths.open_private(path, os.O_WRONLY | os.O_TRUNC)
    try:
        paths.tighten(fd)
        with os.fdopen(fd, "wb", closefd=False) as handle:
            handle.write(content)
    finally:
        os.close(fd)


def show_config(explicit: Path | None = None, environ: Mapping[str, str] | None = None) -> ConfigReport:
    """The effective configuration, each value with its origin, secrets redacted.

    Args:
        explicit: ``--config``; otherwise the documented lookup order picks the file.
        environ: the environment (default: ``os.environ``), for ``REZ_CONFIG`` and ``REZ__`` overrides.

    Raises:
        ConfigError: the file or a value is invalid, or the risk profile cannot be loaded.
    """
    env = dict(os.environ if environ is None else environ)
    loaded = load_settings(explicit, env)
    path = loaded.path or config_path(explicit, env)
    origins = _origin_tree(path, env)
    # Masking by name misses a key pasted into another value (a proxy URL, a header of another name).
    redactor = Redactor(secrets_of(loaded.value, env))
    values = [
        ConfigValue(item.key, redactor.value(item.value), item.origin)
        for item in _values(loaded.value, origins)
    ]
    profile = load_profile(loaded.value.risk.profile)
    shipped = path.resolve() == (paths.shipped_configs_dir() / "config.toml").resolve()
    return ConfigReport(
        path=path,
        shipped=shipped,
        env_overrides=_apply_env_overrides({}, {k: v for k, v in env.items() if k.startswith(ENV_PREFIX)}),
        values=values,
        profile_name=profile.value.name,
        profile_path=profile.path,
    )


# --- origins ------------------------------------------------------------------------------------------


def _origin_tree(path: Path, env: dict[str, str]) -> dict[str, Any]:
    """The config's shape with, at every key set explicitly, who set it (a str ends a branch)."""
    tree: dict[str, Any] = _mark(_read_toml(path), str(path))
    shipped = shipped_config_path()
    if path.resolve() != shipped.resolve():
        tree = merged(_mark(_read_toml(shipped), str(shipped)), tree)
    # Replaying the real function keeps the override rules (order, nesting, replacing whole
    # tables) in one place; each variable's value is swapped for its own name first.
    names = {name: _json_string(name) for name in env if name.startswith(ENV_PREFIX)}
    _apply_env_overrides(tree, names)
    return tree


def _json_string(text: str) -> str:
    # A JSON string literal: _apply_env_overrides decodes it back to exactly ``text``.
    return json.dumps(text)


class _Table(dict[str, Any]):
    """A table the file defines: it names its origin even when it holds no key."""

    def __init__(self, origin: str, items: dict[str, Any]) -> None:
        super().__init__(items)
        self.origin = origin


def _mark(data: dict[str, Any], origin: str) -> _Table:
    return _Table(
        origin,
        {key: _mark(value, origin) if isinstance(value, dict) else origin for key, value in data.items()},
    )


def _origin_of(tree: Mapping[str, Any], keys: tuple[str, ...]) -> str:
    node: Any = tree
    for key in keys:
        if isinstance(node, str):
            return node  # a variable or the file set a whole table above this key
        if not isinstance(node, Mapping) or key not in node:
            return DEFAULT_ORIGIN
        node = node[key]
    # A table may mix keys from the file and from variables: name every source, the file first.
    found = sorted(_origins_below(node), key=lambda origin: (origin.startswith(ENV_PREFIX), origin))
    return " + ".join(found) or DEFAULT_ORIGIN


def _origins_below(node: Any) -> set[str]:
    if isinstance(node, str):
        return {node}
    found: set[str] = set().union(*(_origins_below(child) for child in node.values()))
    if not found and isinstance(node, _Table):
        return {node.origin}  # an empty table the file defines
    return found


def _values(settings: Settings, origins: Mapping[str, Any]) -> list[ConfigValue]:
    values = []
    for section_name in type(settings).model_fields:
        section = getattr(settings, section_name)
        assert isinstance(section, BaseModel)
        for field_name in type(section).model_fields:
            keys = (section_name, field_name)
            value = getattr(section, field_name)
            if keys in _OPEN_TABLES and value:
                for name, item in value.items():
                    values.append(
                        ConfigValue(
                            _dotted((*keys, name)),
                            _shown(keys, name, item),
                            _origin_of(origins, (*keys, name)),
                        )
                    )
            else:
                values.append(
                    ConfigValue(_dotted(keys), _shown(keys, None, value), _origin_of(origins, keys))
                )
    return values


def _shown(keys: tuple[str, str], name: str | None, value: Any) -> Any:
    if isinstance(value, SecretStr):
        return REDACTED
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    elif isinstance(value, Path):
        value = str(value)
    elif isinstance(value, dict):
        value = {
            key: item.model_dump(mode="json") if isinstance(item, BaseModel) else item
            for key, item in value.items()
        }
    if keys == ("exchange", "ccxt") and name is not None and is_secret_key(name) and value not in (None, ""):
        return REDACTED
    if keys == ("llm", "base_url") and isinstance(value, str):
        return redact_url(value)
    return mask_secret_keys(value)


def _dotted(keys: tuple[str, ...]) -> str:
    # TOML's spelling: keys such as "gpt-4.1" are quoted so the dots stay unambiguous.
    return ".".join(key if _BARE_KEY.match(key) else _json_string(key) for key in keys)
