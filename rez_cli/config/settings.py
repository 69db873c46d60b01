"""Settings and risk profiles: TOML files validated by pydantic.

Lookup order for the config file: ``--config PATH`` > ``$REZ_CONFIG`` > ``<config dir>/config.toml``
> the defaults shipped in ``configs/``. A file only needs the keys it changes; the rest keep their
defaults. Environment variables ``REZ__SECTION__KEY=value`` override single keys (as freqtrade does),
so cron jobs and tests can change one value without another file.
"""

from __future__ import annotations

import copy
import json
import os
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from types import NoneType, UnionType
from typing import Annotated, Any, Generic, Literal, TypeVar, Union, get_args, get_origin

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from rez_cli import redact
from rez_cli.actions import ACTIONS, Action
from rez_cli.config import paths
from rez_cli.config import webhook as webhook_url
from rez_cli.errors import ConfigError, UsageError
from rez_cli.redact import credentials_in, is_secret_key, url_credentials
from rez_cli.timeframes import timeframe_ms

ENV_PREFIX = "REZ__"
DEFAULT_PROFILE = "moderate"


def _check_timeframe(value: str) -> None:
    # pydantic reports ValueError with the key's location; our UsageError would escape unlocated.
    try:
        timeframe_ms(value)
    except UsageError as error:
        raise ValueError(error.one_line()) from None


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ExchangeSettings(_Section):
    id: str = "binance"
    # Passed as-is to the ccxt exchange constructor, which deep-merges it into its defaults.
    ccxt: dict[str, Any] = Field(default_factory=dict)
    retries: Annotated[int, Field(ge=0, le=10)] = 3
    cache: bool = True

    @field_validator("ccxt")
    @classmethod
    def _plain_values(cls, value: dict[str, Any]) -> dict[str, Any]:
        # ccxt takes JSON-like options: a TOML date or time would fail inside ccxt, or in
        # `rez config show --json`, instead of here where the key can be named.
        def check(item: Any, where: str) -> None:
            if isinstance(item, dict):
                for key, inner in item.items():
                    check(inner, f"{where}.{key}" if where else str(key))
            elif isinstance(item, list):
                for index, inner in enumerate(item):
                    check(inner, f"{where}[{index}]")
            elif not (item is None or isinstance(item, str | int | float | bool)):
                raise ValueError(f"{where}: a {type(item).__name__} is not a ccxt option (use a string)")

        check(value, "")
        return value


