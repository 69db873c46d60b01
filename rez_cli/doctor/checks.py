"""``rez doctor``: is this machine ready to decide? Each check says what it saw and how to fix it.

The checks only look: the exchange is asked for its markets and one candle, the model endpoint for
its model list and two tiny answers (one request with a tool, one with a strict ``json_schema``,
``rez_cli.doctor.probes``), and the journal's directory gets a temporary file that is removed at once (with
any directory created for it). A check that depends on a valid config is skipped when the config is
not. Every network check is bounded by a few seconds: an endpoint that hangs is a warning, not a wait.

Nothing a check reports carries a credential: exchange errors pass through the ccxt adapter's
redaction, the model check gives only the endpoint's status and host, a probe quotes the one-line
error of ``OpenAIChat`` (which strikes the key), and every line goes through ``rez_cli.redact`` on
its way out (configured secrets, URL credentials).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import json
import os
import re
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from rez_cli import __version__
from rez_cli.config import paths
from rez_cli.config.settings import (
    ENV_PREFIX,
    Settings,
    _apply_env_overrides,
    load_profile,
    load_settings,
    secrets_of,
)
from rez_cli.errors import (
    ConfigError,
    DataNotFound,
    ExchangeUnavailable,
    RezError,
    SymbolNotListed,
    TimeframeNotOffered,
    UnknownExchange,
)
from rez_cli.redact import Redactor, active

if TYPE_CHECKING:
    from rez_cli.doctor.probes import SchemaProbe, ToolProbe

Status = Literal["ok", "warn", "fail"]

MIN_PYTHON = (3, 11)
DEFAULT_SYMBOL = "BTC/USDT"
MODEL_TIMEOUT_S = 5.0
# (distribution, the name users know it by)
PACKAGES = (
    ("rez-cli", "rez"),
    ("ccxt", "ccxt"),
    ("openai", "openai"),
    ("pandas", "pandas"),
    ("pandas-ta-classic", "pandas-ta-classic"),
    ("pydantic", "pydantic"),
    ("typer", "typer"),
    ("rich", "rich"),
)
_SKIPPED_NO_CONFIG = "skipped: the config is invalid"
_FIX_CONFIG_FIRST = "fix the config first (see above)"
_FIX_ENDPOINT = "check [llm] base_url (or OPENAI_BASE_URL) and that the server is running"
# The endpoint's own report on tools is a cheap GET; it must not stretch the doctor's few seconds.
_LOOKUP_S = 2.0
# A follow-up always gets this long, even when the first requests used up the budget.
_MIN_FOLLOW_UP_S = 1.0
# One retry absorbs a blip; a doctor that retries for long only delays the answer.
_EXCHANGE_RETRIES = 1
_EXCHANGE_RETRY_DELAY_S = 0.25
_REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*([^;]*?)\s*(?:;(.*))?$")


@dataclass(frozen=True)
class Check:
    """One diagnosis: what was checked, how it went, what was seen, and what to do when not ok.

    ``facts`` holds what a script would otherwise parse out of ``detail`` (the tool protocol Rez will
    use, what each probe got); only the checks that probe have them.
    """

    name: str
    status: Status
    detail: str
    fix: str | None = None
    facts: Mapping[str, Any] | None = None

    def as_json(self) -> dict[str, Any]:
        """The check as a JSON-ready object (``facts`` only where there are some)."""
        shown = asdict(self)
        if self.facts is None:
            del shown["facts"]
        else:
            shown["facts"] = dict(self.facts)
        return shown


def failed(checks: Sequence[Check]) -> bool:
    """Whether any check failed (warnings do not count)."""
    return any(check.status == "fail" for check in checks)


def run_checks(
    *,
    config: Path | None = None,
    exchange: str | None = None,
    symbol: str = DEFAULT_SYMBOL,
    journal: Path | None = None,
    environ: Mapping[str, str] | None = None,
    model_timeout_s: float = MODEL_TIMEOUT_S,
) -> list[Check]:
    """Run every check, in the order a user fixes things: Python, packages, config, then the rest.

    Args:
        config: ``--config``; otherwise the documented lookup order.
        exchange: the exchange to probe; default ``[exchange] id``.
        symbol: the market that must be listed there.
        journal: the journal file; default ``[journal] path``, else the user data dir.
        environ: the environment (default ``os.environ``): ``REZ__`` overrides, ``OPENAI_*``.
        model_timeout_s: how long the model endpoint gets for its list and for each probe (they
            run concurrently, so this is about the whole wait).

    Returns:
        One check per line of the report; never raises for what it finds.
    """
    env = dict(os.environ if environ is None else environ)
    checks = [check_python(), check_packages()]
    config_check, settings = check_config(config, env)
    checks.append(config_check)
    if settings is None:
        for name in ("profile", "exchange", "model", "journal"):
            checks.append(Check(name, "warn", _SKIPPED_NO_CONFIG, _FIX_CONFIG_FIRST))
        return _redacted(checks, active())
    checks.append(check_profile(settings))

    async def network() -> list[Check]:
        # The exchange and the model wait on different servers: overlapping them halves the worst case.
        market, model = await asyncio.gather(
            check_exchange(settings, exchange, symbol), check_endpoint(settings, env, model_timeout_s)
        )
        return [market, *model]

    checks += asyncio.run(network())
    checks.append(check_journal(journal_path(settings, journal)))
    return _redacted(checks, active().extended(secrets_of(settings, env)))


def _redacted(checks: list[Check], redactor: Redactor) -> list[Check]:
    return [
        replace(
            check,
            detail=redactor.text(check.detail),
            fix=redactor.text(check.fix) if check.fix else None,
            facts=redactor.value(dict(check.facts)) if check.facts is not None else None,
        )
        for check in checks
    ]


# --- the checks ---------------------------------------------------------------------------------------


def check_python(version: tuple[int, ...] | None = None) -> Check:
    """Python is at least 3.11 (``tomllib``, ``Self``, ``StrEnum``)."""
    running = tuple(sys.version_info[:3]) if version is None else version
    shown = ".".join(map(str, running))
    wanted = ".".join(map(str, MIN_PYTHON))
    if running[:2] >= MIN_PYTHON:
        return Check("python", "ok", f"{shown} (>= {wanted})")
    return Check("python", "fail", f"{shown}: rez needs {wanted} or newer", f"install Python {wanted}+")


def check_packages() -> Check:
    """Every runtime dependency is installed, within the range rez declares when that can be checked."""
    wanted = _declared_requirements()
    seen: list[str] = []
    problems: list[str] = []
    fixes: list[str] = []
    for distribution, shown_as in PACKAGES:
        try:
            version = importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            if distribution == "rez-cli":
                # Run from a source tree without being installed: the package still knows its version.
                seen.append(f"{shown_as} {__version__}")
                continue
            problems.append(f"{shown_as} missing")
            fixes.append(f"{distribution}{wanted.get(distribution, '')}")
            continue
        seen.append(f"{shown_as} {version}")
        spec = wanted.get(distribution)
        if spec and _outside(version, spec):
            problems.append(f"{shown_as} {version} (rez needs {spec})")
            fixes.append(f"{distribution}{spec}")
    if problems:
        install = " ".join(f"'{item}'" for item in fixes)
        return Check("packages", "fail", "; ".join(problems), f"pip install {install}")
    return Check("packages", "ok", ", ".join(seen))


def check_config(explicit: Path | None, environ: Mapping[str, str]) -> tuple[Check, Settings | None]:
    """The config file the lookup order picks parses and validates; returns the settings when it does."""
    env = dict(environ)
    try:
        loaded = load_settings(explicit, env)
    except ConfigError as error:
        return Check(
            "config",
            "fail",
            error.one_line(),
            "fix the key it names; `rez config init` writes a commented starter",
        ), None
    where = str(loaded.path) if loaded.path else "built-in defaults"
    if loaded.path is not None and _is_shipped(loaded.path):
        where += " (shipped defaults; `rez config init` copies them for editing)"
    overrides = _apply_env_overrides({}, {k: v for k, v in env.items() if k.startswith(ENV_PREFIX)})
    if overrides:
        where += f", with {', '.join(overrides)}"
    return Check("config", "ok", where), loaded.value


def check_profile(settings: Settings) -> Check:
    """The risk profile named by ``[risk] profile`` loads and validates."""
    try:
        loaded = load_profile(settings.risk.profile)
    except ConfigError as error:
        return Check(
            "profile",
            "fail",
            error.one_line(),
            "set [risk] profile to conservative, moderate or aggressive, or fix the file it names",
        )
    return Check("profile", "ok", f"{loaded.value.name}: {loaded.path}")


async def check_exchange(settings: Settings, exchange: str | None, symbol: str) -> Check:
    """The exchange answers, lists ``symbol``, and serves a candle of the primary timeframe."""
    exchange_id = exchange or settings.exchange.id
    if exchange_id == "sim":
        return Check("exchange", "ok", "sim: the seeded offline simulator (no network needed)")
    from rez_cli.market.ccxt_source import UNAVAILABLE_HINT, CcxtSource

    timeframe = settings.market.timeframe
    try:
        async with CcxtSource(
            exchange_id,
            dict(settings.exchange.ccxt),
            retries=min(settings.exchange.retries, _EXCHANGE_RETRIES),
            retry_delay_s=_EXCHANGE_RETRY_DELAY_S,
            cache=None,
        ) as source:
            await source.fetch(symbol, [timeframe], 1)
    except UnknownExchange as error:
        return Check("exchange", "fail", error.message, error.hint or "use a ccxt exchange id, or sim")
    except SymbolNotListed as error:
        return Check(
            "exchange",
            "fail",
            error.message,
            f"{error.hint}; or name another market with --symbol" if error.hint else "check the symbol",
        )
    except TimeframeNotOffered as error:
        fix = f"set [market] timeframe to one it offers ({error.hint})" if error.hint else None
        return Check("exchange", "fail", error.message, fix or "choose another exchange")
    except ExchangeUnavailable as error:
        return Check(
            "exchange",
            "fail",
            error.message,
            f"check the network and the [exchange.ccxt] urls or proxy; meanwhile {UNAVAILABLE_HINT}",
        )
    except DataNotFound as error:
        return Check(
            "exchange",
            "warn",
            f"{exchange_id} lists {symbol} but sent no recent {timeframe} candle: {error.message}",
            error.hint,
        )
    except RezError as error:
        return Check("exchange", "fail", error.message, error.hint or "check the [exchange] settings")
    return Check("exchange", "ok", f"{exchange_id} answered; {symbol} is listed with {timeframe} candles")


@dataclass(frozen=True)
class _Endpoint:
    """Where the configured model is asked, resolved as a cycle resolves it."""

    url: str
    label: str
    key: str | None
    model: str
    reason: str
    headers: dict[str, str]

    @property
    def key_note(self) -> str:
        return "key set" if self.key else "no key (fine for a local endpoint)"


def _endpoint(settings: Settings, environ: Mapping[str, str]) -> _Endpoint | Check:
    """The endpoint and model to ask, or the check that says why there is none to ask."""
    from rez_cli.cycle.choice import choose_model
    from rez_cli.llm.openai_api import _OPENAI_BASE_URL, endpoint_label

    llm = settings.llm
    choice = choose_model(llm, None, environ)
    if choice.model is None:
        return Check(
            "model",
            "warn",
            f"{choice.reason}: rez runs the rules mode",
            "set [llm] model (and OPENAI_API_KEY or [llm] api_key), or [llm] base_url, to let a model decide",
        )
    if choice.gguf is not None:
        return check_gguf(settings, choice.reason)
    key = (llm.api_key.get_secret_value() if llm.api_key else environ.get("OPENAI_API_KEY")) or None
    base_url = llm.base_url or environ.get("OPENAI_BASE_URL") or None
    model = choice.model
    if key is None and base_url is None:
        return Check(
            "model",
            "fail",
            f"model {model} is configured but there is no API key",
            "set OPENAI_API_KEY or [llm] api_key, or point [llm] base_url at a local endpoint",
        )
    url = base_url or _OPENAI_BASE_URL
    label = endpoint_label(url)
    if not url.startswith(("http://", "https://")):
        return Check("model", "fail", f"base_url {label!r} is not an http(s) URL", _FIX_ENDPOINT)
    headers = {**llm.extra_headers, "Accept": "application/json", "User-Agent": f"rez/{__version__} doctor"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    return _Endpoint(url, label, key, model, choice.reason, headers)


def check_model(settings: Settings, environ: Mapping[str, str], timeout_s: float = MODEL_TIMEOUT_S) -> Check:
    """A configured model's endpoint answers and does not refuse the key; no model is a warning."""
    target = _endpoint(settings, environ)
    if isinstance(target, Check):
        return target
    return _list_models(target, timeout_s)[0]


