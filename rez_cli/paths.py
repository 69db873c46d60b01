"""Where Rez keeps its config, data (journal) and cache.

``REZ_HOME`` moves all three under one directory: tests point it at a tmpdir.
"""

from __future__ import annotations

import os
from pathlib import Path

APP_NAME = "rez"


def _home_override() -> Path | None:
    value = os.environ.get("REZ_HOME")
    return Path(value).expanduser() if value else None


def config_dir() -> Path:
    """The user's config directory (``rez config init`` writes here)."""
    home = _home_override()
    if home is not None:
        return home / "config"
    import platformdirs

    return Path(platformdirs.user_config_dir(APP_NAME))


def data_dir() -> Path:
    """The user's data directory (the journal lives here)."""
    home = _home_override()
    if home is not None:
        return home / "data"
    import platformdirs

    return Path(platformdirs.user_data_dir(APP_NAME))


def cache_dir() -> Path:
    """The user's cache directory (candles fetched from exchanges)."""
    home = _home_override()
    if home is not None:
        return home / "cache"
    import platformdirs

    return Path(platformdirs.user_cache_dir(APP_NAME))


def shipped_configs_dir() -> Path:
    """The defaults shipped with Rez (``configs/`` in the repository)."""
    return Path(__file__).resolve().parent / "defaults"