class MarketSettings(_Section):
    timeframe: str = "1h"
    context_timeframes: list[str] = Field(default_factory=lambda: ["15m", "1h", "4h"])
    candles: Annotated[int, Field(ge=50, le=5000)] = 300
    # numpy seeds are non-negative; 2**63 keeps the value an SQLite integer wherever it is stored.
    seed: Annotated[int, Field(ge=0, lt=2**63)] = 7

    @field_validator("timeframe")
    @classmethod
    def _known_timeframe(cls, value: str) -> str:
        _check_timeframe(value)
        return value

    @field_validator("context_timeframes")
    @classmethod
    def _known_timeframes(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("needs at least one timeframe")
        for timeframe in value:
            _check_timeframe(timeframe)
        return sorted(dict.fromkeys(value), key=timeframe_ms)


class ModelPrice(_Section):
    """US dollars per million tokens."""

    input: Annotated[float, Field(ge=0)]
    output: Annotated[float, Field(ge=0)]


class LLMSettings(_Section):
    model: str | None = None
    base_url: str | None = None
    api_key: SecretStr | None = None
    resilience_model: str | None = None
    timeout_s: Annotated[float, Field(gt=0, le=600)] = 60.0
    cycle_timeout_s: Annotated[float, Field(gt=0, le=3600)] = 180.0
    max_turns: Annotated[int, Field(ge=1, le=20)] = 6
    max_retries: Annotated[int, Field(ge=0, le=10)] = 2
    supports_json_schema: bool = True
    parallel_tool_calls: bool = True
    # How tools reach the model: "native" function calling, "text" CALL lines described in the
    # prompt, or "auto": native until the endpoint refuses tools or the model writes CALL lines.
    tool_protocol: Literal["auto", "native", "text"] = "auto"
    # A decision and its reasoning fit in ~1k tokens; without a cap a small local model has been seen
    # writing 5,000 tokens until the timeout.
    max_output_tokens: Annotated[int, Field(ge=16, le=1_000_000)] = 1024
    temperature: Annotated[float, Field(ge=0, le=2)] = 0.2
    seed: int | None = None
    # A system-prompt template replacing Rez's (``rez arena``'s prompt=FILE), with the same
    # placeholders ({max_leverage}, {example}, ...; see reasoning/prompts.py); None is Rez's own.
    system_prompt: str | None = None
    extra_headers: dict[str, str] = Field(default_factory=dict)
    extra_body: dict[str, Any] = Field(default_factory=dict)
    prices: dict[str, ModelPrice] = Field(default_factory=dict)
    # Training cutoffs by model name (`rez audit` splits a backtest there); they add to and override
    # the audit's approximate defaults for well-known models (rez_cli/audit/cutoffs.py).
    cutoffs: dict[str, date] = Field(default_factory=dict)
    # A GGUF file Rez serves itself through llama.cpp (the `local` extra) for the length of a run.
    gguf: Path | None = None
    # SmolLM2 and most current small models were trained on 8k; Rez's prompt, a few tool turns and an
    # answer fit in it, and the KV cache (memory) grows with it.
    gguf_context: Annotated[int, Field(ge=512, le=1_048_576)] = 8192
    # None: one core fewer than the machine has generating, every core reading the prompt (see
    # local_model.default_threads and default_prompt_threads); a number is used for both.
    gguf_threads: Annotated[int, Field(ge=1, le=1024)] | None = None


class JournalSettings(_Section):
    path: Path | None = None


class MemorySettings(_Section):
    enabled: bool = True


class RiskSettings(_Section):
    profile: str = DEFAULT_PROFILE


class PaperSettings(_Section):
    """The paper account ``rez decide`` keeps: one per exchange, in the journal."""

    enabled: bool = True
    # The equity a new account starts with, in the quote currency.
    equity: Annotated[float, Field(gt=0, le=1e12, allow_inf_nan=False)] = 10_000.0


class NotifySettings(_Section):
    # A secret: Discord and Slack webhook URLs carry the token that lets anyone post (config.webhook).
    webhook: SecretStr | None = None
    timeout_s: Annotated[float, Field(gt=0, le=60)] = 5.0

    @field_validator("webhook", mode="before")
    @classmethod
    def _empty_is_none(cls, value: Any) -> Any:
        # REZ__NOTIFY__WEBHOOK= turns off a webhook the file sets.
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("webhook")
    @classmethod
    def _http_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and (problem := webhook_url.problem(value.get_secret_value())):
            raise ValueError(problem)
        return value


class Settings(_Section):
    exchange: ExchangeSettings = Field(default_factory=ExchangeSettings)
    market: MarketSettings = Field(default_factory=MarketSettings)
    llm: LLMSettings = Field(default_factory=LLMSettings)
    journal: JournalSettings = Field(default_factory=JournalSettings)
    memory: MemorySettings = Field(default_factory=MemorySettings)
    paper: PaperSettings = Field(default_factory=PaperSettings)
    risk: RiskSettings = Field(default_factory=RiskSettings)
    notify: NotifySettings = Field(default_factory=NotifySettings)

    def with_timeframes(self, timeframe: str | None = None, context: Sequence[str] | None = None) -> Settings:
        """These settings with the primary and context timeframes a command's options asked for.

        Raises:
            UsageError: a timeframe Rez cannot read (the message names it).
        """
        update: dict[str, Any] = {}
        if timeframe is not None:
            timeframe_ms(timeframe)
            update["timeframe"] = timeframe
        if context is not None:
            for name in context:
                timeframe_ms(name)
            if not context:
                raise UsageError("--timeframes needs at least one timeframe, e.g. 1h or 15m,1h,4h")
            # model_copy does not validate: keep the order the validator would have given.
            update["context_timeframes"] = sorted(dict.fromkeys(context), key=timeframe_ms)
        return self.model_copy(update={"market": self.market.model_copy(update=update)}) if update else self


class RiskProfile(_Section):
    """The hard limits every decision is checked against."""

    name: str
    description: str = ""
    max_leverage: Annotated[float, Field(ge=1, le=125)]
    risk_per_trade_pct: Annotated[float, Field(gt=0, le=100)]
    max_position_pct: Annotated[float, Field(gt=0, le=100)]
    require_stop_loss: bool = True
    min_reward_risk: Annotated[float, Field(ge=0)]
    max_entry_deviation_pct: Annotated[float, Field(gt=0, le=100)]
    # How far from the last price a level may be: a target 1e308 away or a stop a hair under the
    # entry makes reward/risk meaningless and the size absurd, so both are bounded (in % of the last
    # price and, where set, in ATR 14 of the primary timeframe).
    max_target_distance_pct: Annotated[float, Field(gt=0, le=1000)] = 50.0
    max_stop_distance_pct: Annotated[float, Field(gt=0, le=100)] = 25.0
    min_stop_distance_pct: Annotated[float, Field(ge=0, le=100)] = 0.05
    max_target_atr: Annotated[float, Field(gt=0, le=1000)] | None = None
    max_stop_atr: Annotated[float, Field(gt=0, le=1000)] | None = None
    # The backtest's liquidation price: the maintenance margin rate, in % of the notional (Binance
    # starts at 0.4-0.5% for the majors and raises it for large positions).
    maintenance_margin_pct: Annotated[float, Field(ge=0, le=50)] = 0.5
    allowed_actions: list[Action] = Field(default_factory=lambda: list(ACTIONS))
    # The account (paper and backtest): a buy while long (a sell while short) adds to the position
    # only when allowed; across symbols, at most this many positions (pending orders included), and
    # their notionals together at most this percentage of equity.
    allow_adding: bool = False
    max_open_positions: Annotated[int, Field(ge=1, le=1000)] = 5
    max_total_exposure_pct: Annotated[float, Field(gt=0, le=100_000)] = 500.0

    @field_validator("maintenance_margin_pct")
    @classmethod
    def _liquidation_below_entry(cls, value: float, info: ValidationInfo) -> float:
        leverage = info.data.get("max_leverage")
        # At 100 / leverage % a position at the profile's top leverage would be liquidated at its fill.
        if isinstance(leverage, int | float) and value * leverage >= 100:
            raise ValueError(
                f"must be under {100 / leverage:g} (100 / max_leverage): a position at {leverage:g}x "
                "would be liquidated as soon as it opens"
            )
        return value

    @field_validator("allowed_actions")
    @classmethod
    def _hold_always_allowed(cls, value: list[Action]) -> list[Action]:
        if "hold" not in value:
            raise ValueError("must include 'hold': a failure always ends in hold")
        return list(dict.fromkeys(value))


T = TypeVar("T")


@dataclass(frozen=True)
class Loaded(Generic[T]):
    """A validated value and the file it came from (``None``: built-in defaults)."""

    value: T
    path: Path | None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, expected a TOML file") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: not valid TOML: {error}") from None
    except UnicodeDecodeError as error:
        where = f"byte {error.object[error.start]:#04x} at offset {error.start}"
        raise ConfigError(f"{path}: not valid TOML: not UTF-8 text ({where})") from None
    except RecursionError:
        raise ConfigError(f"{path}: not valid TOML: arrays or tables nested too deeply") from None
    except OSError as error:
        raise ConfigError(f"{path}: cannot read: {error.strerror or error}") from None
    except ValueError as error:  # a path the OS cannot take, such as one holding a NUL byte
        raise ConfigError(f"{str(path)!r}: cannot read: {error}") from None


