"""A fake OpenAI-compatible server on 127.0.0.1 that plays a script.

The real openai SDK talks to it over real HTTP, so retries, timeouts, headers and JSON shapes are
exercised as in production. Each ``POST /v1/chat/completions`` (or ``/chat/completions``) takes
the next step of the script::

    with FakeOpenAI.start([
        tool_calls([("fetch_indicator", {"indicator": "rsi", "timeframe": "1h"})]),
        error(429, retry_after=0.01),          # the SDK retries it after 10 ms
        delay(0.2, then=reply("done")),
        lambda body: reply("{}") if "response_format" in body else reply("prose"),
    ]) as fake:
        llm = OpenAIChat(api_key="sk-test", base_url=fake.base_url, timeout_s=5, max_retries=2)
        ...
        assert fake.requests[0].headers["authorization"] == "Bearer sk-test"
        assert "tools" not in fake.requests[-1].body

Steps: ``reply``, ``tool_calls``, ``error``, ``delay``, ``hang``, ``raw``, or a callable
``(request_body) -> step``. Once the script is exhausted the server repeats the last step when
``repeat_last=True``; otherwise it answers 500 with ``x-should-retry: false`` (so the SDK does not
retry) and a message saying the script ran out. ``delay`` and ``hang`` wait on an event that
``stop()`` sets, so a hanging request never holds up the end of a test.

Other tests get a running server from the ``fake_openai`` fixture by adding
``pytest_plugins = ["tests.support.openai_server"]`` to the root ``conftest.py``, or by using
``FakeOpenAI.start()`` directly.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeAlias

import pytest

__all__ = [
    "FakeOpenAI",
    "HttpError",
    "RecordedRequest",
    "Reply",
    "Step",
    "delay",
    "error",
    "fake_openai",
    "hang",
    "raw",
    "reply",
    "tool_calls",
]

CHAT_PATHS = ("/v1/chat/completions", "/chat/completions")
# Longer than any client timeout a test would use, short enough that a leaked hang ends by itself.
MAX_HANG_S = 30.0


@dataclass(frozen=True)
class Reply:
    """A 200 chat completion; ``tool_calls`` holds ``(name, arguments JSON text)`` pairs."""

    content: str | None
    tool_calls: tuple[tuple[str, str], ...] = ()
    finish_reason: str | None = "stop"
    model: str | None = None
    usage: tuple[int, int] | None = (10, 5)
    reasoning_content: str | None = None


@dataclass(frozen=True)
class HttpError:
    """An error status with an OpenAI-shaped ``{"error": {...}}`` body."""

    status: int
    message: str
    retry_after: float | None = None
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Raw:
    """Any status, body and headers: for answers no real server should give."""

    status: int
    body: bytes
    headers: Mapping[str, str]


@dataclass(frozen=True)
class Delay:
    seconds: float
    then: Step


@dataclass(frozen=True)
class Hang:
    """Wait ``seconds`` (or until the server stops), then drop the connection without answering."""

    seconds: float


Step: TypeAlias = Reply | HttpError | Raw | Delay | Hang | Callable[[dict[str, Any]], "Step"]


def reply(
    content: str | None,
    *,
    finish_reason: str | None = "stop",
    model: str | None = None,
    usage: tuple[int, int] | None = (10, 5),
    reasoning_content: str | None = None,
) -> Reply:
    """A plain assistant message.

    Args:
        content: the message text (None for a null content).
        finish_reason: as the server reports it.
        model: the model name in the answer; None echoes the request's.
        usage: ``(prompt_tokens, completion_tokens)``, or None to omit ``usage`` as some local
            servers do.
        reasoning_content: a reasoning model's thinking, as DeepSeek, vLLM and llama.cpp send it.
    """
    return Reply(
        content=content,
        finish_reason=finish_reason,
        model=model,
        usage=usage,
        reasoning_content=reasoning_content,
    )


def tool_calls(
    calls: Sequence[tuple[str, Any]],
    *,
    content: str | None = None,
    finish_reason: str | None = "tool_calls",
    model: str | None = None,
    usage: tuple[int, int] | None = (10, 5),
) -> Reply:
    """An assistant message asking for one or more (parallel) function calls.

    Args:
        calls: ``(function name, arguments)``; a str is sent as is (to send broken JSON), anything
            else as JSON text. Ids are ``call_<request number>_<index>``.
        content: text alongside the calls (usually None).
        finish_reason: as the server reports it.
        model: the model name in the answer; None echoes the request's.
        usage: ``(prompt_tokens, completion_tokens)`` or None to omit it.
    """
    encoded = tuple((name, args if isinstance(args, str) else json.dumps(args)) for name, args in calls)
    return Reply(content=content, tool_calls=encoded, finish_reason=finish_reason, model=model, usage=usage)


_DEFAULT_MESSAGES = {
    400: "Invalid request.",
    401: "Incorrect API key provided.",
    403: "You are not allowed to sample from this model.",
    404: "The model does not exist.",
    422: "Unprocessable entity.",
    429: "Rate limit reached for requests.",
    500: "The server had an error while processing your request.",
    503: "The engine is currently overloaded, please try again later.",
}


def error(
    status: int,
    message: str | None = None,
    *,
    retry_after: float | None = None,
    headers: Mapping[str, str] | None = None,
) -> HttpError:
    """An HTTP error as OpenAI sends it.

    Args:
        status: the status code.
        message: ``error.message`` in the body; a stock one per status when None.
        retry_after: seconds, sent as ``retry-after-ms`` (which the SDK prefers) and ``retry-after``.
            The SDK ignores a value of 0 and falls back to its own backoff (0.5 s, doubling), so use
            e.g. 0.01 for a fast retry.
        headers: extra response headers, e.g. ``{"x-should-retry": "false"}``.
    """
    text = message if message is not None else _DEFAULT_MESSAGES.get(status, HTTPStatus(status).phrase)
    return HttpError(status=status, message=text, retry_after=retry_after, headers=dict(headers or {}))


def raw(status: int = 200, body: str | bytes | Mapping[str, Any] | list[Any] = b"", **headers: str) -> Raw:
    """Any answer at all: a completion without choices, an HTML page, broken JSON.

    Args:
        status: the status code.
        body: a mapping or list is sent as JSON; text or bytes as they are.
        **headers: response headers; ``content_type="text/html"`` becomes ``Content-Type``.
            ``application/json`` by default.
    """
    if isinstance(body, bytes):
        data = body
    elif isinstance(body, str):
        data = body.encode()
    else:
        data = json.dumps(body).encode()
    named = {name.replace("_", "-"): value for name, value in headers.items()}
    named.setdefault("content-type", "application/json")
    return Raw(status=status, body=data, headers=named)


def delay(seconds: float, then: Step) -> Delay:
    """Wait ``seconds`` (cut short when the server stops), then play ``then``."""
    return Delay(seconds=seconds, then=then)


def hang(seconds: float = MAX_HANG_S) -> Hang:
    """Answer nothing for ``seconds`` (at most 30, released when the server stops)."""
    return Hang(seconds=min(seconds, MAX_HANG_S))


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the server saw it; header names are lower-case.

    ``received_at`` is ``time.monotonic()`` on arrival: the gap between two requests shows the
    client's retry delay without the client's own start-up time.
    """

    method: str
    path: str
    headers: dict[str, str]
    body: Any
    received_at: float