async def check_endpoint(
    settings: Settings, environ: Mapping[str, str], timeout_s: float = MODEL_TIMEOUT_S
) -> list[Check]:
    """The model check, then what the endpoint accepts: the tool protocol and the answer format.

    The model list and the two probes run concurrently, each within ``timeout_s``; a follow-up
    (the endpoint's own report on tools, ``json_object`` after a refused ``json_schema``) only runs
    when an answer leaves the question open. Returns the model check alone when it failed or no
    model is configured: there is nothing to probe then.
    """
    # In a thread: for a GGUF of [llm] gguf this loads the model, which must not stall the exchange's check.
    target = await asyncio.to_thread(_endpoint, settings, environ)
    if isinstance(target, Check):
        return [target]
    from rez_cli.doctor.probes import reported_tool_support

    started = time.monotonic()
    (model_check, listing), (tools, schema, fallback) = await asyncio.gather(
        asyncio.to_thread(_list_models, target, timeout_s), _probe(settings, target, timeout_s)
    )
    if model_check.status == "fail":
        return [model_check]
    reported: tuple[bool | None, str | None] = (None, None)
    if tools is not None and tools.outcome == "prose":
        remaining = timeout_s - (time.monotonic() - started)
        reported = await reported_tool_support(
            target.url,
            target.model,
            target.headers,
            listing,
            max(_MIN_FOLLOW_UP_S, min(_LOOKUP_S, remaining)),
        )
    alike = _both_refused(tools, schema, fallback)
    return [
        model_check,
        _tools_check(settings, target, tools, reported, alike),
        _schema_check(settings, target, schema, fallback, alike),
    ]


