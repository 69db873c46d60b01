"""The contract between the ReAct loop and a chat model.

``OpenAIChat`` (``rez_cli.llm.openai_api``) is the real implementation and the only module that imports the
openai SDK; tests drive it against a scripted server on 127.0.0.1.

    LLMError                 ends the cycle in a hold whose ``error`` is ``code``
    ├── LLMNotConfigured     model_not_configured: a model was asked for but no key/endpoint
    ├── LLMAuthFailed        model_auth_failed: 401/403
    ├── LLMTimeout           model_timeout: no answer within the request timeout (after retries)
    ├── LLMRateLimited       model_rate_limited: 429 after the SDK's retries
    ├── LLMUnavailable       model_unreachable: connection refused, DNS, 5xx after retries
    └── LLMBadResponse       model_bad_response: 400/404/422 or an answer with no choices
        └── LLMToolsRefused  model_bad_response: the endpoint refused the request because it
                             offered tools (``[llm] tool_protocol = "auto"`` then switches to text)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from rez_cli.decision.codes import Hold


class LLMError(Exception):
    """A model call that failed; ``code`` is the stable error code of the resulting hold."""

    code: Hold = Hold.MODEL_ERROR

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class LLMNotConfigured(LLMError):
    code = Hold.MODEL_NOT_CONFIGURED


class LLMAuthFailed(LLMError):
    code = Hold.MODEL_AUTH_FAILED


class LLMTimeout(LLMError):
    code = Hold.MODEL_TIMEOUT


class LLMRateLimited(LLMError):
    code = Hold.MODEL_RATE_LIMITED


class LLMUnavailable(LLMError):
    code = Hold.MODEL_UNREACHABLE


class LLMBadResponse(LLMError):
    code = Hold.MODEL_BAD_RESPONSE


class LLMToolsRefused(LLMBadResponse):
    """The endpoint cannot take ``tools``: Ollama's 400 "does not support tools", vLLM without a
    tool parser, OpenRouter's 404 "No endpoints found that support tool use", llama.cpp's 500
    "tools param requires --jinja". Raised only for a request that sent tools, so the same request
    without them (the text tool protocol) may succeed."""


@dataclass(frozen=True)
class ToolCall:
    """One function call the model asked for; ``arguments`` is the raw JSON text it wrote."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True)
class TokenUsage:
    prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclass(frozen=True)
class ChatResponse:
    """The assistant message of one completion."""

    content: str | None
    tool_calls: list[ToolCall] = field(default_factory=list)
    usage: TokenUsage = field(default_factory=TokenUsage)
    model: str = ""
    finish_reason: str | None = None
    reasoning: str | None = None
    """A reasoning model's thinking (``reasoning_content``, or ``<think>`` blocks taken out of
    ``content``): kept for the trace, never parsed as the decision."""

    def as_message(self) -> dict[str, Any]:
        """The message to append to the conversation (OpenAI Chat Completions shape)."""
        message: dict[str, Any] = {"role": "assistant", "content": self.content}
        if self.tool_calls:
            message["tool_calls"] = [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.arguments},
                }
                for call in self.tool_calls
            ]
        return message


class LLMClient(Protocol):
    """A chat model behind an OpenAI-compatible Chat Completions API."""

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
        """One non-streaming completion.

        Args:
            model: the model name the endpoint knows.
            messages: the conversation so far, in Chat Completions shape.
            tools: function tool schemas, or None for a turn where the model must answer.
            parallel_tool_calls: passed only when the endpoint supports it (None: not sent).
            response_format: ``{"type": "json_schema", ...}`` or ``{"type": "json_object"}``.
            tool_choice: ``"none"`` on a turn that must answer although tools stay listed (some
                endpoints refuse a history of tool calls without the tools); None: not sent.
            temperature: this call's sampling temperature; None: the client's configured one.

        Raises:
            LLMError: a subclass whose ``code`` names the failure; never an SDK exception.
        """
        ...

    async def close(self) -> None:
        """Release the HTTP connections."""
        ...
