"""``OpenAIChat``: the ``LLMClient`` for any OpenAI-compatible Chat Completions endpoint.

This is the only module that imports the openai SDK, and it does so lazily so that ``rez --help``
and the offline ``rules`` mode never pay for it. Every SDK exception is translated here into the
``LLMError`` tree of ``llm.py``; retries are the SDK's own (bounded by ``max_retries``, honouring
``retry-after-ms`` / ``retry-after``), there is no retry layer on top.

    SDK exception                                  raised here
    APITimeoutError, 408                           LLMTimeout
    RateLimitError (429)                           LLMRateLimited
    AuthenticationError, PermissionDeniedError     LLMAuthFailed
    APIConnectionError, InternalServerError (5xx)  LLMUnavailable
    BadRequestError, NotFoundError, 422, other     LLMBadResponse
    a 200 that is not a completion with choices    LLMBadResponse
    400/404/422/5xx refusing the tools it was sent LLMToolsRefused (``refuses_tools``)

Messages are one line and never contain the API key, even when a server echoes it back: they go
through ``rez_cli.redact`` (a key shorter than 8 characters, a local server's "x", is not a secret).
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import urlsplit

from rez_cli.llm.client import (
    ChatResponse,
    LLMAuthFailed,
    LLMBadResponse,
    LLMError,
    LLMNotConfigured,
    LLMRateLimited,
    LLMTimeout,
    LLMToolsRefused,
    LLMUnavailable,
    TokenUsage,
    ToolCall,
)
from rez_cli.llm.thinking import split_thinking
from rez_cli.redact import active

if TYPE_CHECKING:
    from openai import APIError, AsyncOpenAI

__all__ = ["OpenAIChat", "endpoint_label", "refuses_tools"]

# The SDK's default endpoint, spelled out because an empty OPENAI_BASE_URL would otherwise reach
# the SDK as a base URL of "" (it only falls back when the variable is unset).
_OPENAI_BASE_URL = "https://api.openai.com/v1"
# Local servers (Ollama, llama.cpp, vLLM) ignore the key, but the SDK refuses to start without one.
_PLACEHOLDER_KEY = "not-needed"
_NOT_CONFIGURED = (
    "no API key: set OPENAI_API_KEY or [llm] api_key, or point [llm] base_url at a local endpoint"
)
_MAX_DETAIL_CHARS = 200
# No model reads or writes a billion tokens in one call; a server that says so is wrong, and its
# number (10**19 has been seen) must not overflow the journal or the cost. Larger counts are cut here.
MAX_TOKENS_PER_CALL = 1_000_000_000


# What servers say when they cannot take the tools of a request. "parallel_tool_calls" is taken out
# first: an endpoint refusing that field still takes tools (``[llm] parallel_tool_calls = false``).
_TOOL_WORDS = re.compile(
    r"\btools?\b|tool_choice|tool[ _-]?calls?|tool use|function[ _-]?call|\bfunctions?\b", re.I
)
_PARALLEL_FIELD = re.compile(r"parallel_tool_calls", re.I)


def refuses_tools(status: int, message: str) -> bool:
    """Whether an error answer to a request that offered tools says the endpoint cannot take them.

    Args:
        status: the HTTP status.
        message: the server's error text.

    Returns:
        True for a 400, 404 or 422 that names tools, tool choice, tool calls or functions (Ollama's
        "does not support tools", vLLM's '"auto" tool choice requires --enable-auto-tool-choice',
        OpenRouter's "No endpoints found that support tool use"), and for llama.cpp's 500 "tools
        param requires --jinja flag"; False for anything else, such as a 500 that merely mentions tools.
    """
    text = _PARALLEL_FIELD.sub("", message)
    if status in (400, 404, 422):
        return _TOOL_WORDS.search(text) is not None
    if status >= 500:
        # A server error is refusal only when it says so in llama.cpp's words: any 5xx may mention tools.
        lowered = text.lower()
        return "jinja" in lowered and "tool" in lowered
    return False


def endpoint_label(base_url: str | None) -> str:
    """The endpoint as it may be shown to a user: ``host[:port]``, without credentials or query.

    Args:
        base_url: the configured base URL, or None for the SDK's default (``OPENAI_BASE_URL`` if
            set, else OpenAI's own endpoint).

    Returns:
        For example ``api.openai.com`` or ``127.0.0.1:11434``; ``"?"`` when nothing can be parsed.
    """
    url = base_url or os.environ.get("OPENAI_BASE_URL") or _OPENAI_BASE_URL
    # Without a scheme urlsplit reads "localhost:8080/v1" as scheme "localhost": give it a netloc.
    parts = urlsplit(url if "//" in url else f"//{url}")
    host = parts.hostname
    if not host:
        return "?"
    if ":" in host:  # an IPv6 literal needs its brackets back once a port follows
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:  # a port that is not a number: the host alone still says where
        port = None
    return f"{host}:{port}" if port is not None else host


class OpenAIChat:
    """An ``LLMClient`` over the openai SDK's ``AsyncOpenAI``.

    Args:
        api_key: the key; None falls back to ``OPENAI_API_KEY`` as the SDK does.
        base_url: the endpoint; None falls back to ``OPENAI_BASE_URL``, then to OpenAI's.
        timeout_s: the limit for one HTTP request (each retry gets its own).
        max_retries: how many times the SDK retries a timeout, a connection error, 408, 409,
            429 or 5xx before giving up (0: a single attempt).
        max_output_tokens: the cap on every answer, sent as ``max_tokens`` (or, once the endpoint
            refuses that, as ``max_completion_tokens``, which OpenAI's reasoning models require).
        temperature: the sampling temperature of every call that does not set its own.
        seed: sent when set, for endpoints that make sampling repeatable with it.
        extra_headers: HTTP headers added to every request (provider routing, auth proxies).
        extra_body: fields merged into every request body (Ollama's ``options``, OpenRouter's
            ``provider``).
        endpoint_name: how messages and the tool-protocol memory name the endpoint, when its URL
            says nothing lasting (a model Rez serves itself gets a new port every run).

    Raises:
        LLMNotConfigured: neither a key nor a base URL, explicitly or in the environment.
        ValueError: ``timeout_s`` not a positive finite number, or ``max_retries`` negative.
    """

    def __init__(
        self,
        *,
        api_key: str | None,
        base_url: str | None,
        timeout_s: float,
        max_retries: int,
        max_output_tokens: int | None = None,
        temperature: float | None = None,
        seed: int | None = None,
        extra_headers: Mapping[str, str] | None = None,
        extra_body: Mapping[str, Any] | None = None,
        endpoint_name: str | None = None,
    ) -> None:
        if not (isinstance(timeout_s, int | float) and math.isfinite(timeout_s) and timeout_s > 0):
            raise ValueError(f"timeout_s must be a positive number of seconds, got {timeout_s!r}")
        if not isinstance(max_retries, int) or max_retries < 0:
            raise ValueError(f"max_retries must be a non-negative integer, got {max_retries!r}")
        key = (api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")) or None
        resolved_url = base_url or os.environ.get("OPENAI_BASE_URL") or None
        if key is None and resolved_url is None:
            raise LLMNotConfigured(_NOT_CONFIGURED)
        if resolved_url is not None and urlsplit(resolved_url).scheme not in ("http", "https"):
            # The SDK would accept it and fail on every call with a less helpful message.
            raise LLMNotConfigured(
                f"base_url {endpoint_label(resolved_url)!r} must start with http:// or https://"
            )
        self._redactor = active().extended([key] if key else [])
        self._max_output_tokens = max_output_tokens
        # Chat Completions' older name for the cap; OpenAI's reasoning models refuse it.
        self._cap_field = "max_tokens"
        self._temperature = temperature
        self._seed = seed
        self._extra_headers = dict(extra_headers or {})
        self._extra_body = dict(extra_body or {})
        self._timeout_s = float(timeout_s)
        self._endpoint = endpoint_name or endpoint_label(resolved_url)

        import openai

        try:
            self._client: AsyncOpenAI = openai.AsyncOpenAI(
                api_key=key or _PLACEHOLDER_KEY,
                base_url=resolved_url or _OPENAI_BASE_URL,
                timeout=timeout_s,
                max_retries=max_retries,
            )
        except openai.OpenAIError as error:
            raise LLMNotConfigured(
                f"cannot set up the client for {self._endpoint}: {self._detail(str(error))}"
            ) from error

    def __repr__(self) -> str:
        return f"OpenAIChat(endpoint={self._endpoint!r})"

    @property
    def endpoint(self) -> str:
        """The endpoint as ``endpoint_label`` shows it."""
        return self._endpoint

    async def chat(
        self,
        *,
        model: str,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None = None,
        parallel_tool_calls: bool | None = None,
        response_format: dict[str, Any] | None = None,
        tool_choice: str | None = None,
        temperature: float | None = None,
    ) -> ChatResponse:
        """One non-streaming completion; see ``LLMClient.chat``.

        Args:
            model: the model name the endpoint knows.
            messages: the conversation so far, in Chat Completions shape.
            tools: function tool schemas; None or empty sends no ``tools`` (a turn that must answer).
            parallel_tool_calls: sent only when not None and tools are sent.
            response_format: sent only when given.
            tool_choice: sent only with tools.
            temperature: this call's temperature; None: the configured one (not sent if neither).

        Returns:
            The first choice's assistant message, its usage (0 when the server omits it), model and
            finish reason.

        Raises:
            LLMError: a subclass per failure (module docstring); never an SDK exception.
        """
        import openai
        from openai.types.chat import ChatCompletion

        options: dict[str, Any] = {}
        if tools:
            options["tools"] = tools
            # Endpoints without parallel tool calls reject the field, so it is sent only when asked.
            if parallel_tool_calls is not None:
                options["parallel_tool_calls"] = parallel_tool_calls
            if tool_choice is not None:
                options["tool_choice"] = tool_choice
        if response_format is not None:
            options["response_format"] = response_format
        chosen_temperature = temperature if temperature is not None else self._temperature
        if chosen_temperature is not None:
            options["temperature"] = chosen_temperature
        if self._seed is not None:
            options["seed"] = self._seed
        if self._extra_headers:
            options["extra_headers"] = self._extra_headers
        if self._extra_body:
            options["extra_body"] = self._extra_body
        try:
            completion = await self._create(model, messages, options)
        except openai.APIError as error:
            raise self._translate(error, tools_sent=bool(tools)) from error
        except openai.OpenAIError as error:
            raise LLMBadResponse(f"{self._endpoint}: {self._detail(str(error))}") from error
        except json.JSONDecodeError as error:
            # The SDK parses a body labelled JSON without catching what fails to parse.
            raise LLMBadResponse(
                f"{self._endpoint} answered with invalid JSON: {self._detail(str(error))}"
            ) from error
        if not isinstance(completion, ChatCompletion):
            # The SDK hands back the raw text when the Content-Type is not JSON (an HTML proxy page).
            raise LLMBadResponse(
                f"{self._endpoint} did not answer with a chat completion: {self._detail(str(completion))}"
            )
        return self._to_response(completion)

    async def _create(self, model: str, messages: list[dict[str, Any]], options: dict[str, Any]) -> object:
        """The SDK call, with the output cap under the name the endpoint accepts."""
        import openai

        capped: dict[str, Any] = dict(options)
        if self._max_output_tokens is not None:
            capped[self._cap_field] = self._max_output_tokens
        try:
            completion: object = await self._client.chat.completions.create(
                model=model, messages=cast(Any, messages), **capped
            )
            return completion
        except openai.BadRequestError as error:
            # OpenAI's reasoning models answer 400 "Unsupported parameter: 'max_tokens' ... use
            # 'max_completion_tokens'": switch once, for this client, and ask again.
            refused_cap = self._max_output_tokens is not None and self._cap_field == "max_tokens"
            if not refused_cap or "max_completion_tokens" not in str(error):
                raise
            self._cap_field = "max_completion_tokens"
            return await self._create(model, messages, options)

    async def close(self) -> None:
        """Close the SDK client and its HTTP connections."""
        await self._client.close()

    def _to_response(self, completion: Any) -> ChatResponse:
        # The SDK builds responses without validation, so a local server's missing or odd fields
        # arrive as absent attributes or raw values rather than as errors.
        choices = getattr(completion, "choices", None)
        if not isinstance(choices, list) or not choices:
            raise LLMBadResponse(f"{self._endpoint} answered with no choices")
        try:
            choice = choices[0]
            message = choice.message
            content = message.content
            if content is not None and not isinstance(content, str):
                raise TypeError(f"content is {type(content).__name__}")
            calls = [self._to_tool_call(call, index) for index, call in enumerate(message.tool_calls or [])]
            finish_reason = choice.finish_reason
        except (AttributeError, TypeError) as error:
            raise LLMBadResponse(
                f"{self._endpoint} answered with a malformed choice: {self._detail(str(error))}"
            ) from error
        # Reasoning models send their thinking apart (reasoning_content: DeepSeek, vLLM, llama.cpp)
        # or inline in <think> blocks (Qwen3, R1 distills): either way it is not the answer.
        content, inline = split_thinking(content)
        apart = getattr(message, "reasoning_content", None)
        thinking = [part for part in (apart if isinstance(apart, str) else None, inline) if part]
        usage = getattr(completion, "usage", None)
        return ChatResponse(
            content=content,
            tool_calls=calls,
            usage=TokenUsage(
                prompt_tokens=_count(getattr(usage, "prompt_tokens", 0)),
                completion_tokens=_count(getattr(usage, "completion_tokens", 0)),
            ),
            model=str(getattr(completion, "model", "") or ""),
            finish_reason=finish_reason if isinstance(finish_reason, str) else None,
            reasoning="\n\n".join(thinking) or None,
        )

    def _to_tool_call(self, call: Any, index: int) -> ToolCall:
        function = getattr(call, "function", None)
        if function is None:
            kind = getattr(call, "type", "?")
            raise LLMBadResponse(
                f"{self._endpoint} asked for a {kind!r} tool call; only functions are offered"
            )
        arguments = function.arguments
        if not isinstance(arguments, str):
            # Some local servers send the arguments as an object instead of JSON text.
            arguments = json.dumps(arguments)
        # Some local servers omit the id, which the follow-up tool message must echo.
        call_id = getattr(call, "id", None) or f"call_{index}"
        return ToolCall(id=str(call_id), name=str(function.name), arguments=arguments)

    def _translate(self, error: APIError, *, tools_sent: bool = False) -> LLMError:
        import openai

        where = self._endpoint
        if isinstance(error, openai.APITimeoutError):
            return LLMTimeout(f"{where} did not answer within {self._timeout_s:g} s{self._attempts(error)}")
        if isinstance(error, openai.APIConnectionError):
            cause = error.__cause__
            reason = f": {self._detail(str(cause) or type(cause).__name__)}" if cause is not None else ""
            return LLMUnavailable(f"cannot reach {where}{self._attempts(error)}{reason}")
        if not isinstance(error, openai.APIStatusError):
            return LLMBadResponse(f"{where}: {self._detail(error.message)}")

        status = error.status_code
        text = self._server_text(error)
        said = self._detail(text)
        tail = f"{self._attempts(error)}{f': {said}' if said else ''}"
        if tools_sent and refuses_tools(status, text):
            return LLMToolsRefused(
                f"{where} refused the tools ({status}){tail}; "
                '[llm] tool_protocol = "text" (or "auto") describes them in the prompt instead'
            )
        if isinstance(error, openai.RateLimitError):
            return LLMRateLimited(f"{where} answered 429 (rate limited){tail}")
        if isinstance(error, openai.AuthenticationError | openai.PermissionDeniedError):
            return LLMAuthFailed(f"{where} refused the API key ({status}){tail}")
        if status == 408:
            return LLMTimeout(f"{where} answered 408 (request timeout){tail}")
        if status >= 500:
            return LLMUnavailable(f"{where} answered {status} (server error){tail}")
        return LLMBadResponse(f"{where} answered {status}{tail}")

    def _server_text(self, error: APIError) -> str:
        """The server's error message, whole: ``_detail`` cuts it for display."""
        body = error.body
        if isinstance(body, dict):
            # The SDK unwraps {"error": {...}}; servers differ on where they put the text.
            message = body.get("message") or body.get("error") or body.get("detail")
            return message if isinstance(message, str) else json.dumps(body)
        if isinstance(body, str):
            return body
        return ""

    def _attempts(self, error: APIError) -> str:
        # The SDK stamps each request with how many retries preceded it: the last one tells the total.
        try:
            retries = int(error.request.headers.get("x-stainless-retry-count", "0"))
        except ValueError:
            return ""
        return f" after {retries + 1} attempts" if retries else ""

    def _detail(self, text: str) -> str:
        """``text`` on one line, at most ~200 characters, with the API key removed."""
        # Struck before the text is cut: a key cut in half would no longer be recognised.
        line = self._redactor.text(" ".join(text.split()))
        if len(line) > _MAX_DETAIL_CHARS:
            line = line[: _MAX_DETAIL_CHARS - 1] + "…"
        return line


def _count(value: object) -> int:
    """A token count as reported by the server: a whole number, at most ``MAX_TOKENS_PER_CALL``."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        return 0
    return min(value, MAX_TOKENS_PER_CALL)
