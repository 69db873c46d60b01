"""Where Rez keeps its config, data (journal) and cache.

``REZ_HOME`` moves all three under one directory: tests point it at a tmpdir.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

APP_NAME = "rez"


def expand_user(path: Path | str) -> Path:
    """``path`` with a leading ``~`` or ``~user`` expanded.

    Raises:
        UsageError: the home directory of that user cannot be found (``~nosuchuser/x``).
    """
    try:
        return Path(path).expanduser()
    except RuntimeError:
        from rez_cli.errors import UsageError

        raise UsageError(f"{path}: cannot expand '~': no such user, or no home directory") from None


def _home_override() -> Path | None:
    value = os.environ.get("REZ_HOME")
    return expand_user(value) if value else None


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


# Rez's own state (the config with its keys, the journal of every prompt and answer, caches) is
# the user's alone: files 0600, directories 0700, whatever the umask would have allowed.
PRIVATE_FILE_MODE = 0o600
PRIVATE_DIR_MODE = 0o700


def private_dir(path: Path) -> Path:
    """Create ``path`` and its missing parents as 0700 directories; existing ones are left as they are."""
    missing = [parent for parent in (path, *path.parents) if not parent.exists()]
    for directory in reversed(missing):
        # The umask can only take bits away from 0700: never wider, whatever it is.
        directory.mkdir(mode=PRIVATE_DIR_MODE, exist_ok=True)
    return path


def open_private(path: Path, flags: int) -> int:
    """``os.open`` with ``O_CREAT``: a new file is created 0600 (never wider, whatever the umask)."""
    return os.open(path, flags | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), PRIVATE_FILE_MODE)


def create_private(path: Path) -> None:
    """Create ``path`` empty and 0600 unless it exists; a failure is left to whoever opens it next.

    For files another library creates with the umask's mode (SQLite): made first, they keep ours.
    """
    with contextlib.suppress(OSError):
        os.close(open_private(path, os.O_RDWR))


def tighten(path: Path | int) -> None:
    """Make an existing file ours alone (0600), if it is not already; a file we cannot chmod is left."""
    with contextlib.suppress(OSError):
        if os.stat(path).st_mode & 0o777 & ~PRIVATE_FILE_MODE:
            os.chmod(path, PRIVATE_FILE_MODE)
