"""The root ``rez`` command and ``main()``, the one place errors become exit codes."""

from __future__ import annotations

import contextlib
import errno
import io
import os
import sys
from collections.abc import Sequence
from typing import Annotated

import typer

from rez_cli import __version__
from rez_cli.errors import ExitCode, RezError

EXIT_CODES_HELP = (
    "Exit codes: 0 a decision was made (a hold the model chose included) · 2 usage, config or data error · "
    "3 a hold forced by a failure (the decision's error says why) · 4 another run holds the lock · "
    "1 a bug · 130 interrupted · 141 the reader of stdout went away (a broken pipe)."
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
        arena_cmd,
        audit_cmd,
        backtest_cmd,
        config_cmd,
        context_cmd,
        data_cmd,
        decide_cmd,
        doctor_cmd,
        journal_cmd,
        paper_cmd,
        score_cmd,
        tape_cmd,
        traces_cmd,
    )

    app.command("decide")(decide_cmd.decide)
    app.command("context")(context_cmd.context)
    app.add_typer(data_cmd.app, name="data")
    app.add_typer(config_cmd.app, name="config")
    app.command("doctor")(doctor_cmd.doctor)
    app.add_typer(traces_cmd.app, name="traces")
    app.add_typer(journal_cmd.app, name="journal")
    app.add_typer(paper_cmd.app, name="paper")
    app.command("backtest")(backtest_cmd.backtest)
    app.command("score")(score_cmd.score)
    app.command("arena")(arena_cmd.arena)
    app.command("audit")(audit_cmd.audit)
    app.add_typer(tape_cmd.app, name="tape")


_register()


class StdoutUnavailable(OSError):
    """stdout was closed when Rez started (``rez decide --json >&-``): the answer has nowhere to go."""

    def __init__(self) -> None:
        super().__init__(errno.EBADF, "cannot write to stdout: it is closed")

    def __str__(self) -> str:
        return "cannot write to stdout: it is closed (redirect it to a file or /dev/null instead)"


class _ClosedStdout(io.TextIOBase):
    """Stands for a stdout that was closed at startup: the first write fails with one clear error."""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        raise StdoutUnavailable

    def isatty(self) -> bool:
        return False


def guard_std_streams() -> None:
    """Make the standard streams safe to use whatever the shell handed over.

    A closed stdin, stdout or stderr gets a /dev/null descriptor before anything else opens a file:
    the kernel hands out the lowest free descriptor, so with fd 1 closed the next file opened (the
    journal) would become "stdout", and anything printed would be written into it. Text that the
    terminal's encoding cannot show (a lone surrogate from a file name that is not UTF-8, an emoji
    under LANG=C) is printed as an escape instead of failing the write.
    """
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(errors="backslashreplace")
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
            continue
        except OSError:
            pass
        devnull = os.open(os.devnull, os.O_RDWR)
        if devnull != fd:
            os.dup2(devnull, fd)
            os.close(devnull)
        if fd == 0:
            sys.stdin = open(fd, closefd=False)  # noqa: SIM115 - lives as long as the process
        elif fd == 1:
            sys.stdout = _ClosedStdout()
        else:
            sys.stderr = open(fd, "w", buffering=1, closefd=False)  # noqa: SIM115 - lives as long as the process


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``rez`` and return its exit code; every error the user can fix becomes one line on stderr.

    A ``RezError`` or a bad argument is ``rez: error: ...`` and its exit code (2 for usage). A reader
    that went away (``rez decide --json | head -c1``) ends the run quietly with 141, as a tool killed
    by SIGPIPE would; a closed stdout is one line and exit 2. Anything else is a bug (exit 1).
    """
    from rez_cli.cli.console import invocation_argv
    from rez_cli.redact import reset_active

    args = list(argv) if argv is not None else sys.argv[1:]
    invocation_argv.set(tuple(args))
    # Secrets are registered as this invocation loads its config; an earlier main() in the same
    # process (a test, a program driving rez) had its own.
    reset_active()
    try:
        # Not standalone: click would print a bad argument as a multi-line panel and turn a broken
        # pipe into exit 1; here each gets one line and its own code.
        code = app(args=args, prog_name="rez", standalone_mode=False)
    except SystemExit as exit_:
        # click and Rich both answer a broken pipe with SystemExit(1), raised while handling it.
        if _is_broken_pipe(exit_.__context__):
            return _broken_pipe()
        code = exit_.code
        return code if isinstance(code, int) else (0 if code is None else ExitCode.USAGE)
    except typer.TyperException as error:
        if type(error).__name__ == "NoArgsIsHelpError":
            return int(ExitCode.USAGE)  # typer printed the help when it raised this
        _say(f"rez: error: {_usage_message(error)}")
        return int(ExitCode.USAGE)
    except RezError as error:
        _say(f"rez: error: {error.one_line()}")
        return int(error.exit_code)
    except StdoutUnavailable as error:
        _say(f"rez: error: {error}")
        return int(ExitCode.USAGE)
    except OSError as error:
        if _is_broken_pipe(error):
            return _broken_pipe()
        raise
    except (KeyboardInterrupt, typer.Abort):
        _say("rez: interrupted")
        return int(ExitCode.INTERRUPTED)
    return code if isinstance(code, int) and not isinstance(code, bool) else int(ExitCode.OK)


def _say(line: str) -> None:
    # One line whatever the message holds: a value or path the user typed may carry line breaks, and
    # a server's error message may carry escape sequences, shown here as text and never obeyed.
    from rez_cli.display import display_str

    text = display_str(" ".join(part.strip() for part in line.splitlines() if part.strip()), multiline=False)
    # When stderr is gone as well, the exit code is all that is left to say it.
    with contextlib.suppress(OSError, ValueError):
        print(text, file=sys.stderr, flush=True)


def _usage_message(error: typer.TyperException) -> str:
    message = error.format_message()
    command = getattr(getattr(error, "ctx", None), "command_path", None)
    return f"{message} (see {command} --help)" if command else message


def _is_broken_pipe(error: BaseException | None) -> bool:
    return isinstance(error, OSError) and error.errno == errno.EPIPE


def _broken_pipe() -> int:
    """The reader of stdout went away: say nothing, and let nothing more be written there.

    As the Python docs advise for SIGPIPE: point stdout at /dev/null, so that the flush at
    interpreter shutdown has nowhere to fail ("Exception ignored ... BrokenPipeError").
    """
    try:
        fd = sys.stdout.fileno()
    except (OSError, ValueError, AttributeError):
        return int(ExitCode.BROKEN_PIPE)  # not a real file (a test's capture): nothing to silence
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)
    return int(ExitCode.BROKEN_PIPE)


def run() -> None:
    """The console script: ``main()``, then exit without a final garbage collection.

    Interpreter shutdown otherwise walks the whole heap of pandas/ccxt/openai modules (~0.4 s), a
    third of a cron cycle's wall time; freezing the heap lets the process exit at once.
    """
    import gc

    guard_std_streams()
    code = main()
    try:
        sys.stdout.flush()
    except OSError as error:
        # Output still buffered when main() returned: the reader left, or stdout cannot be written.
        if _is_broken_pipe(error):
            code = _broken_pipe()
        else:
            _say(f"rez: error: cannot write to stdout: {error.strerror or error}")
            code = int(ExitCode.USAGE)
    with contextlib.suppress(OSError):
        sys.stderr.flush()
    gc.freeze()
    sys.exit(code)
