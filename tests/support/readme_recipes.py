"""The config recipes of the README's Models section, as the tests and benchmarks run them.

Each recipe is a fenced ``toml`` block right under a marker line ``<!-- recipe: NAME -->``. Reading
them from the README, rather than keeping a copy here, is the point: the llama.cpp recipe a user
copies is the one the real-model tests and ``bench/bench_real_model.py`` run, so it cannot drift.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

__all__ = ["README", "readme_recipe", "readme_recipes", "write_recipe"]

README = Path(__file__).resolve().parents[2] / "README.md"
_RECIPE = re.compile(r"^<!-- recipe: (?P<name>[^ ]+) -->\n```toml\n(?P<body>.*?)^```$", re.M | re.S)


def readme_recipes(readme: Path = README) -> dict[str, str]:
    """Every recipe's TOML text, by name, in the README's order."""
    found: dict[str, str] = {}
    for match in _RECIPE.finditer(readme.read_text(encoding="utf-8")):
        name = match.group("name")
        if name in found:
            raise AssertionError(f"{readme.name} has two recipes named {name!r}")
        found[name] = match.group("body")
    return found


def readme_recipe(name: str, readme: Path = README) -> dict[str, Any]:
    """The recipe ``name``, parsed.

    Raises:
        AssertionError: the README has no such recipe (its marker moved or was renamed).
    """
    recipes = readme_recipes(readme)
    if name not in recipes:
        raise AssertionError(f"{readme.name} has no recipe {name!r} (it has {', '.join(recipes)})")
    return tomllib.loads(recipes[name])


def write_recipe(name: str, path: Path, **llm: Any) -> dict[str, Any]:
    """Write the recipe ``name`` as a config file at ``path``, with ``llm`` keys replaced.

    Only the endpoint's address is meant to change (``base_url``: the test's server listens on a
    port of its own); everything else stays as the README says. Returns the ``[llm]`` table written.
    """
    import json

    recipe = readme_recipe(name)
    table = {**recipe.get("llm", {}), **llm}
    # TOML's basic strings are JSON strings; numbers and booleans are written the same way too.
    lines = ["[llm]"] + [f"{key} = {_toml_value(value, json.dumps)}" for key, value in table.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return table


def _toml_value(value: Any, dumps: Any) -> str:
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{key} = {_toml_value(item, dumps)}" for key, item in value.items()) + " }"
    return str(dumps(value))
