"""Exit codes and the exception tree of Rez.

The core raises these; only ``cli.app.main`` turns them into an exit code and one line on stderr.

    RezError                      exit 2 unless stated: the user can fix it
    ├── ConfigError               a config or profile file is missing or invalid
    ├── UsageError                a bad argument (unknown timeframe, bad date, ...)
    ├── DataError                 candles that cannot be used
    │   ├── DataNotFound          no file or no rows for the symbol/timeframe asked
    │   └── InvalidCandles        a row breaks a candle rule; the message names it
    ├── ExchangeError             talking to an exchange failed
    │   ├── UnknownExchange       not a ccxt exchange id
    │   ├── SymbolNotListed       the market does not exist (close matches in the hint)
    │   ├── TimeframeNotOffered   the exchange has no such candle interval
    │   └── ExchangeUnavailable   network, rate limit or server errors after retries
    └── LockHeld                  another run holds the lock (exit 4)
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """What ``rez`` returns to the shell; documented in the README and ``rez --help``."""

    OK = 0
    BUG = 1
    USAGE = 2
    HOLD_BY_FAILURE = 3
    LOCKED = 4
    INTERRUPTED = 130
    # 128 + SIGPIPE, what a shell reports for a tool whose reader went away (`rez decide | head -1`).
    BROKEN_PIPE = 141


class RezError(Exception):
    """An error the user can act on: a message, an optional hint, a stable reference."""

    exit_code: ExitCode = ExitCode.USAGE
    reference: str = "rez_error"

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def one_line(self) -> str:
        """The message and hint joined as the single line printed on stderr, secrets struck.

        Messages are built from what a server, a file or the user said; the secrets this invocation
        registered (``rez_cli.redact.active``) and URL credentials never reach the terminal in one.
        """
        from rez_cli.redact import active

        return active().text(f"{self.message} ({self.hint})" if self.hint else self.message)


class ConfigError(RezError):
    """A config or risk profile file is missing or invalid."""

    reference = "config_error"


class UsageError(RezError):
    """A command-line argument that cannot be used."""

    reference = "usage_error"


class DataError(RezError):
    """Candles that cannot be used."""

    reference = "data_error"


class DataNotFound(DataError):
    """No candles for the symbol or timeframe asked."""

    reference = "data_not_found"


class InvalidCandles(DataError):
    """A candle breaks a rule (order, duplicates, non-finite or inconsistent prices)."""

    reference = "invalid_candles"


class ExchangeError(RezError):
    """Talking to an exchange failed."""

    reference = "exchange_error"


class UnknownExchange(ExchangeError):
    """The exchange id is not one ccxt knows."""

    reference = "unknown_exchange"


class SymbolNotListed(ExchangeError):
    """The exchange does not list the symbol."""

    reference = "symbol_not_listed"


class TimeframeNotOffered(ExchangeError):
    """The exchange does not offer candles at that interval."""

    reference = "timeframe_not_offered"


class ExchangeUnavailable(ExchangeError):
    """The exchange could not be reached, or kept failing after retries."""

    reference = "exchange_unavailable"


class LockHeld(RezError):
    """Another run holds the lock for this journal and symbol."""

    exit_code = ExitCode.LOCKED
    reference = "lock_held"