async def _probe(
    settings: Settings, target: _Endpoint, timeout_s: float
) -> tuple[ToolProbe | None, SchemaProbe, SchemaProbe | None]:
    """The tool probe (None: not asked), the format probe, and json_object after a refused schema."""
    from rez_cli.doctor.probes import PROBE_OUTPUT_TOKENS, SchemaProbe, ToolProbe, probe_schema, probe_tools
    from rez_cli.llm.client import LLMError
    from rez_cli.llm.openai_api import OpenAIChat

    llm = settings.llm
    started = time.monotonic()
    try:
        client = OpenAIChat(
            # "" and not None: the environment's key was already resolved through ``environ``.
            api_key=target.key or "",
            base_url=target.url,
            timeout_s=timeout_s,
            # A retry would double the wait; the doctor reports what one request gets.
            max_retries=0,
            max_output_tokens=PROBE_OUTPUT_TOKENS,
            temperature=0.0,
            seed=llm.seed,
            extra_headers=llm.extra_headers,
            extra_body=llm.extra_body,
        )
    except LLMError as error:
        return (
            ToolProbe("no_answer", None, error.message),
            SchemaProbe("no_answer", None, error.message),
            None,
        )

    async def formats() -> tuple[SchemaProbe, SchemaProbe | None]:
        first = await probe_schema(client, target.model, timeout_s, json_schema=llm.supports_json_schema)
        if not (llm.supports_json_schema and first.outcome == "refused"):
            return first, None
        remaining = timeout_s - (time.monotonic() - started)
        # Whether the fallback a user would switch to works, within what is left of the budget.
        second = await probe_schema(client, target.model, max(_MIN_FOLLOW_UP_S, remaining), json_schema=False)
        return first, second

    async def tools() -> ToolProbe | None:
        if llm.tool_protocol == "text":
            return None
        return await probe_tools(client, target.model, timeout_s)

    try:
        tool_probe, (schema, fallback) = await asyncio.gather(tools(), formats())
    finally:
        await client.close()
    return tool_probe, schema, fallback


