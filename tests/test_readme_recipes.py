"""The README's endpoint recipes are configs Rez accepts, each with what its endpoint needs.

The llama.cpp recipe is also run, against a real llama.cpp server, by ``tests/realmodel``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from rez_cli.config.settings import load_settings
from rez_cli.cycle.choice import choose_model
from tests.support.readme_recipes import readme_recipe, readme_recipes

ENDPOINTS = ["openai", "ollama", "llama.cpp", "vllm", "lm-studio", "openrouter", "deepseek"]


def test_every_endpoint_has_a_recipe() -> None:
    assert list(readme_recipes()) == ENDPOINTS


@pytest.mark.parametrize("name", ENDPOINTS)
def test_a_recipe_is_a_valid_config_that_chooses_its_model(name: str, tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(readme_recipes()[name], encoding="utf-8")
    settings = load_settings(config, {}).value
    recipe = readme_recipe(name)["llm"]
    assert settings.llm.model == recipe["model"]
    assert choose_model(settings.llm, None, {}).model == recipe["model"]
    # A recipe sets only keys it needs: every one of them reaches the settings as written.
    for key, value in recipe.items():
        setting = getattr(settings.llm, key)
        shown = setting.get_secret_value() if hasattr(setting, "get_secret_value") else setting
        assert shown == value, key


def test_deepseek_asks_for_json_object() -> None:
    assert readme_recipe("deepseek")["llm"]["supports_json_schema"] is False


def test_the_llama_cpp_recipe_fits_a_small_model_on_two_cores() -> None:
    # ~20-60 tokens a second written, ~80 read: the first request reads ~2,700 tokens (~34 s on one
    # core) and writes at most 192 within a call's 90 s; 1,024 would not fit.
    llm = readme_recipe("llama.cpp")["llm"]
    assert llm["max_output_tokens"] == 192
    assert llm["timeout_s"] == 90
    assert llm["max_retries"] == 0
    assert llm["base_url"].startswith("http://127.0.0.1:")
