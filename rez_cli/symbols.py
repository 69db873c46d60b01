"""Market symbols as Rez spells them: one canonical form per market, checked in one place.

A symbol names a market the way ccxt does (``BTC/USDT``, ``BTC/USDT:USDT``,
``ETH/USDT:USDT-240927``). Users also type ``btc/usdt``, ``BTC-USDT`` or ``btc_usdt``; each of those
is the same market, so each must take the same lock and be journaled under the same name. Case is
folded to upper (ccxt's unified symbols are upper case; ``CcxtSource`` finds a listed mixed-case
market from its upper-case spelling), and a lone ``-`` or ``_`` between base and quote becomes ``/``.
"""

from __future__ import annotations

from collections.abc import Iterable

from rez_cli.errors import UsageError

MAX_SYMBOL_CHARS = 64
# Punctuation ccxt symbols use: base/quote, :settle, -expiry-strike-type, and dots (e.g. "BTC.D").
_PUNCTUATION = frozenset("/:-_.")
_EXAMPLE = "e.g. BTC/USDT, or BTC/USDT:USDT for a perpetual"


def normalize_symbol(text: str) -> str:
    """The canonical spelling of a market symbol typed by a user or given by a program.

    Raises:
        UsageError: empty, too long, or holding characters no market symbol has (spaces, control
            characters, quotes...).
    """
    symbol = text.strip() if isinstance(text, str) else ""
    if not symbol:
        raise UsageError("no symbol given", hint=_EXAMPLE)
    if len(symbol) > MAX_SYMBOL_CHARS:
        raise UsageError(
            f"symbol too long ({len(symbol)} characters, at most {MAX_SYMBOL_CHARS})", hint=_EXAMPLE
        )
    # Letters of any script: exchanges list tokens named in Chinese, for one.
    bad = [char for char in symbol if not (char.isalnum() or char in _PUNCTUATION)]
    if bad or not any(char.isalnum() for char in symbol):
        shown = repr(bad[0]) if bad else "no letter or digit"
        raise UsageError(f"not a market symbol: {symbol!r} ({shown})", hint=_EXAMPLE)
    symbol = symbol.upper()
    if "/" not in symbol and ":" not in symbol:
        separators = [char for char in symbol if char in "-_"]
        if len(separators) == 1:
            symbol = symbol.replace(separators[0], "/")
    return symbol


def normalize_symbols(texts: Iterable[str]) -> list[str]:
    """Each symbol in canonical form, once, in the order first given (``btc/usdt BTC/USDT`` is one market).

    Raises:
        UsageError: as ``normalize_symbol``, or no symbol at all.
    """
    symbols = list(dict.fromkeys(normalize_symbol(text) for text in texts))
    if not symbols:
        raise UsageError("no symbol given", hint=_EXAMPLE)
    return symbols
