"""The two streams, one rule for every command.

stdout carries the answer a command exists for: the decision and its trace, the context, a trace
shown or replayed, a table, or with ``--json`` JSON and nothing else. stderr carries what is said
along the way: progress, notes, warnings and errors. ``rez context BTC/USDT > f`` writes the
context to ``f``; a pipe reads only what it asked for.

Both consoles are ``SafeConsole``s: a string printed on them is data, never markup, and no control
character from a model, a server, a file or the journal reaches the terminal.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

from rich.console import (
    Console,
    ConsoleOptions,
    Group,
    HighlighterType,
    JustifyMethod,
    OverflowMethod,
    RenderableType,
)
from rich.measure import Measurement
from rich.segment import Segment
from rich.style import Style
from rich.table import Table
from rich.text import Text

from rez_cli.display import display_str, is_clean

PIPED_WIDTH = 120
# However wide a table is, a file gets it whole up to this width; beyond, its columns fold.
MAX_PIPED_WIDTH = 1000

# The arguments of this invocation, as main() received them (tests call main() with their own list),
# so the journal records what was run rather than the host process's sys.argv.
invocation_argv: ContextVar[tuple[str, ...]] = ContextVar("invocation_argv", default=())


class SafeConsole(Console):
    """A Rich console on which text from outside cannot act.

    Views build their text with ``rez_cli.display``; this console is the net under them. A string
    printed or put in a table is shown literally (markup and emoji codes are off, whatever a caller
    asks), and every segment of text is cleaned of control characters and bidi controls on its way
    out. Rich's own styling and cursor control are segments of another kind and pass unchanged.
    """

    def __init__(self, *, fit_tables: bool = False, **kwargs: Any) -> None:
        kwargs.setdefault("markup", False)
        kwargs.setdefault("emoji", False)
        kwargs.setdefault("highlight", False)
        super().__init__(**kwargs)
        self.fit_tables = fit_tables

    def print(self, *objects: Any, **kwargs: Any) -> None:
        """Print as Rich does; with ``fit_tables``, widen the page to the widest table printed.

        Prose still wraps at the console's width, but a table (found at the top or in a ``Group``)
        is laid out whole, up to ``MAX_PIPED_WIDTH``: in a file, a price or a symbol is never
        folded or cut to fit 120 columns that no one is looking at.
        """
        wanted = max((self._widest_table(item) for item in objects), default=0) if self.fit_tables else 0
        if wanted <= self.width:
            super().print(*objects, **kwargs)
            return
        width = self.width
        self.width = min(wanted, MAX_PIPED_WIDTH)
        try:
            super().print(*objects, **kwargs)
        finally:
            self.width = width

    def _widest_table(self, renderable: Any) -> int:
        options = self.options.update_width(MAX_PIPED_WIDTH)
        widest = 0
        pending = [renderable]
        while pending:
            item = pending.pop()
            if isinstance(item, Table):
                widest = max(widest, Measurement.get(self, options, item).maximum)
            elif isinstance(item, Group):
                pending.extend(item.renderables)
        return widest

    def render_str(
        self,
        text: str,
        *,
        style: str | Style = "",
        justify: JustifyMethod | None = None,
        overflow: OverflowMethod | None = None,
        emoji: bool | None = None,
        markup: bool | None = None,
        highlight: bool | None = None,
        highlighter: HighlighterType | None = None,
    ) -> Text:
        return super().render_str(
            display_str(text),
            style=style,
            justify=justify,
            overflow=overflow,
            emoji=False,
            markup=False,
            highlight=highlight,
            highlighter=highlighter,
        )

    def render(self, renderable: RenderableType, options: ConsoleOptions | None = None) -> Iterator[Segment]:
        for segment in super().render(renderable, options):
            if segment.control is None and not is_clean(segment.text):
                yield Segment(display_str(segment.text), segment.style)
            else:
                yield segment


def _console(*, stderr: bool) -> SafeConsole:
    console = SafeConsole(stderr=stderr, no_color="NO_COLOR" in os.environ, soft_wrap=False)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        # Rich assumes 80 columns when it cannot ask a terminal, and cuts a price to fit them. A file
        # or a pipe has no width to respect: prose wraps at PIPED_WIDTH, tables get what they need.
        console.width = PIPED_WIDTH
        console.fit_tables = True
    return console


def stdout_console() -> SafeConsole:
    """The answer: plain text when NO_COLOR is set or stdout is not a terminal (COLUMNS sets the width)."""
    return _console(stderr=False)


def stderr_console() -> SafeConsole:
    """Progress, notes and warnings, on the same terms as ``stdout_console``."""
    return _console(stderr=True)


def print_json_line(payload: Any) -> None:
    """One JSON object on one line of stdout: what cron pipes on; secrets struck (``rez_cli.redact``)."""
    from rez_cli.redact import active

    # The last gate before stdout: whatever the command assembled, no registered secret passes.
    line = json.dumps(active().value(payload), separators=(",", ":"), allow_nan=False)
    sys.stdout.write(line + "\n")
    sys.stdout.flush()
