"""``rez doctor``: is this machine ready to decide? Each check says what it saw and how to fix it.

The checks only look: the exchange is asked for its markets and one candle, the model endpoint for
its model list, and the journal's directory gets a temporary file that is removed at once (with any
directory created for it). A check that depends on a valid config is skipped when the config is not.

Nothing a check reports carries a credential: exchange errors pass through the ccxt adapter's
redaction, the model check never echoes what the endpoint says, only its status and its host, and
every line goes through ``rez_cli.redact`` on its way out (configured secrets, URL credentials).
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
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Literal

from rez_cli import __version__, paths
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
from rez_cli.settings import (
    ENV_PREFIX,
    Settings,
    _apply_env_overrides,
    load_profile,
    load_settings,
    secrets_of,
)

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
# One retry absorbs a blip; a doctor that retries for long only delays the answer.
_EXCHANGE_RETRIES = 1
_EXCHANGE_RETRY_DELAY_S = 0.25
_REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*([^;]*?)\s*(?:;(.*))?$")


@dataclass(frozen=True)
class Check:
    """One diagnosis: what was checked, how it went, what was seen, and what to do when not ok."""

    name: str
    status: Status
    detail: str
    fix: str | None = None

    def as_json(self) -> dict[str, Any]:
        """The check as a JSON-ready object."""
        return asdict(self)


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
        model_timeout_s: how long the model endpoint gets to answer.

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
        # The two probes wait on different servers: overlapping them halves the worst case.
        return list(
            await asyncio.gather(
                check_exchange(settings, exchange, symbol),
                asyncio.to_thread(check_model, settings, env, model_timeout_s),
            )
        )

    checks += asyncio.run(network())
    checks.append(check_journal(journal_path(settings, journal)))
    return _redacted(checks, active().extended(secrets_of(settings, env)))


def _redacted(checks: list[Check], redactor: Redactor) -> list[Check]:
    return [
        replace(
            check, detail=redactor.text(check.detail), fix=redactor.text(check.fix) if check.fix else None
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


def check_model(settings: Settings, environ: Mapping[str, str], timeout_s: float = MODEL_TIMEOUT_S) -> Check:
    """A configured model's endpoint answers and does not refuse the key; no model is a warning."""
    from rez_cli.choice import choose_model
    from rez_cli.reasoning.openai_llm import _OPENAI_BASE_URL, endpoint_label

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
    fix_endpoint = "check [llm] base_url (or OPENAI_BASE_URL) and that the server is running"
    if not url.startswith(("http://", "https://")):
        return Check("model", "fail", f"base_url {label!r} is not an http(s) URL", fix_endpoint)
    key_note = "key set" if key else "no key (fine for a local endpoint)"
    headers = {"Accept": "application/json", "User-Agent": f"rez/{__version__} doctor"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    request = urllib.request.Request(url.rstrip("/") + "/models", headers=headers, method="GET")
    try:
        # The scheme was checked above: urllib would also open file:// URLs.
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            body = response.read(2_000_000)
    except urllib.error.HTTPError as error:
        return _model_status_check(error.code, label, model, key_note)
    except TimeoutError:
        return Check("model", "fail", f"{label} did not answer within {timeout_s:g} s", fix_endpoint)
    except urllib.error.URLError as error:
        reason = error.reason
        why = reason.strerror if isinstance(reason, OSError) and reason.strerror else str(reason)
        if isinstance(reason, TimeoutError):
            why = f"no answer within {timeout_s:g} s"
        return Check("model", "fail", f"cannot reach {label}: {why}", fix_endpoint)
    except (OSError, ValueError) as error:
        return Check("model", "fail", f"cannot reach {label}: {type(error).__name__}", fix_endpoint)
    listed = _model_ids(body)
    if listed and model not in listed:
        sample = ", ".join(sorted(listed)[:5])
        return Check(
            "model",
            "warn",
            f"{label} answered ({key_note}) but does not list the model {model}",
            f"set [llm] model to one it serves, e.g. {sample}",
        )
    seen = f"; {model} is listed" if listed else ""
    return Check("model", "ok", f"{model} ({choice.reason}): {label} answered ({key_note}){seen}")


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
    from rez_cli.reasoning import local_model

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
        f"({served.threads} thread{'s' if served.threads > 1 else ''}, context {served.n_ctx})",
    )
