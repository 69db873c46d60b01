"""Opening the journal a command uses: the path from the flag or the config, its secrets, its run.

Every command that writes or reads the journal goes through here, so none can forget to register
the credentials the journal must strike out.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

from rez_cli.config.settings import RiskProfile, Settings, secrets_of
from rez_cli.journal.store import Journal, resolve_journal_path

RECORDED_PACKAGES = ("rez-cli", "ccxt", "openai", "pandas", "pandas-ta-classic", "pydantic")


def open_journal(settings: Settings, explicit: Path | None, *, create: bool = True) -> Journal:
    """The journal at ``--journal`` or ``[journal] path``, with this configuration's secrets registered.

    Raises:
        ConfigError: the journal cannot be opened.
        DataNotFound: there is none and ``create`` is false.
    """
    journal = Journal(resolve_journal_path(explicit, settings.journal.path), create=create)
    for secret in secrets_of(settings):
        journal.add_secret(secret)
    return journal


def package_versions() -> dict[str, str]:
    versions = {}
    for name in RECORDED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def _short_hash(payload: str) -> str:
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def start_run(
    journal: Journal, command: str, argv: Sequence[str], settings: Settings, profile: RiskProfile
) -> int:
    """Record a run: the command, its arguments, hashes of the config and profile, package versions."""
    return journal.start_run(
        command,
        list(argv),
        config_hash=_short_hash(settings.model_dump_json()),
        profile_hash=_short_hash(profile.model_dump_json()),
        versions=package_versions(),
    )
