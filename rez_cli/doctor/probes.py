"""What a model endpoint accepts, found out with tiny requests (for ``rez doctor``).

Servers that all call themselves OpenAI-compatible differ exactly where Rez depends on them: one
accepts ``tools`` and returns tool calls, one refuses them (vLLM without a tool parser, llama.cpp
without ``--jinja``), one accepts them and drops them without a word (llama.cpp serving a model
whose chat template has no tools); one enforces a strict ``json_schema``, one refuses it (DeepSeek).
No listing says all of that, so the doctor asks: one request with one tool, one with a one-property
strict schema, each capped at ``PROBE_OUTPUT_TOKENS`` and bounded by a timeout, run concurrently.

The requests go through ``OpenAIChat``, the client a cycle uses, so what the doctor sees is what a
cycle would: the same headers, ``extra_body``, output-cap field and error translation (and the SDK
stays confined to that module). Where an answer cannot settle a question (a model that answers in
prose although tools were accepted), the endpoint's own report is read: OpenRouter's
``supported_parameters`` in the model list, llama.cpp's ``/props`` (``chat_template_caps``), Ollama's
``/api/show`` (``capabilities``).

Nothing here raises for what an endpoint does: every outcome is a value. Details are one line,
taken from ``OpenAIChat``'s messages, which carry no API key.
"""

from __future__ import annotations

import asyncio
import json
import re
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from rez_cli.llm.client import (
    ChatResponse,
    LLMAuthFailed,
    LLMBadResponse,
    LLMClient,
    LLMError,
    LLMRateLimited,
    LLMTimeout,
    LLMToolsRefused,
    LLMUnavailable,
)

__all__ = [
    "PROBE_OUTPUT_TOKENS",
    "PROBE_SCHEMA",
    "PROBE_TOOL",
    "Asked",
    "SchemaProbe",
    "ToolProbe",
    "join_url",
    "probe_schema",
    "probe_tools",
    "reported_tool_support",
]

# Enough for a one-property object or one short tool call, too little for a model to ramble.
PROBE_OUTPUT_TOKENS = 32
PROBE_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "echo",
        "description": "Echo a word back to the user.",
        "parameters": {
            "type": "object",
            "properties": {"word": {"type": "string"}},
            "required": ["word"],
            "additionalProperties": False,
        },
    },
}
PROBE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"ok": {"type": "boolean"}},
    "required": ["ok"],
    "additionalProperties": False,
}
_TOOL_MESSAGES = [{"role": "user", "content": 'Call the echo tool with the word "hello".'}]
# Nothing in the prompt asks for JSON: an answer in the schema's shape shows the schema was enforced.
_SCHEMA_MESSAGES = [{"role": "user", "content": "Say hello."}]
# OpenAI refuses json_object unless a message mentions JSON.
_OBJECT_MESSAGES = [{"role": "user", "content": 'Answer in JSON: {"ok": true}.'}]
# How OpenAIChat words an HTTP error: "<endpoint> answered 400: <server's text>" or, for a refusal
# of the tools, "<endpoint> refused the tools (400): <server's text>; <what to set>".
_STATUS = re.compile(r"\b(?:answered |refused the tools \()(\d{3})\)?(?: after \d+ attempts)?(?:: (.*))?$")
_ADVICE = "; [llm] tool_protocol"
_REPORT_BYTES = 2_000_000

Outcome = Literal["answered", "tools_refused", "refused", "no_answer"]


@dataclass(frozen=True)
class Asked:
    """One probe request: answered; refused, saying it was for the tools (``LLMToolsRefused``, the
    refusal on which ``auto`` switches to the text protocol) or not; or no usable answer at all.

    ``detail`` is ``"<status>: <server's text>"`` for a refusal, the client's message otherwise.
    """

    outcome: Outcome
    response: ChatResponse | None = None
    status: int | None = None
    detail: str = ""


@dataclass(frozen=True)
class ToolProbe:
    """What a request with one tool came back with.

    ``outcome``: ``tool_call`` (the model called it), ``prose`` (accepted, answered in text),
    ``tools_refused`` (an error that says the tools were the trouble), ``refused`` (another HTTP
    error status), ``no_answer`` (timeout, unreachable, rate limited...).
    """

    outcome: Literal["tool_call", "prose", "tools_refused", "refused", "no_answer"]
    status: int | None = None
    detail: str = ""