def _list_models(target: _Endpoint, timeout_s: float) -> tuple[Check, bytes | None]:
    """``GET /models``: the model check, and the list's body when one came back."""
    from rez_cli.doctor.probes import join_url

    label, model, key_note = target.label, target.model, target.key_note
    request = urllib.request.Request(join_url(target.url, "/models"), headers=target.headers, method="GET")
    try:
        # The scheme was checked in _endpoint: urllib would also open file:// URLs.
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            body = response.read(2_000_000)
    except urllib.error.HTTPError as error:
        return _model_status_check(error.code, label, model, key_note), None
    except TimeoutError:
        return Check("model", "fail", f"{label} did not answer within {timeout_s:g} s", _FIX_ENDPOINT), None
    except urllib.error.URLError as error:
        reason = error.reason
        why = reason.strerror if isinstance(reason, OSError) and reason.strerror else str(reason)
        if isinstance(reason, TimeoutError):
            why = f"no answer within {timeout_s:g} s"
        return Check("model", "fail", f"cannot reach {label}: {why}", _FIX_ENDPOINT), None
    except (OSError, ValueError) as error:
        return Check("model", "fail", f"cannot reach {label}: {type(error).__name__}", _FIX_ENDPOINT), None
    listed = _model_ids(body)
    if listed and model not in listed:
        sample = ", ".join(sorted(listed)[:5])
        return Check(
            "model",
            "warn",
            f"{label} answered ({key_note}) but does not list the model {model}",
            f"set [llm] model to one it serves, e.g. {sample}",
        ), body
    seen = f"; {model} is listed" if listed else ""
    return Check("model", "ok", f"{model} ({target.reason}): {label} answered ({key_note}){seen}"), body