_MAX_SHOWN_VALUE = 80


def _first_error(
    path: Path | str, error: ValidationError, model: type[BaseModel], data: Mapping[str, Any]
) -> ConfigError:
    """The first problem as one line; the rejected value is shown only when it cannot be a credential.

    Args:
        model: what ``data`` was validated as: its schema says where credentials may be.
        data: the input as read (file and overrides), whose credentials are struck from the line.
    """
    first = error.errors()[0]
    loc = tuple(first["loc"])
    key = ".".join(str(part) for part in loc) or "(top level)"
    message = first["msg"]
    known = credentials_in(data) + [value for value in (os.environ.get("OPENAI_API_KEY"),) if value]
    if first["type"] == "extra_forbidden":
        message = "unknown key"
    elif "input" in first and first["type"] != "missing" and _may_show(model, loc, first["input"], known):
        shown = repr(first["input"])
        if len(shown) > _MAX_SHOWN_VALUE:  # one line stays readable whatever was pasted into a key
            shown = shown[: _MAX_SHOWN_VALUE - 1] + "…"
        message = f"{message} (got {shown})"
    more = len(error.errors()) - 1
    suffix = f"; and {more} more problem{'s' if more > 1 else ''}" if more else ""
    return ConfigError(redact.Redactor(known).text(f"{path}: {key}: {message}{suffix}"))


