"""The root ``rez`` command and ``main()``, the one place errors become exit codes."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Annotated

import typer

from rez_cli import __version__
from rez_cli.errors import ExitCode, RezError

EXIT_CODES_HELP = (
    "Exit codes: 0 a decision was made (a hold the model chose included) · 2 usage, config or data error · "
    "3 a hold forced by a failure (the decision's error says why) · 4 another run holds the lock · "
    "1 a bug · 130 interrupted."
)

app = typer.Typer(
    name="rez",
    help="Rez: an LLM trading assistant that ends every cycle in one validated decision.\n\n"
    + EXIT_CODES_HELP,
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_show_locals=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        print(f"rez {__version__}")
        raise typer.Exit(0)


@app.callback()
def root(
    version: Annotated[
        bool,
        typer.Option("--version", "-V", callback=_version, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:
    """Rez: an LLM trading assistant that ends every cycle in one validated decision."""


def _register() -> None:
    # Command modules import only typer at module level; their heavy imports happen when they run.
    from rez_cli.cli import (
        backtest_cmd,
        config_cmd,
        context_cmd,
        data_cmd,
        decide_cmd,
        doctor_cmd,
        score_cmd,
        traces_cmd,
    )

    app.command("decide")(decide_cmd.decide)
    app.command("context")(context_cmd.context)
    app.add_typer(data_cmd.app, name="data")
    app.add_typer(config_cmd.app, name="config")
    app.command("doctor")(doctor_cmd.doctor)
    app.add_typer(traces_cmd.app, name="traces")
    app.command("backtest")(backtest_cmd.backtest)
    app.command("score")(score_cmd.score)


_register()


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``rez`` and return its exit code; a ``RezError`` becomes one line on stderr."""
    from rez_cli.cli.console import invocation_argv
    from rez_cli.redact import reset_active

    args = list(argv) if argv is not None else sys.argv[1:]
    invocation_argv.set(tuple(args))
    # Secrets are registered as this invocation loads its config; an earlier main() in the same
    # process (a test, a program driving rez) had its own.
    reset_active()
    try:
        app(args=args, prog_name="rez")
    except SystemExit as exit_:
        code = exit_.code
        return code if isinstance(code, int) else (0 if code is None else ExitCode.USAGE)
    except RezError as error:
        from rez_cli.display import display_str

        # A message may quote a server or a file: one line of text, its escape sequences shown, not obeyed.
        print(display_str(f"rez: error: {error.one_line()}", multiline=False), file=sys.stderr)
        return int(error.exit_code)
    except KeyboardInterrupt:
        print("rez: interrupted", file=sys.stderr)
        return int(ExitCode.INTERRUPTED)
    return int(ExitCode.OK)


def run() -> None:
    """The console script: ``main()``, then exit without a final garbage collection.

    Interpreter shutdown otherwise walks the whole heap of pandas/ccxt/openai modules (~0.4 s), a
    third of a cron cycle's wall time; freezing the heap lets the process exit at once.
    """
    import gc

    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    gc.freeze()
    sys.exit(code)