def journal_path(settings: Settings, explicit: Path | None = None) -> Path:
    """``--journal``, else ``[journal] path``, else ``journal.sqlite`` in the user data dir."""
    chosen = explicit or settings.journal.path
    return paths.expand_user(chosen) if chosen is not None else paths.data_dir() / "journal.sqlite"


def check_journal(path: Path) -> Check:
    """The journal's directory can be created and written; an existing journal file can be written."""
    fix = "choose a writable place with --journal PATH or [journal] path"
    try:
        is_dir = path.is_dir()
    except OSError as error:  # a name too long for the file system
        return Check("journal", "fail", f"{path}: {error.strerror or error}", fix)
    if is_dir:
        return Check("journal", "fail", f"{path} is a directory, not a file", fix)
    directory = path.parent
    missing = [parent for parent in (directory, *directory.parents) if not parent.exists()]
    step = "create"
    try:
        directory.mkdir(parents=True, exist_ok=True)
        step = "write in"
        handle, probe = tempfile.mkstemp(prefix=".rez-doctor-", dir=directory)
        os.close(handle)
        os.unlink(probe)
    except OSError as error:
        return Check("journal", "fail", f"cannot {step} {directory}: {error.strerror or error}", fix)
    finally:
        # Looking must not leave anything behind: rez creates the directory when it first journals.
        for created in missing:
            with contextlib.suppress(OSError):
                created.rmdir()
    if path.exists():
        if not os.access(path, os.W_OK):
            return Check("journal", "fail", f"{path} exists but is not writable", fix)
        return Check("journal", "ok", f"{path} (exists, {path.stat().st_size / 1024:.0f} KB, writable)")
    return Check("journal", "ok", f"{path} (created on the first run; its directory is writable)")


# --- helpers ------------------------------------------------------------------------------------------