def _may_show(model: type[BaseModel], loc: tuple[str | int, ...], value: Any, known: list[str]) -> bool:
    # A rejected api_key is still the key, and an override such as REZ__LLM='["sk-..."]' is rejected
    # at [llm], a table that holds one: neither the name at the location nor the value can be trusted
    # alone, so the schema decides where a credential may be, and the value must carry none.
    if any(is_secret_key(str(part)) for part in loc) or _may_hold_secret(model, loc):
        return False
    if credentials_in(value):
        return False
    texts: list[str] = []
    _texts(value, texts)
    # A value that is a whole credential is hidden however short; one that contains a credential is
    # hidden when the redactor would strike it there.
    redactor = redact.Redactor(known)
    return not any(text in known or redactor.holds_secret(text) for text in texts)


def _texts(value: Any, into: list[str]) -> None:
    if isinstance(value, str):
        into.append(value)
    elif isinstance(value, Mapping):
        for key, item in value.items():
            into.append(str(key))
            _texts(item, into)
    elif isinstance(value, list | tuple):
        for item in value:
            _texts(item, into)


def _may_hold_secret(annotation: Any, loc: tuple[str | int, ...]) -> bool:
    """Whether the value at ``loc`` of a value of type ``annotation`` may be or hold a credential."""
    if annotation is Any or annotation is SecretStr:
        return True
    origin = get_origin(annotation)
    arguments = get_args(annotation)
    if origin is Annotated:
        return _may_hold_secret(arguments[0], loc)
    if origin in (Union, UnionType):
        return any(_may_hold_secret(argument, loc) for argument in arguments if argument is not NoneType)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        fields = annotation.model_fields
        if not loc:
            return any(
                is_secret_key(name) or _may_hold_secret(field.annotation, ())
                for name, field in fields.items()
            )
        field = fields.get(str(loc[0]))
        # Not a field name: a tag pydantic adds inside unions; be careful rather than sorry.
        return field is None or is_secret_key(str(loc[0])) or _may_hold_secret(field.annotation, loc[1:])
    if origin in (dict, Mapping) and len(arguments) == 2:
        return _may_hold_secret(arguments[1], loc[1:])
    if origin in (list, tuple, set, frozenset) and arguments:
        return _may_hold_secret(arguments[0], loc[1:])
    return False


def _parse_env_value(raw: str) -> Any:
    # JSON first so lists, numbers and booleans work (REZ__MARKET__CONTEXT_TIMEFRAMES='["1h"]').
    try:
        return json.loads(raw)
    # ValueError covers JSONDecodeError and Python's 4,300-digit limit on integers.
    except (ValueError, RecursionError):
        return raw


def _apply_env_overrides(data: dict[str, Any], environ: dict[str, str]) -> list[str]:
    applied = []
    for name, raw in sorted(environ.items()):
        if not name.startswith(ENV_PREFIX):
            continue
        keys = [part.lower() for part in name[len(ENV_PREFIX) :].split("__") if part]
        if not keys:
            continue
        target = data
        for key in keys[:-1]:
            existing = target.get(key)
            if not isinstance(existing, dict):
                existing = {}
                target[key] = existing
            target = existing
        target[keys[-1]] = _parse_env_value(raw)
        applied.append(name)
    return applied


def config_path(explicit: Path | None, environ: dict[str, str] | None = None) -> Path:
    """The config file to read, following the documented lookup order."""
    env = os.environ if environ is None else environ
    if explicit is not None:
        return explicit
    if env.get("REZ_CONFIG"):
        return paths.expand_user(env["REZ_CONFIG"])
    user_file = paths.config_dir() / "config.toml"
    try:
        found = user_file.is_file()
    except OSError as error:  # REZ_HOME too long a name for the file system
        raise ConfigError(f"{user_file}: cannot read: {error.strerror or error}") from None
    return user_file if found else shipped_config_path()


def merged(base: dict[str, Any], layer: dict[str, Any]) -> dict[str, Any]:
    """``layer`` over ``base``, table by table: a key the layer sets wins, the others stay."""
    out = copy.copy(base)  # keeps a dict subclass: ``rez config show`` merges tables that know their file
    for key, value in layer.items():
        below = out.get(key)
        out[key] = merged(below, value) if isinstance(below, dict) and isinstance(value, dict) else value
    return out