@dataclass(frozen=True)
class SchemaProbe:
    """What a request with a response format came back with.

    ``outcome``: ``enforced`` (the answer is exactly the probe's object), ``accepted`` (a 200 whose
    answer the output cap cut before it could show), ``ignored`` (a complete answer not in the
    schema), ``refused``, ``no_answer``.
    """

    outcome: Literal["enforced", "accepted", "ignored", "refused", "no_answer"]
    status: int | None = None
    detail: str = ""


async def ask(llm: LLMClient, model: str, timeout_s: float, **request: Any) -> Asked:
    """One chat request, bounded by ``timeout_s`` whatever the client's own timeouts do."""
    try:
        response = await asyncio.wait_for(llm.chat(model=model, temperature=0.0, **request), timeout_s)
    except TimeoutError:
        return Asked("no_answer", detail=f"no answer within {timeout_s:g} s")
    except LLMToolsRefused as error:
        status, said = _status_of(error)
        return Asked("tools_refused", status=status, detail=said)
    except (LLMTimeout, LLMRateLimited, LLMAuthFailed) as error:
        # None of them says anything about what the endpoint accepts.
        return Asked("no_answer", detail=_unprefixed(llm, error.message))
    except (LLMBadResponse, LLMUnavailable) as error:
        status, said = _status_of(error)
        if status is None:
            return Asked("no_answer", detail=_unprefixed(llm, error.message))
        return Asked("refused", status=status, detail=said)
    except LLMError as error:
        return Asked("no_answer", detail=_unprefixed(llm, error.message))
    return Asked("answered", response=response)


def _unprefixed(llm: LLMClient, message: str) -> str:
    # The doctor names the endpoint itself; "127.0.0.1:8080 did not answer" would name it twice.
    endpoint = getattr(llm, "endpoint", None)
    if isinstance(endpoint, str) and endpoint and message.startswith(f"{endpoint} "):
        return message[len(endpoint) + 1 :]
    return message


def _status_of(error: LLMError) -> tuple[int | None, str]:
    """The HTTP status of a refusal, and ``"<status>: <server's text>"`` to quote.

    A connection error or a 200 that is no completion has no status, and is no refusal.
    """
    match = _STATUS.search(error.message)
    if match is None:
        return None, error.message
    said = (match.group(2) or "").split(_ADVICE, 1)[0].strip()
    return int(match.group(1)), f"{match.group(1)}: {said}" if said else match.group(1)


async def probe_tools(llm: LLMClient, model: str, timeout_s: float) -> ToolProbe:
    """Ask with one tool and tool choice left to the model, as a cycle's turns do."""
    asked = await ask(llm, model, timeout_s, messages=list(_TOOL_MESSAGES), tools=[PROBE_TOOL])
    if asked.outcome in ("tools_refused", "refused"):
        return ToolProbe(
            "tools_refused" if asked.outcome == "tools_refused" else "refused", asked.status, asked.detail
        )
    if asked.response is None:
        return ToolProbe("no_answer", None, asked.detail)
    if asked.response.tool_calls:
        names = ", ".join(sorted({call.name for call in asked.response.tool_calls}))
        return ToolProbe("tool_call", None, f"called {names}")
    return ToolProbe("prose", None, f"finish_reason {asked.response.finish_reason or '?'}")


async def probe_schema(
    llm: LLMClient, model: str, timeout_s: float, *, json_schema: bool = True
) -> SchemaProbe:
    """Ask for a strict one-property ``json_schema`` (or for ``json_object``) and judge the answer."""
    if json_schema:
        response_format: dict[str, Any] = {
            "type": "json_schema",
            "json_schema": {"name": "rez_probe", "strict": True, "schema": PROBE_SCHEMA},
        }
        messages = _SCHEMA_MESSAGES
    else:
        response_format, messages = {"type": "json_object"}, _OBJECT_MESSAGES
    asked = await ask(llm, model, timeout_s, messages=list(messages), response_format=response_format)
    if asked.outcome == "refused":
        return SchemaProbe("refused", asked.status, asked.detail)
    if asked.response is None:
        return SchemaProbe("no_answer", None, asked.detail)
    content = asked.response.content or ""
    finish = asked.response.finish_reason
    if _is_probe_object(content, strict=json_schema):
        return SchemaProbe("enforced", None, "the answer is the schema's object")
    if finish == "length":
        return SchemaProbe("accepted", None, f"the answer was cut at {PROBE_OUTPUT_TOKENS} tokens")
    return SchemaProbe("ignored", None, f"the answer is not in the schema (finish_reason {finish or '?'})")