_TEXT_PROTOCOL = "the text protocol (the tool described in the prompt, CALL fetch_indicator {json} lines)"
_NATIVE_TOOLS_FIX = (
    "for native tool calls, serve a model whose chat template has tools (llama.cpp: --jinja; "
    "vLLM: --enable-auto-tool-choice --tool-call-parser; Ollama: a model with the tools capability)"
)
_SET_TEXT = 'set [llm] tool_protocol = "text" so that the first turn already describes the tool'
_SET_AUTO = 'set [llm] tool_protocol = "auto" (or "text") so that Rez describes the tool in the prompt'
_TRY_AGAIN = "run rez doctor again once the endpoint answers (a local model may still be loading)"


def _both_refused(tools: ToolProbe | None, schema: SchemaProbe, fallback: SchemaProbe | None) -> bool:
    """Whether the tool and format probes were refused alike, with nothing answered to compare.

    Then the refusal is the endpoint's or the model's (an unknown model, a bad key for it), not a
    capability's. A json_object answer after all shows the endpoint does answer this model.
    """
    answered = fallback is not None and fallback.outcome not in ("refused", "no_answer")
    return (
        tools is not None
        and tools.outcome == schema.outcome == "refused"
        and tools.status == schema.status
        and not answered
    )


def _tools_check(
    settings: Settings,
    target: _Endpoint,
    tools: ToolProbe | None,
    reported: tuple[bool | None, str | None],
    alike: bool,
) -> Check:
    """The tool protocol Rez will use, and why; a missing capability says what Rez does instead."""
    from rez_cli.llm.protocol_memory import memory_path, recall

    configured = settings.llm.tool_protocol
    label, model = target.label, target.model
    supports, source = reported
    # auto starts where an earlier run's switch left it (the cache says so), else native.
    remembered = recall(label, model) if configured == "auto" else None
    facts: dict[str, Any] = {
        "tool_protocol": configured,
        "protocol": None,
        "probe": tools.outcome if tools is not None else "not_asked",
        "status": tools.status if tools is not None else None,
        "reports_tools": supports,
        "remembered": remembered.protocol if remembered is not None else None,
    }

    def verdict(status: Status, protocol: str | None, detail: str, fix: str | None = None) -> Check:
        return Check("tools", status, detail, fix, {**facts, "protocol": protocol})

    if tools is None:
        return verdict("ok", "text", f'tool_protocol = "text": Rez uses {_TEXT_PROTOCOL}')
    native = tools.outcome == "tool_call" or (tools.outcome == "prose" and supports is True)
    if native:
        how = (
            f"{model} called the probe's tool"
            if tools.outcome == "tool_call"
            else f"{label} accepted a tool and {source} says {model} supports tools (it answered in prose)"
        )
        if remembered is not None and remembered.protocol == "text":
            return verdict(
                "warn",
                "text",
                f"{how}, but auto remembers a switch to the text protocol for this endpoint and model "
                f"({remembered.reason}): cycles start in text",
                f"delete {memory_path()} to start with native tool calls again",
            )
        return verdict("ok", "native", f"native tool calls: {how}")
    if tools.outcome == "no_answer" or alike:
        why = (
            tools.detail
            if tools.outcome == "no_answer"
            else f"the format probe was refused alike: {tools.detail}"
        )
        if configured == "native":
            return verdict(
                "warn",
                "native",
                f'could not tell whether {label} takes tools ({why}); tool_protocol = "native" sends them',
                _TRY_AGAIN,
            )
        if remembered is not None and remembered.protocol == "text":
            return verdict(
                "warn",
                "text",
                f"could not tell whether {label} takes tools ({why}); auto remembers a switch to the text "
                f"protocol for this endpoint and model ({remembered.reason}): cycles start in text",
                _TRY_AGAIN,
            )
        return verdict(
            "warn",
            None,
            f"could not tell whether {label} takes tools ({why}); Rez starts with native tool calls and "
            "switches to the text protocol if the endpoint refuses them",
            _TRY_AGAIN,
        )
    if tools.outcome == "refused":
        # Not worded as a refusal of tools: auto switches on that alone, so a cycle would just fail.
        seen = f"{label} refused a request with a tool ({tools.detail}), not naming the tools as the trouble"
        if configured == "native":
            return verdict("warn", "native", f"{seen}: every cycle would end in a hold", _SET_AUTO)
        return verdict(
            "warn", "native", f"{seen}: auto would not switch, and every cycle would end in a hold", _SET_TEXT
        )
    if tools.outcome == "tools_refused":
        seen = f"{label} refused the tools ({tools.detail})"
        if configured == "native":
            return verdict(
                "warn",
                "native",
                f'{seen}: with tool_protocol = "native" every cycle would end in a hold',
                _SET_AUTO,
            )
        return verdict(
            "warn",
            "text",
            f"{seen}: Rez uses {_TEXT_PROTOCOL}; auto switches at the first refusal and remembers it",
            _NATIVE_TOOLS_FIX,
        )
    said = f"{source} says it has no tool support" if supports is False else "nothing reports tool support"
    seen = f"{label} accepted a request with a tool but {model} answered in prose, and {said}"
    if configured == "native":
        return verdict(
            "warn",
            "native",
            f'{seen}: with tool_protocol = "native" the model never gets fetch_indicator',
            _SET_AUTO,
        )
    started = (
        "cycles start in text (auto remembers it)"
        if remembered is not None and remembered.protocol == "text"
        else "auto goes on in text once the model writes a CALL line"
    )
    return verdict(
        "warn",
        "text",
        f"{seen}: Rez uses {_TEXT_PROTOCOL}; {started}",
        f"{_SET_TEXT}; or {_NATIVE_TOOLS_FIX}",
    )