def shipped_config_path() -> Path:
    return paths.shipped_configs_dir() / "config.toml"


def read_layered(path: Path) -> dict[str, Any]:
    """The config file laid over the shipped defaults, key by key.

    A user file that sets ``[llm] model`` keeps the shipped ``[llm.prices]``: a file only says what
    it changes, and the defaults it does not mention are still there.
    """
    data = _read_toml(path)
    shipped = shipped_config_path()
    if path.resolve() == shipped.resolve():
        return data
    return merged(_read_toml(shipped), data)


def load_settings(explicit: Path | None = None, environ: dict[str, str] | None = None) -> Loaded[Settings]:
    """Read, lay over the shipped defaults, merge with ``REZ__`` overrides, and validate the config.

    Raises:
        ConfigError: the file is missing, not TOML, or a key is invalid (the message names it).
    """
    env = dict(os.environ if environ is None else environ)
    path = config_path(explicit, env)
    data = read_layered(path)
    overrides = _apply_env_overrides(data, env)
    try:
        settings = Settings.model_validate(data)
    except ValidationError as error:
        where = f"{path} (with {', '.join(overrides)})" if overrides else path
        raise _first_error(where, error, Settings, data) from None
    # From here on everything this invocation prints strikes them out, whichever command it is.
    redact.register(secrets_of(settings, env))
    return Loaded(settings, path)


def profile_path(name_or_path: str) -> Path:
    """Resolve ``--profile``: a path to a TOML file, or a name in the user or shipped profiles."""
    candidate = paths.expand_user(name_or_path)
    try:
        if candidate.suffix == ".toml" or os.sep in name_or_path or candidate.is_file():
            return candidate
        for directory in (paths.config_dir() / "profiles", paths.shipped_configs_dir() / "profiles"):
            path = directory / f"{name_or_path}.toml"
            if path.is_file():
                return path
    except OSError as error:  # a name too long for the file system
        raise ConfigError(f"risk profile {name_or_path!r}: {error.strerror or error}") from None
    raise ConfigError(
        f"unknown risk profile {name_or_path!r}",
        hint=f"choose one of {', '.join(available_profiles())} or give a path to a .toml file",
    )


def available_profiles() -> list[str]:
    """Profile names from the user config dir and the shipped defaults."""
    names: set[str] = set()
    for directory in (paths.config_dir() / "profiles", paths.shipped_configs_dir() / "profiles"):
        if directory.is_dir():
            names.update(path.stem for path in directory.glob("*.toml"))
    return sorted(names)


def load_profile(name_or_path: str) -> Loaded[RiskProfile]:
    """Load and validate a risk profile by name or path.

    Raises:
        ConfigError: unknown name, unreadable file, or an invalid key (the message names it).
    """
    path = profile_path(name_or_path)
    data = _read_toml(path)
    data.setdefault("name", path.stem)
    try:
        return Loaded(RiskProfile.model_validate(data), path)
    except ValidationError as error:
        raise _first_error(path, error, RiskProfile, data) from None


def secrets_of(settings: Settings, environ: Mapping[str, str] | None = None) -> list[str]:
    """Every credential this configuration holds, so whatever Rez writes or shows can strike them out.

    ``[llm] api_key``, ``OPENAI_API_KEY``, the credentials embedded in ``[llm] base_url`` and
    ``OPENAI_BASE_URL`` (``user:key@``, ``?api_key=``), every credential of ``[exchange.ccxt]``
    at any depth, and ``[notify] webhook`` with its token. Short values are listed too;
    ``redact.Redactor`` decides what is long enough.
    """
    env = os.environ if environ is None else environ
    llm = settings.llm
    found = [llm.api_key.get_secret_value()] if llm.api_key else []
    if env.get("OPENAI_API_KEY"):
        found.append(env["OPENAI_API_KEY"])
    for url in (llm.base_url, env.get("OPENAI_BASE_URL")):
        if url:
            found += url_credentials(url)
    found += credentials_in(settings.exchange.ccxt)
    found += credentials_in(llm.extra_headers) + credentials_in(llm.extra_body)
    if settings.notify.webhook is not None:
        found += webhook_url.secrets(settings.notify.webhook.get_secret_value())
    return [value for value in dict.fromkeys(found) if value]