def _is_probe_object(content: str, *, strict: bool) -> bool:
    try:
        value = json.loads(content)
    except (ValueError, RecursionError):
        return False
    if not isinstance(value, dict):
        return False
    # json_object promises an object, not a shape: any object shows it was honoured.
    return not strict or (set(value) == {"ok"} and isinstance(value["ok"], bool))


async def reported_tool_support(
    base_url: str,
    model: str,
    headers: Mapping[str, str],
    listing: bytes | None,
    timeout_s: float,
) -> tuple[bool | None, str | None]:
    """Whether the endpoint says the model supports tools, and where it said so.

    Args:
        base_url: the endpoint's base URL (``.../v1``).
        model: the model name.
        headers: what every request carries (authorization, ``extra_headers``).
        listing: the body of ``GET /models`` when one came back.
        timeout_s: the bound for the look-ups, which run concurrently.

    Returns:
        ``(True/False, source)``, or ``(None, None)`` when nothing says.
    """
    from_listing = _listed_support(listing, model)
    if from_listing is not None:
        return from_listing, "the model list's supported_parameters"
    root = _root(base_url)
    props, show = await asyncio.gather(
        asyncio.to_thread(_get_json, join_url(root, "/props"), headers, None, timeout_s),
        asyncio.to_thread(_get_json, join_url(root, "/api/show"), headers, {"model": model}, timeout_s),
    )
    caps = props.get("chat_template_caps") if isinstance(props, dict) else None
    if isinstance(caps, dict) and isinstance(caps.get("supports_tools"), bool):
        return caps["supports_tools"], "llama.cpp's /props (the chat template's supports_tools)"
    capabilities = show.get("capabilities") if isinstance(show, dict) else None
    if isinstance(capabilities, list) and all(isinstance(item, str) for item in capabilities):
        return "tools" in capabilities, "Ollama's /api/show (the model's capabilities)"
    return None, None


def _listed_support(listing: bytes | None, model: str) -> bool | None:
    """OpenRouter lists each model's ``supported_parameters``; other servers list no such thing."""
    if not listing:
        return None
    try:
        payload = json.loads(listing)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    data = payload.get("data") if isinstance(payload, dict) else None
    for item in data if isinstance(data, list) else []:
        if isinstance(item, dict) and item.get("id") == model:
            supported = item.get("supported_parameters")
            if isinstance(supported, list):
                return "tools" in supported
    return None


def _root(base_url: str) -> str:
    """The server's root: llama.cpp and Ollama serve their own routes beside ``/v1``."""
    parts = urlsplit(base_url)
    path = parts.path.rstrip("/")
    if path.endswith("/v1"):
        path = path[: -len("/v1")]
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))


def join_url(url: str, path: str) -> str:
    """``url`` with ``path`` appended to its path, its query (a key some proxies take) kept."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/") + path, parts.query, ""))


def _get_json(url: str, headers: Mapping[str, str], body: Any, timeout_s: float) -> Any:
    """GET (or POST ``body``) ``url``; the parsed JSON, or None for anything but a JSON 200."""
    if not url.startswith(("http://", "https://")):  # urllib would open file:// too
        return None
    data = json.dumps(body).encode() if body is not None else None
    sent = {**headers, **({"Content-Type": "application/json"} if data is not None else {})}
    request = urllib.request.Request(url, data=data, headers=sent, method="POST" if data else "GET")
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            raw = response.read(_REPORT_BYTES)
        return json.loads(raw)
    except (OSError, ValueError, UnicodeDecodeError, RecursionError, urllib.error.URLError):
        return None
