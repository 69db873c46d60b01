"""A reasoning model's inline thinking, kept apart from its answer as the response is read.

It lives with the model clients rather than with the answer's parser: the client files the thinking
in ``ChatResponse.thinking`` before anything tries to read a decision from the content.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["split_thinking"]

_THINK_OPEN: Final = re.compile(r"<(think|thinking|reasoning)>", re.IGNORECASE)


def split_thinking(text: str | None) -> tuple[str | None, str | None]:
    """Take a reasoning model's ``<think>…</think>`` blocks out of its answer: (answer, thinking).

    DeepSeek-R1, Qwen3 and others write their chain of thought inline; it quotes drafts, prices and
    JSON that must not be read as the decision. A block left open (the output cap cut it) holds
    everything after it. ``<thinking>`` and ``<reasoning>`` are read the same way.
    """
    if not text or "<" not in text:
        return text, None
    answer: list[str] = []
    thoughts: list[str] = []
    position = 0
    while (opened := _THINK_OPEN.search(text, position)) is not None:
        answer.append(text[position : opened.start()])
        closing = re.compile(rf"</{opened.group(1)}>", re.IGNORECASE).search(text, opened.end())
        if closing is None:
            thoughts.append(text[opened.end() :])
            position = len(text)
            break
        thoughts.append(text[opened.end() : closing.start()])
        position = closing.end()
    answer.append(text[position:])
    if not thoughts:
        return text, None
    return "".join(answer).strip(), "\n\n".join(part.strip() for part in thoughts if part.strip()) or None
