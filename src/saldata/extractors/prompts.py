"""Prompt presets. A preset's id is what the catalog records; ``--prompt TEXT`` records 'custom'."""

from __future__ import annotations

from dataclasses import dataclass

from saldata.errors import ConfigError

PROMPT_PRESETS: dict[str, str] = {
    "describe": (
        "Describe this image in detail, in at most 60 words. Name the objects, their attributes "
        "(color, size, material), where they are relative to each other, and how they relate."
    ),
    "emotion": (
        "Describe the sentiments and emotions the objects and people in this image convey, in at most 60 words."
    ),
    "objects": "List the objects in this image, separated by commas, and nothing else.",
}
DEFAULT_PROMPT = "describe"
CUSTOM_PROMPT_ID = "custom"


@dataclass(frozen=True, slots=True)
class Prompt:
    id: str
    text: str


def resolve_prompt(preset: str | None = None, text: str | None = None) -> Prompt:
    """A preset by name, or a custom text (which wins when both are given)."""
    if text:
        return Prompt(CUSTOM_PROMPT_ID, text)
    name = preset or DEFAULT_PROMPT
    if name not in PROMPT_PRESETS:
        raise ConfigError(
            f"Unknown prompt preset {name!r}; choose one of {', '.join(PROMPT_PRESETS)} or pass --prompt TEXT."
        )
    return Prompt(name, PROMPT_PRESETS[name])
