"""A pass-through HTTP proxy on 127.0.0.1 that records what Rez asked a real server and what came back.

The scripted fake records requests itself; a real server (llama.cpp) does not. Put this between
Rez and the server to assert on the requests Rez sent (an output cap on each, ``response_format`` on
the final turn) and to see each raw answer (``finish_reason``, usage, llama.cpp's ``timings``)::

    with RecordingProxy.start(llama_server.address) as proxy:
        monkeypatch.setenv("REZ__LLM__BASE_URL", proxy.base_url)
        ...
        assert all("max_tokens" in exchange.request for exchange in proxy.chats)

Each request is forwarded once, as it came (method, path, body, content type and authorization),
and its answer is returned as it came. When the client hangs up first (its timeout), the proxy hangs
up on the server too, as a direct connection would, and records the exchange with status 499 and
``client_gone=True``.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import select
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

__all__ = ["Exchange", "RecordingProxy"]

_FORWARDED_HEADERS = ("content-type", "authorization", "accept")
# Longer than any generation the session's server allows (its n_predict bounds every answer).
_UPSTREAM_TIMEOUT_S = 600.0


@dataclass
class Exchange:
    """One request and the server's answer; ``status`` is None until it is known."""

    method: str
    path: str
    request: Any
    started: float
    status: int | None = None
    response: Any = None
    elapsed_s: float | None = None
    client_gone: bool = False

    @property
    def is_chat(self) -> bool:
        return self.path.rstrip("/").endswith("/chat/completions")


class RecordingProxy:
    """Forward every request to ``upstream`` (``http://host:port``) and keep a record of it."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self._lock = threading.Lock()
        self._exchanges: list[Exchange] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="recording-proxy",
            daemon=True,
        )

    @classmethod
    @contextlib.contextmanager
    def start(cls, upstream: str) -> Iterator[RecordingProxy]:
        proxy = cls(upstream)
        proxy._thread.start()
        try:
            yield proxy
        finally:
            proxy._server.shutdown()
            proxy._thread.join()
            proxy._server.server_close()

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    @property
    def exchanges(self) -> list[Exchange]:
        with self._lock:
            return list(self._exchanges)

    @property
    def chats(self) -> list[Exchange]:
        return [exchange for exchange in self.exchanges if exchange.is_chat]

    def wait_for_answers(self, timeout_s: float) -> bool:
        """Wait until every forwarded request has its answer; False if some are still pending."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if all(exchange.status is not None for exchange in self.exchanges):
                return True
            time.sleep(0.05)
        return False

    def _add(self, exchange: Exchange) -> None:
        with self._lock:
            self._exchanges.append(exchange)


def _parse(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return raw.decode("utf-8", "replace")


def _client_gone(connection: socket.socket) -> bool:
    """True once the client has closed its end (readable, and a peek reads end of file)."""
    try:
        readable, _, _ = select.select([connection], [], [], 0)
        return bool(readable) and connection.recv(1, socket.MSG_PEEK) == b""
    except OSError:
        return True


def _handler_for(proxy: RecordingProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # the test output is not a web log
            pass

        def do_GET(self) -> None:
            self._forward()

        def do_POST(self) -> None:
            self._forward()

        def _forward(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length) if length else b""
            exchange = Exchange(self.command, self.path, _parse(body), time.monotonic())
            proxy._add(exchange)
            headers = {name: value for name in _FORWARDED_HEADERS if (value := self.headers.get(name))}
            target = urlsplit(proxy.upstream)
            upstream = http.client.HTTPConnection(
                target.hostname or "127.0.0.1", target.port, timeout=_UPSTREAM_TIMEOUT_S
            )
            done = threading.Event()
            watcher = threading.Thread(
                target=self._hang_up_with_client, args=(upstream, done, exchange), daemon=True
            )
            status: int | None = None
            payload, kind = b"", None
            try:
                upstream.request(self.command, self.path, body=body or None, headers=headers)
                watcher.start()
                answer = upstream.getresponse()
                status, payload, kind = answer.status, answer.read(), answer.getheader("content-type")
            except OSError as error:
                if not exchange.client_gone:  # the server is gone: say so the way a gateway would
                    status, kind = 502, "application/json"
                    payload = json.dumps({"error": {"message": f"proxy: {error}"}}).encode()
            finally:
                done.set()
                upstream.close()
            exchange.response = _parse(payload) if payload else None
            exchange.elapsed_s = time.monotonic() - exchange.started
            if status is None:
                # nginx's "client closed request": nothing came back because nobody was listening.
                exchange.status = 499
                self.close_connection = True
                return
            try:
                self.send_response(status)
                self.send_header("content-type", kind or "application/json")
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except OSError:
                exchange.client_gone = True
            # Last, so that a waiter sees response, elapsed_s and client_gone together.
            exchange.status = status

        def _hang_up_with_client(
            self, upstream: http.client.HTTPConnection, done: threading.Event, exchange: Exchange
        ) -> None:
            # llama.cpp stops generating when its client hangs up; a proxy that kept the upstream
            # connection open would let an abandoned generation run on and delay the next request.
            while not done.wait(0.1):
                if _client_gone(self.connection):
                    exchange.client_gone = True
                    with contextlib.suppress(OSError):
                        if upstream.sock is not None:
                            upstream.sock.shutdown(socket.SHUT_RDWR)
                    return

    return Handler
