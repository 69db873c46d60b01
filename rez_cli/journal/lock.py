"""One run per market and journal: an exclusive ``flock`` on a file next to the journal.

Two runs on different symbols share one journal. Two runs on the same market do not, however they
spell it (``btc/usdt``, ``BTC-USDT``): ``hold(journal, symbol)`` locks
``<journal>.locks/<canonical symbol>.lock`` for the length of a run, and a second run fails at once
with ``LockHeld`` (exit 4), naming the pid that holds it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from rez_cli.config import paths
from rez_cli.errors import ConfigError, LockHeld
from rez_cli.symbols import normalize_symbol

__all__ = ["hold", "lock_path"]

_UNSAFE_IN_FILENAME = re.compile(r"[^\w.-]+")


def lock_path(journal: Path, symbol: str) -> Path:
    """The lock file for a market: ``<journal>.locks/<canonical symbol, / and : as _>.lock``.

    One file per market, not per spelling: ``btc/usdt``, ``BTC-USDT`` and ``BTC/USDT`` share it.

    Raises:
        UsageError: ``symbol`` is not a market symbol.
    """
    safe = _UNSAFE_IN_FILENAME.sub("_", normalize_symbol(symbol)).strip("._") or "_"
    return journal.with_name(journal.name + ".locks") / f"{safe}.lock"


@contextmanager
def hold(journal: Path, symbol: str) -> Iterator[Path]:
    """Hold the run lock for ``symbol`` on ``journal`` until the block ends (or the process does).

    An exclusive, non-blocking ``flock``: the kernel releases it when the process exits, however it
    exits, so a killed run never leaves a stale lock. Symbols that map to the same file name
    (``BTC/USDT`` and ``BTC_USDT``) share a lock, which errs safe.

    Raises:
        LockHeld: another open lock on the same file, in this process or another (exit 4).
        ConfigError: the lock file cannot be created.
    """
    import fcntl  # POSIX only; imported here so that reading a journal does not need it

    path = lock_path(journal, symbol)
    try:
        paths.private_dir(path.parent)
        fd = paths.open_private(path, os.O_RDWR)
    except OSError as error:
        raise ConfigError(f"cannot create the lock file {path}: {error.strerror or error}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
            raise LockHeld(
                f"another rez run is deciding {symbol} on {journal} "
                f"(pid {holder if holder.isdigit() else 'unknown'})",
                hint=f"it ends with that run; the lock file is {path}",
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        try:
            yield path
        finally:
            # Cleared while still held: after close, the next holder may already have written its pid.
            os.ftruncate(fd, 0)
    finally:
        os.close(fd)
