"""A GGUF file served by Rez itself: llama.cpp's OpenAI-compatible server, in-process, on loopback.

``[llm] gguf = "model.gguf"`` (or ``--model ./model.gguf``) needs no Ollama and no server to install:
``xllamacpp`` (the optional extra ``rez-cli[local]``, prebuilt CPU wheels) runs llama.cpp's HTTP
server inside this process on a free port of 127.0.0.1, and the ordinary OpenAI client talks to it.
The model loads once per run (``rez decide`` of many symbols, a whole backtest) and unloads when the
run ends. This module is the only one that imports xllamacpp, and only when a GGUF is configured.

The file is checked before anything else of the run happens (no market call, nothing journaled):
it must exist, be a readable file, start with the GGUF magic, and fit in the memory available.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rez_cli.errors import UsageError

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

    from rez_cli.config.settings import LLMSettings

__all__ = [
    "GGUF_MAGIC",
    "LocalModel",
    "available_memory",
    "check_gguf",
    "default_prompt_threads",
    "default_threads",
    "gguf_of",
    "prepare",
    "require_xllamacpp",
    "serve",
    "serve_gguf",
]

GGUF_MAGIC = b"GGUF"
INSTALL_HINT = "pip install 'rez-cli[local]'"
# How many servers this process has started: a run loads its model once, and tests count on it.
starts = 0


@dataclass(frozen=True)
class LocalModel:
    """A served GGUF: ``base_url`` and ``model`` are what the OpenAI client takes."""

    path: Path
    model: str
    base_url: str
    n_ctx: int
    threads: int
    """Threads generating."""
    prompt_threads: int
    """Threads reading a prompt."""
    load_s: float


def _size(count: float) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if count >= scale:
            return f"{count / scale:.1f} {unit}"
    return f"{int(count)} bytes"


def available_memory() -> int | None:
    """Bytes of memory a new process can still have without swapping, or None where unknown.

    MemAvailable counts the page cache the kernel would give back, which is where a model's mapped
    file ends up; the free pages of ``SC_AVPHYS_PAGES`` leave that out and read far too low on a
    machine that has been up a while, so they are only the fallback (macOS has no /proc).
    """
    with contextlib.suppress(OSError, ValueError), open("/proc/meminfo", encoding="ascii") as meminfo:
        for line in meminfo:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, OSError, ValueError):
        return None


def check_gguf(path: Path, origin: str = "[llm] gguf") -> int:
    """The file's size, once it is known to be a GGUF file that fits in the memory available.

    Raises:
        UsageError: a missing path, a directory, an unreadable file, one that is not GGUF, or one
            larger than the memory available; the one line names the path and says which.
    """
    where = f"{origin} {path}"
    try:
        if path.is_dir():
            raise UsageError(f"{where} is a directory, not a GGUF file")
        if not path.exists():
            raise UsageError(f"{where} does not exist", hint="give the path of a .gguf model file")
        with path.open("rb") as file:
            magic = file.read(len(GGUF_MAGIC))
            size = os.fstat(file.fileno()).st_size
    except UsageError:
        raise
    except OSError as error:
        raise UsageError(f"{where} cannot be read: {error.strerror or error}") from None
    except ValueError as error:  # a NUL byte in the path
        raise UsageError(f"{where} is not a usable path: {error}") from None
    if magic != GGUF_MAGIC:
        raise UsageError(
            f"{where} is not a GGUF model file (it does not start with the bytes GGUF)",
            hint="llama.cpp reads .gguf files; other formats need converting",
        )
    available = available_memory()
    if available is not None and size > available:
        raise UsageError(
            f"{where} is {_size(size)} but only {_size(available)} of memory is available",
            hint="a smaller quantization of the model, or free some memory",
        )
    return size


def require_xllamacpp() -> Any:
    """The xllamacpp module.

    Raises:
        UsageError: it is not installed (the ``local`` extra).
    """
    try:
        import xllamacpp
    except ImportError:
        raise UsageError(f"serving a GGUF file needs the local extra: {INSTALL_HINT}") from None
    return xllamacpp


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS and Windows have no sched_getaffinity
        return os.cpu_count() or 1


def default_threads() -> int:
    """One core fewer than this process may use, at least one: the threads that generate.

    The left core runs Rez, the market client and the HTTP server's own thread: llama.cpp's threads
    spin at their barriers, so on a 2-core machine 2 threads were seen generating 5 tokens/s where
    1 thread generated 31.
    """
    return max(1, _cores() - 1)


def default_prompt_threads() -> int:
    """Every core this process may use: the threads that read a prompt.

    Reading the prompt is one large batch, while Rez only waits for the answer; a small model spends
    most of a cycle there. On 2 cores, two decides with SmolLM2 took 69 s instead of 85 s.
    """
    return _cores()


@contextlib.contextmanager
def _python_keeps_signals() -> Iterator[None]:
    """Give SIGINT and SIGTERM back to Python if llama.cpp's server took them while starting.

    Some xllamacpp releases install handlers of their own: Ctrl-C would then stop the model server
    instead of Rez, and a second one would exit the process without journaling the interrupted run.
    """
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may set handlers, and Python's are there only
        return
    saved = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for number, handler in saved.items():
            if handler is not None:
                signal.signal(number, handler)


@contextlib.contextmanager
def serve_gguf(
    path: Path, *, n_ctx: int = 8192, threads: int | None = None, n_predict: int = 1024
) -> Iterator[LocalModel]:
    """Serve ``path`` on a free loopback port until the block ends.

    Loading blocks (a few seconds per GB read from disk): it runs before the run's cycles start,
    when there is nothing else for the event loop to do.

    Raises:
        UsageError: xllamacpp is not installed, or llama.cpp cannot load the file.
    """
    global starts
    xllamacpp = require_xllamacpp()
    # Threads the user chose work on both; by default the prompt gets every core.
    prompt_threads = threads or default_prompt_threads()
    threads = threads or default_threads()
    params = xllamacpp.CommonParams()
    params.model.path = str(path)
    model = path.stem
    params.model_alias = {model}
    # The GGUF's own chat template, with its tool support where it has any; without it llama.cpp
    # refuses requests that carry tools.
    params.use_jinja = True
    params.hostnames = ["127.0.0.1"]
    params.port = 0  # the OS picks a free port; listening_address says which
    params.n_ctx = n_ctx
    # Rez sends its cap with every request; this one also bounds a request Rez gave up on, which
    # llama.cpp keeps generating while it holds the only slot.
    params.n_predict = n_predict
    # One request at a time: on a CPU, parallel slots share the same cores and split the context.
    params.n_parallel = 1
    params.cpuparams.n_threads = threads
    params.cpuparams_batch.n_threads = prompt_threads
    # llama.cpp's INFO lines would cover the trace on stderr.
    params.verbosity = 0
    started = time.monotonic()
    with _python_keeps_signals():
        try:
            server: Any = xllamacpp.Server(params)
        except RuntimeError as error:
            raise UsageError(f"llama.cpp could not load {path}: {error}") from None
    starts += 1
    address = str(server.listening_address).rstrip("/")
    served = LocalModel(
        path=path,
        model=model,
        base_url=f"{address}/v1",
        n_ctx=n_ctx,
        threads=threads,
        prompt_threads=prompt_threads,
        load_s=time.monotonic() - started,
    )
    try:
        yield served
    finally:
        # The server's destructor asks its task loop to end and joins it; asked before that loop has
        # started it never ends. /slots is answered by that loop, so an answer means it runs.
        with (
            contextlib.suppress(OSError, ValueError),
            urllib.request.urlopen(f"{address}/slots", timeout=10) as answer,
        ):
            answer.read()
        del server


def gguf_of(llm: LLMSettings, model_override: str | None) -> Path | None:
    """The GGUF file Rez is to serve itself, if any: ``--model`` when it is a path, else ``[llm] gguf``.

    A ``--model`` value is a path when it ends in ``.gguf`` or names an existing file: no endpoint's
    model name is either, and a typo in a path should be reported as a missing file, not sent to an
    endpoint as a model name. ``--model NAME`` overrides ``[llm] gguf`` as it overrides ``[llm] model``.
    """
    if model_override:
        path = Path(os.path.expanduser(model_override))
        try:
            is_file = path.is_file()
        except (OSError, ValueError):  # a NUL byte, a name too long: not a file
            is_file = False
        return path if model_override.lower().endswith(".gguf") or is_file else None
    if llm.gguf is not None:
        return Path(os.path.expanduser(llm.gguf))
    return None


def prepare(llm: LLMSettings, model_override: str | None) -> Path | None:
    """The GGUF file this run is to serve, checked; None when its model is behind an endpoint.

    Called before the run journals anything or asks any market.

    Raises:
        UsageError: the file fails a check of ``check_gguf``, or xllamacpp is not installed.
    """
    path = gguf_of(llm, model_override)
    if path is None:
        return None
    check_gguf(path, "--model" if model_override else "[llm] gguf")
    require_xllamacpp()
    return path


def serve(llm: LLMSettings, path: Path) -> AbstractContextManager[LocalModel]:
    """``serve_gguf`` with the run's settings."""
    return serve_gguf(path, n_ctx=llm.gguf_context, threads=llm.gguf_threads, n_predict=llm.max_output_tokens)
