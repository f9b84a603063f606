"""Prompt presets. A preset's id is what the catalog records (``images.prompt_id``, beside its full
text, ``images.prompt_text``); ``--prompt TEXT`` records 'custom'.

``language-att`` and ``language-att-sentiment`` are the questions of the "Language-driven Visual
Saliency Prediction" research, word for word (its ``prompting_script.py``: the full description,
and the emotional attention one it has commented out). It asks them image first
(``DEFAULT_IMAGE_TOKEN + "\\n" + question``), as the extractor's chat content [image, text] does,
and generates up to 256 tokens: their default ``--max-new-tokens``.
"""

from __future__ import annotations

from dataclasses import dataclass

from saldata.errors import ConfigError
from saldata.extractors.settings import DEFAULT_MAX_NEW_TOKENS

PROMPT_PRESETS: dict[str, str] = {
    "describe": (
        "Describe this image in detail, in at most 60 words. Name the objects, their attributes "
        "(color, size, material), where they are relative to each other, and how they relate."
    ),
    "emotion": (
        "Describe the sentiments and emotions the objects and people in this image convey, in at most 60 words."
    ),
    "objects": "List the objects in this image, separated by commas, and nothing else.",
    "language-att": (
        "Can you describe the image in detail? The description should capture objects, their attributes, "
        "relative positions and relations. Limit to 15 words."
    ),
    "language-att-sentiment": (
        "Can you describe the image in detail? The description should capture the sentiments of different "
        "objects, together with their other attributes. Limit to 50 words."
    ),
}
DEFAULT_PROMPT = "describe"
CUSTOM_PROMPT_ID = "custom"
# A preset's own --max-new-tokens default (the research's generate(max_new_tokens=256)); every
# other preset and a custom --prompt: DEFAULT_MAX_NEW_TOKENS.
PRESET_MAX_NEW_TOKENS: dict[str, int] = {"language-att": 256, "language-att-sentiment": 256}


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


def resolve_max_new_tokens(prompt: Prompt, given: int | None = None) -> int:
    """``--max-new-tokens``: the value given, else the prompt's preset's default (64 unless the preset has its own)."""
    if given is not None:
        return given
    return PRESET_MAX_NEW_TOKENS.get(prompt.id, DEFAULT_MAX_NEW_TOKENS)
