"""Who runs in an arena: ``--contestant NAME=MODEL[,prompt=FILE][,profile=NAME|PATH]``, and the baselines.

MODEL is a model name for the configured endpoint, or one of the built-in baselines: ``rules`` (Rez's
deterministic mode), ``always-hold`` (never trades) and ``buy-and-hold`` (one long at the first
moment, held to the end). The three baselines are always in the arena under their own names.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from rez_cli.config import paths
from rez_cli.config.settings import RiskProfile
from rez_cli.errors import UsageError

RULES = "rules"
ALWAYS_HOLD = "always-hold"
BUY_AND_HOLD = "buy-and-hold"
BASELINES = (RULES, ALWAYS_HOLD, BUY_AND_HOLD)
# A name is also part of a cache file's name and a column header: short, plain, unambiguous.
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,39}")
# A system prompt is a few KB; a bigger file is a mistake (a data file given as the prompt).
MAX_PROMPT_BYTES = 64 * 1024
OPTIONS = ("prompt", "profile")


@dataclass(frozen=True)
class Contestant:
    """One entrant: a model (or a baseline) with an optional prompt template and risk profile."""

    name: str
    model: str
    prompt_path: Path | None = None
    prompt: str | None = None
    profile: str | None = None

    @property
    def baseline(self) -> bool:
        return self.model in BASELINES

    def fingerprint(self, seed: int | None) -> str:
        """What makes its answers its own: model, prompt text, profile and seed (12 hex digits)."""
        text = "\x00".join([self.model, self.prompt or "", self.profile or "", str(seed)])
        return hashlib.sha256(text.encode()).hexdigest()[:12]


def builtin_baselines() -> list[Contestant]:
    return [Contestant(name, name) for name in BASELINES]


def parse_contestant(text: str) -> Contestant:
    """One ``--contestant`` value.

    Raises:
        UsageError: a malformed value, an unknown option, or a prompt file that cannot be read.
    """
    name, sep, rest = text.partition("=")
    name = name.strip()
    if not sep or not rest.strip():
        raise UsageError(
            f"--contestant {text!r} is not NAME=MODEL", hint="e.g. --contestant gpt=gpt-4o-mini,prompt=p.txt"
        )
    if not NAME.fullmatch(name):
        raise UsageError(
            f"--contestant name {name!r} must be 1-40 letters, digits, '_', '.' or '-', starting with a "
            "letter or digit"
        )
    model, *options = (part.strip() for part in rest.split(","))
    if not model:
        raise UsageError(f"--contestant {name}: the model is empty")
    found: dict[str, str] = {}
    for option in options:
        key, sep, value = option.partition("=")
        key = key.strip()
        if key not in OPTIONS or not sep or not value.strip():
            raise UsageError(
                f"--contestant {name}: unknown option {option!r}",
                hint="options are prompt=FILE and profile=NAME",
            )
        if key in found:
            raise UsageError(f"--contestant {name}: {key} is given twice")
        found[key] = value.strip()
    prompt_path: Path | None = None
    prompt: str | None = None
    if "prompt" in found:
        if model in BASELINES:
            raise UsageError(
                f"--contestant {name}: the {model} baseline asks no model, so it takes no prompt"
            )
        prompt_path = paths.expand_user(Path(found["prompt"]))
        prompt = read_prompt(prompt_path, name)
    return Contestant(name, model, prompt_path, prompt, found.get("profile"))


def read_prompt(path: Path, name: str) -> str:
    """A prompt template file's text.

    Raises:
        UsageError: missing, unreadable, too big, not UTF-8, or empty.
    """
    try:
        data = path.read_bytes()
    except OSError as error:
        raise UsageError(
            f"--contestant {name}: cannot read the prompt {path}: {error.strerror or error}"
        ) from None
    if len(data) > MAX_PROMPT_BYTES:
        raise UsageError(
            f"--contestant {name}: the prompt {path} is {len(data)} bytes, more than {MAX_PROMPT_BYTES}"
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"--contestant {name}: the prompt {path} is not UTF-8 text") from None
    if not text.strip():
        raise UsageError(f"--contestant {name}: the prompt {path} is empty")
    return text


def check_prompt(contestant: Contestant, profile: RiskProfile) -> None:
    """Render the contestant's template once, so a bad placeholder is refused before any cycle.

    Raises:
        UsageError: the template names a placeholder Rez does not fill, or has a stray brace.
    """
    from rez_cli.reasoning.prompts import system_prompt

    if contestant.prompt is None:
        return
    for position_open in (False, True):
        try:
            system_prompt(profile, position_open=position_open, template=contestant.prompt)
        except KeyError as error:
            raise UsageError(
                f"--contestant {contestant.name}: the prompt {contestant.prompt_path} has an unknown "
                f"placeholder {{{error.args[0]}}}",
                hint="write a literal brace as {{ or }}; placeholders are those of Rez's own prompt",
            ) from None
        except (ValueError, IndexError) as error:
            raise UsageError(
                f"--contestant {contestant.name}: the prompt {contestant.prompt_path} is not a valid "
                f"template ({error})",
                hint="write a literal brace as {{ or }}",
            ) from None


def check_names(contestants: list[Contestant]) -> None:
    """Names are unique, and the baselines' names are theirs.

    Raises:
        UsageError: a name used twice, or a baseline's name given to something else.
    """
    seen: set[str] = set()
    for contestant in contestants:
        if contestant.name in seen:
            raise UsageError(f"two contestants are named {contestant.name!r}")
        if contestant.name in BASELINES and (contestant.model != contestant.name or contestant.profile):
            raise UsageError(
                f"the name {contestant.name!r} is the built-in baseline's",
                hint="give the contestant another name",
            )
        seen.add(contestant.name)