def _schema_check(
    settings: Settings, target: _Endpoint, schema: SchemaProbe, fallback: SchemaProbe | None, alike: bool
) -> Check:
    """Whether the constrained last turn works: ``json_schema`` (strict), else ``json_object``."""
    label, model = target.label, target.model
    wanted = settings.llm.supports_json_schema
    facts: dict[str, Any] = {
        "supports_json_schema": wanted,
        "response_format": "json_schema" if wanted else "json_object",
        "json_schema": schema.outcome if wanted else None,
        "json_object": (fallback.outcome if fallback is not None else None) if wanted else schema.outcome,
    }

    def verdict(status: Status, detail: str, fix: str | None = None) -> Check:
        return Check("schema", status, detail, fix, facts)

    if not wanted:
        asked = "supports_json_schema = false: the last turn asks for json_object"
        if schema.outcome == "enforced":
            return verdict("ok", f"{asked}, and {model} answered a JSON object")
        if schema.outcome == "accepted":
            return verdict("ok", f"{asked}; {label} accepted it ({schema.detail})")
        if schema.outcome == "ignored":
            return verdict(
                "warn",
                f"{asked}, which {label} accepted but {model} did not answer in JSON: "
                "Rez extracts the decision from prose, or has the resilience model repair it",
            )
        if schema.outcome == "refused" and not alike:
            return verdict(
                "warn",
                f"{asked}, which {label} refused ({schema.detail}): the last turn of every cycle would fail",
                "check that the endpoint offers response_format at all",
            )
        return verdict(
            "warn", f"{asked}; could not tell whether {label} takes it ({schema.detail})", _TRY_AGAIN
        )
    if schema.outcome == "enforced":
        return verdict(
            "ok",
            f"json_schema (strict) enforced: {model} answered in the probe's schema unasked, so the last "
            "turn answers in the decision's schema",
        )
    if schema.outcome == "accepted":
        return verdict(
            "ok",
            f"json_schema (strict) accepted ({schema.detail}); the last turn asks for the decision's schema",
        )
    if schema.outcome == "ignored":
        return verdict(
            "warn",
            f"{label} accepted json_schema but {model} did not answer in it: the last turn may come back "
            "as prose, which Rez extracts, or has the resilience model repair",
        )
    if schema.outcome == "refused" and not alike:
        also = ""
        if fallback is not None and fallback.outcome in ("enforced", "accepted"):
            also = "; it accepts json_object"
        elif fallback is not None and fallback.outcome == "refused":
            also = f"; it refused json_object too ({fallback.detail})"
        return verdict(
            "warn",
            f"{label} refused json_schema ({schema.detail}): the last turn of every cycle would be "
            f"refused{also}",
            "set [llm] supports_json_schema = false: Rez then asks for json_object instead",
        )
    why = f"the tool probe was refused alike: {schema.detail}" if alike else schema.detail
    return verdict("warn", f"could not tell whether {label} takes json_schema ({why})", _TRY_AGAIN)