class FakeOpenAI:
    """A scripted OpenAI-compatible server in a background thread; see the module docstring.

    Args:
        script: the steps, consumed one per chat request in arrival order.
        repeat_last: keep playing the last step once the script is exhausted.
    """

    def __init__(self, script: Iterable[Step] = (), *, repeat_last: bool = False) -> None:
        self._script: list[Step] = list(script)
        self.repeat_last = repeat_last
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self._last: Step | None = None
        self._ids = itertools.count(1)
        self._stopping = threading.Event()
        self._server = _Server(self)
        self._thread: threading.Thread | None = None

    @classmethod
    @contextlib.contextmanager
    def start(cls, script: Iterable[Step] = (), *, repeat_last: bool = False) -> Iterator[FakeOpenAI]:
        """Run a server for the duration of the ``with`` block."""
        fake = cls(script, repeat_last=repeat_last)
        fake.serve()
        try:
            yield fake
        finally:
            fake.stop()

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>/v1``, what ``base_url`` of the SDK expects."""
        return f"{self.url}/v1"

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``, without the ``/v1`` prefix."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far, chat or not, in arrival order (a copy)."""
        with self._lock:
            return list(self._requests)

    @property
    def bodies(self) -> list[Any]:
        """The parsed JSON bodies of the chat requests."""
        return [request.body for request in self.requests if request.path in CHAT_PATHS]

    @property
    def remaining(self) -> int:
        """Steps not played yet."""
        with self._lock:
            return len(self._script)

    def push(self, *steps: Step) -> None:
        """Append steps to the script."""
        with self._lock:
            self._script.extend(steps)

    def serve(self) -> None:
        """Start answering in a background thread (``start()`` does this for you)."""
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-openai", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Release delayed and hanging requests, close every connection, join every thread."""
        self._stopping.set()
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
        self._server.close_all()
        self._server.server_close()

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(request)

    def _next_step(self) -> tuple[Step | None, int]:
        with self._lock:
            number = next(self._ids)
            if self._script:
                self._last = self._script.pop(0)
                return self._last, number
            return (self._last if self.repeat_last else None), number

    def _wait(self, seconds: float) -> bool:
        """Sleep ``seconds``; False when the server is stopping and the request should be dropped."""
        return not self._stopping.wait(max(0.0, seconds))


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # Joining is done in close_all with a bound, not by server_close without one.
    block_on_close = False

    def __init__(self, fake: FakeOpenAI) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.fake = fake
        self._connections: set[socket.socket] = set()
        self._workers: list[threading.Thread] = []
        self._guard = threading.Lock()

    def process_request(self, request: Any, client_address: Any) -> None:
        worker = threading.Thread(
            target=self.process_request_thread, args=(request, client_address), daemon=True
        )
        with self._guard:
            self._connections.add(request)
            self._workers = [thread for thread in self._workers if thread.is_alive()]
            self._workers.append(worker)
        worker.start()

    def shutdown_request(self, request: Any) -> None:
        with self._guard:
            self._connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that timed out and hung up is expected here; the test asserts on what the
        # client saw, and a traceback on stderr would only be noise.
        return None

    def close_all(self) -> None:
        with self._guard:
            connections = list(self._connections)
            workers = list(self._workers)
        for connection in connections:
            # Wakes handlers blocked reading a kept-alive connection; closing is their job.
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        for worker in workers:
            worker.join(timeout=5)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server
    # An idle kept-alive connection frees its thread after this long even if nobody closes it.
    timeout = 10

    def log_message(self, format: str, *args: Any) -> None:
        return None

    def do_GET(self) -> None:
        self._record(None)
        self._send_error(HttpError(404, f"Unknown path {self.path}", None, {}))

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        data = self.rfile.read(length) if length else b""
        try:
            body: Any = json.loads(data) if data else None
        except ValueError:
            body = data.decode(errors="replace")
        self._record(body)
        path = self.path.split("?", 1)[0]
        if path not in CHAT_PATHS:
            self._send_error(HttpError(404, f"Unknown path {path}", None, {}))
            return
        fake = self.server.fake
        step, number = fake._next_step()
        if step is None:
            self._send_error(_fatal(f"fake OpenAI: script exhausted at request {number}"))
            return
        self._play(step, body if isinstance(body, dict) else {}, number)

    def _record(self, body: Any) -> None:
        headers = {name.lower(): value for name, value in self.headers.items()}
        self.server.fake._record(RecordedRequest(self.command, self.path, headers, body, time.monotonic()))

    def _play(self, step: Step, body: dict[str, Any], number: int) -> None:
        fake = self.server.fake
        while True:
            if isinstance(step, Delay):
                if not fake._wait(step.seconds):
                    self.close_connection = True
                    return
                step = step.then
            elif isinstance(step, Hang):
                fake._wait(step.seconds)
                self.close_connection = True
                return
            elif isinstance(step, Reply):
                self._send_json(200, _completion(step, body, number))
                return
            elif isinstance(step, HttpError):
                self._send_error(step)
                return
            elif isinstance(step, Raw):
                self._send(step.status, step.body, step.headers)
                return
            else:
                try:
                    step = step(body)
                except Exception as failure:  # a broken test callable should fail loudly, not hang
                    self._send_error(_fatal(f"fake OpenAI: step callable raised {failure!r}"))
                    return

    def _send_error(self, step: HttpError) -> None:
        headers = dict(step.headers)
        if step.retry_after is not None:
            headers.setdefault("retry-after-ms", str(round(step.retry_after * 1000)))
            headers.setdefault("retry-after", str(math.ceil(step.retry_after)))
        payload = {
            "error": {
                "message": step.message,
                "type": _ERROR_TYPES.get(
                    step.status, "server_error" if step.status >= 500 else "invalid_request_error"
                ),
                "param": None,
                "code": _ERROR_CODES.get(step.status),
            }
        }
        self._send_json(step.status, payload, headers)

    def _send_json(self, status: int, payload: Any, headers: Mapping[str, str] | None = None) -> None:
        merged = {"content-type": "application/json", **(headers or {})}
        self._send(status, json.dumps(payload).encode(), merged)

    def _send(self, status: int, data: bytes, headers: Mapping[str, str]) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def _fatal(message: str) -> HttpError:
    # A mistake in the test itself: x-should-retry stops the SDK from retrying it into a slow test.
    return HttpError(500, message, None, {"x-should-retry": "false"})


_ERROR_TYPES = {401: "invalid_request_error", 403: "permission_error", 429: "requests"}
_ERROR_CODES = {401: "invalid_api_key", 404: "model_not_found", 429: "rate_limit_exceeded"}


def _completion(step: Reply, request: dict[str, Any], number: int) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": step.content, "refusal": None}
    if step.reasoning_content is not None:
        message["reasoning_content"] = step.reasoning_content
    if step.tool_calls:
        message["tool_calls"] = [
            {
                "id": f"call_{number}_{index}",
                "type": "function",
                "function": {"name": name, "arguments": args},
            }
            for index, (name, args) in enumerate(step.tool_calls)
        ]
    completion: dict[str, Any] = {
        "id": f"chatcmpl-fake-{number}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": step.model or str(request.get("model") or "fake-model"),
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": step.finish_reason}],
    }
    if step.usage is not None:
        prompt, completion_tokens = step.usage
        completion["usage"] = {
            "prompt_tokens": prompt,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt + completion_tokens,
        }
    return completion


@pytest.fixture
def fake_openai() -> Iterator[FakeOpenAI]:
    """A running ``FakeOpenAI`` with an empty script: ``fake_openai.push(reply("..."))``."""
    with FakeOpenAI.start() as fake:
        yield fake
