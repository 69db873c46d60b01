"""Text from outside Rez (a model, a server, a file, the journal) made safe to show.

Such text is data: it must never restyle the output, hide a link, write to the clipboard, clear
the screen or reorder what is shown. ``display_str`` replaces every character a terminal or a
bidi-aware viewer acts on with a visible stand-in; ``display_text`` wraps the result in a Rich
``Text``, which never interprets ``[...]`` markup. Whatever shows outside text builds it with one of
the two. The CLI's consoles (``rez_cli.cli.console``) clean every string once more on its way out,
so a view that forgot still cannot emit a control character.
"""

from __future__ import annotations

import re
from typing import Any

from rich.console import RenderableType
from rich.style import StyleType
from rich.table import Column, Table
from rich.text import Text

__all__ = ["DataTable", "display_str", "display_text", "is_clean"]

# C0 and C1 controls, DEL, the bidi marks, embeddings, overrides and isolates (they reorder what
# follows them on screen: "Trojan Source"), the Unicode line and paragraph separators, and lone
# surrogates (json.loads accepts "\ud800"; a UTF-8 stream cannot encode it and the write fails).
_CONTROLS = "\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff"
_UNSAFE = re.compile(f"[\x00-\x1f{_CONTROLS}]")
# Line breaks and tabs are layout, not control, where a view is allowed several lines.
_UNSAFE_MULTILINE = re.compile(f"[\x00-\x08\x0b-\x1f{_CONTROLS}]")


def _stand_in(char: str) -> str:
    code = ord(char)
    if code < 0x20:
        return chr(0x2400 + code)  # the Unicode control pictures: ESC shows as ␛, NUL as ␀
    if code == 0x7F:
        return "\u2421"  # ␡
    if code <= 0x9F:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}"


def _replace(match: re.Match[str]) -> str:
    return _stand_in(match.group())


def display_str(value: object, *, multiline: bool = True) -> str:
    """``value`` as text that shows exactly what it holds and does nothing to the terminal.

    Controls, bidi controls, line separators and lone surrogates become visible stand-ins (ESC
    shows as ␛, U+202E as ``\\u202e``). Line breaks and tabs are kept when ``multiline`` (a CR LF
    becomes a line break); otherwise a tab is a space and a line break shows as ␊, so the value
    stays on the one line it was given.
    """
    text = value if isinstance(value, str) else str(value)
    if multiline:
        text = text.replace("\r\n", "\n")
        return _UNSAFE_MULTILINE.sub(_replace, text)
    return _UNSAFE.sub(_replace, text.replace("\t", " "))


def display_text(value: object, style: str = "", *, multiline: bool = True) -> Text:
    """``display_str(value)`` as a Rich ``Text``: shown literally, ``[/red]`` included."""
    return Text(display_str(value, multiline=multiline), style=style)


def is_clean(text: str) -> bool:
    """True when ``text`` holds nothing but printable characters, line breaks and tabs."""
    return _UNSAFE_MULTILINE.search(text) is None


def _cell(value: RenderableType | None) -> RenderableType | None:
    return display_text(value, multiline=False) if isinstance(value, str) else value


class DataTable(Table):
    """A Rich ``Table`` for values from outside: string cells are data, and no value is ever cut.

    A string given as a cell, header, title or caption is shown literally on one line (a plain
    ``Table`` reads it as markup: ``[/red]`` in a rationale raises ``MarkupError``). Every column
    folds a value too wide for it onto the next line instead of ending it with an ellipsis, so a
    price or a symbol is never truncated, on a terminal or in a file.
    """

    def __init__(self, *headers: Column | str, **kwargs: Any) -> None:
        for key in ("title", "caption"):
            if isinstance(kwargs.get(key), str):
                kwargs[key] = display_text(kwargs[key], multiline=False)
        super().__init__(*headers, **kwargs)

    def add_column(self, header: RenderableType = "", *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("overflow", "fold")
        super().add_column(_cell(header) or "", *args, **kwargs)

    def add_row(
        self,
        *renderables: RenderableType | None,
        style: StyleType | None = None,
        end_section: bool = False,
    ) -> None:
        super().add_row(*(_cell(value) for value in renderables), style=style, end_section=end_section)