def _model_status_check(status: int, label: str, model: str, key_note: str) -> Check:
    if status in (401, 403):
        return Check(
            "model",
            "fail",
            f"{label} refused the API key ({status})",
            "check OPENAI_API_KEY or [llm] api_key",
        )
    if status == 404:
        # Some OpenAI-compatible servers serve chat but no model list: the endpoint still answered.
        return Check(
            "model",
            "ok",
            f"{label} answered ({key_note}); it serves no /models list (404), so the key and "
            f"the model {model} were not checked",
        )
    if status == 429:
        return Check(
            "model", "warn", f"{label} answered 429 (rate limited)", "wait, or check the plan's limits"
        )
    if status >= 500:
        return Check("model", "fail", f"{label} answered {status} (server error)", "try again later")
    return Check("model", "warn", f"{label} answered {status} to GET /models", None)


def _model_ids(body: bytes) -> set[str]:
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return set()
    data = payload.get("data") if isinstance(payload, dict) else None
    if not isinstance(data, list):
        return set()
    return {str(item["id"]) for item in data if isinstance(item, dict) and "id" in item}


def _declared_requirements() -> dict[str, str]:
    """rez's runtime requirements as ``{distribution: specifier}``; empty when rez is not installed."""
    try:
        declared = importlib.metadata.requires("rez-cli") or []
    except importlib.metadata.PackageNotFoundError:
        return {}
    wanted: dict[str, str] = {}
    for line in declared:
        match = _REQUIREMENT.match(line)
        if match is None or (match.group(3) and "extra" in match.group(3)):
            continue
        name, spec = match.group(1), match.group(2).replace(" ", "")
        wanted[_normalize(name)] = spec
    return {
        distribution: wanted[_normalize(distribution)]
        for distribution, _ in PACKAGES
        if _normalize(distribution) in wanted
    }


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _outside(version: str, spec: str) -> bool:
    """Whether ``version`` falls outside ``spec``; False when that cannot be told."""
    try:
        # packaging is not a dependency of rez; without it the range is not checked.
        from packaging.specifiers import InvalidSpecifier, SpecifierSet
        from packaging.version import InvalidVersion, Version
    except ImportError:
        return False
    try:
        return not SpecifierSet(spec).contains(Version(version), prereleases=True)
    except (InvalidSpecifier, InvalidVersion):
        return False


def _is_shipped(path: Path) -> bool:
    return path.resolve() == (paths.shipped_configs_dir() / "config.toml").resolve()


def check_gguf(settings: Settings, reason: str) -> Check:
    """The GGUF file of ``[llm] gguf`` passes the checks of a run and llama.cpp loads it."""
    from rez_cli.errors import UsageError
    from rez_cli.llm import local_model

    try:
        path = local_model.prepare(settings.llm, None)
        assert path is not None  # the caller's choice named it
        with local_model.serve(settings.llm, path) as served:
            pass
    except UsageError as error:
        fix = "pip install 'rez-cli[local]'" if "local extra" in error.message else "fix [llm] gguf"
        return Check("model", "fail", error.message, fix)
    return Check(
        "model",
        "ok",
        f"{served.model} ({reason}): loaded in {served.load_s:.1f} s "
        f"({_threads_text(served.threads, served.prompt_threads)}, context {served.n_ctx})",
    )


def _threads_text(threads: int, prompt_threads: int) -> str:
    """``2 threads``, or ``1 thread, 2 reading the prompt`` when the prompt gets more."""
    text = f"{threads} thread{'s' if threads > 1 else ''}"
    return text + (f", {prompt_threads} reading the prompt" if prompt_threads > threads else "")
