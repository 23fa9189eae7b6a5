"""Prompt texts, kept in `prompts/*.txt` so they can be read and changed without code."""

from __future__ import annotations

from functools import cache, lru_cache
from importlib import resources


@cache
def _template(name: str) -> str:
    return (resources.files(__package__) / "prompts" / f"{name}.txt").read_text(encoding="utf-8")


@lru_cache(maxsize=64)  # the same system prompts are rendered for every plan and every step
def render_prompt(name: str, **values: object) -> str:
    """The prompt `name` with its `{placeholders}` filled in (values must be hashable)."""
    return _template(name).format(**values)
