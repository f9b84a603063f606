"""Prompt presets: the research's two questions word for word, each preset's token budget, and
what the catalog records of the prompt.

The research's texts are those of ``prompting_script.py`` in github.com/szzexpoi/language_att
(``question = DEFAULT_IMAGE_TOKEN + "\\n" + ...``, ``generate(..., max_new_tokens=256)``), copied
here by hand, not from saldata: a change to either preset fails this file.
"""

from __future__ import annotations

import re

import pyarrow.parquet as pq
import pytest
import zarr
from typer.testing import CliRunner

from saldata.cli.main import app
from saldata.extractors.prompts import (
    CUSTOM_PROMPT_ID,
    PROMPT_PRESETS,
    resolve_max_new_tokens,
    resolve_prompt,
)
from saldata.extractors.settings import DEFAULT_MAX_NEW_TOKENS
from tests.helpers import run_cli

RESEARCH_LANGUAGE_ATT = (
    "Can you describe the image in detail? The description should capture objects, their attributes, relative "
    "positions and relations. Limit to 15 words."
)
RESEARCH_SENTIMENT = (
    "Can you describe the image in detail? The description should capture the sentiments of different objects, "
    "together with their other attributes. Limit to 50 words."
)
RESEARCH_MAX_NEW_TOKENS = 256


def test_research_presets_are_its_questions_word_for_word():
    assert PROMPT_PRESETS["language-att"] == RESEARCH_LANGUAGE_ATT
    assert PROMPT_PRESETS["language-att-sentiment"] == RESEARCH_SENTIMENT
    assert resolve_prompt("language-att").text == RESEARCH_LANGUAGE_ATT


@pytest.mark.parametrize(
    ("preset", "text", "given", "expected"),
    [
        ("language-att", None, None, RESEARCH_MAX_NEW_TOKENS),
        ("language-att-sentiment", None, None, RESEARCH_MAX_NEW_TOKENS),
        ("describe", None, None, DEFAULT_MAX_NEW_TOKENS),
        ("emotion", None, None, DEFAULT_MAX_NEW_TOKENS),
        ("objects", None, None, DEFAULT_MAX_NEW_TOKENS),
        ("language-att", "Say something.", None, DEFAULT_MAX_NEW_TOKENS),  # a custom text has the plain default
        ("language-att", None, 30, 30),  # given explicitly, it always wins
        ("describe", None, 300, 300),
    ],
)
def test_max_new_tokens_default_is_the_presets(preset, text, given, expected):
    assert DEFAULT_MAX_NEW_TOKENS == 64
    assert resolve_max_new_tokens(resolve_prompt(preset, text), given) == expected


def dry_run(tmp_path, *args: str) -> str:
    out = tmp_path / "never"
    result = CliRunner().invoke(
        app, ["extract", "--dataset", "demo", "--model", "tiny-random", "--out", str(out), "--dry-run", *args]
    )
    assert result.exit_code == 0, result.output
    assert not out.exists()
    return result.output


@pytest.mark.parametrize(
    ("args", "tokens"),
    [
        (["--preset", "language-att"], RESEARCH_MAX_NEW_TOKENS),
        (["--preset", "language-att-sentiment"], RESEARCH_MAX_NEW_TOKENS),
        (["--preset", "language-att", "--max-new-tokens", "30"], 30),
        (["--preset", "language-att", "--prompt", "Say something."], DEFAULT_MAX_NEW_TOKENS),
        ([], DEFAULT_MAX_NEW_TOKENS),
        (["--max-new-tokens", "300"], 300),
    ],
)
def test_dry_run_shows_the_resolved_budget(tmp_path, tiny_model_dir, demo_root, args, tokens):
    text = dry_run(tmp_path, *args)
    assert re.search(rf"tokens <= {tokens},", text), text
    assert f"(6, {tokens}, 1, 4, 36, 48)" in text  # the per-token arrays are sized by it


def test_research_prompt_puts_the_image_first(tiny_model_dir):
    """The research's question is ``<image>\\n`` then the text (its conversation template's order):
    the chat content [image, text] renders exactly that, and the image tokens precede the text's."""
    from saldata.extractors.llava_next import CaptureSettings, LlavaNextExtractor
    from saldata.extractors.models import ModelSettings

    extractor = LlavaNextExtractor(
        tiny_model_dir,
        ModelSettings("tiny-random", dtype="float32", device="cpu"),
        CaptureSettings(max_new_tokens=2),
        resolve_prompt("language-att"),
    )
    assert "<image>\n" + RESEARCH_LANGUAGE_ATT + "<|eot_id|>" in extractor.prompt_text
    ids = extractor._prompt_ids(480, 640).tolist()
    tokenizer = extractor.processor.tokenizer
    question = tokenizer(RESEARCH_LANGUAGE_ATT, add_special_tokens=False)["input_ids"]
    starts = [i for i in range(len(ids)) if ids[i : i + len(question)] == question]
    assert len(starts) == 1, "the question's tokens appear once, whole"
    image = [i for i, t in enumerate(ids) if t == extractor.config.image_token_id]
    assert image and max(image) < starts[0]
    assert tokenizer.decode(ids[max(image) + 1 : starts[0]]) == "\n"  # nothing but the newline between


def test_catalog_records_the_prompt_text(demo_output_ray_free):
    images = pq.read_table(demo_output_ray_free / "catalog" / "images").to_pylist()
    attrs = zarr.open_group(demo_output_ray_free / "features.zarr", mode="r").attrs
    assert images and {(r["prompt_id"], r["prompt_text"]) for r in images} == {("describe", PROMPT_PRESETS["describe"])}
    assert attrs["prompt"] == PROMPT_PRESETS["describe"]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "prompt_id", "text", "tokens"),
    [
        (["--preset", "language-att"], "language-att", RESEARCH_LANGUAGE_ATT, RESEARCH_MAX_NEW_TOKENS),
        (["--prompt", "Name one colour."], CUSTOM_PROMPT_ID, "Name one colour.", DEFAULT_MAX_NEW_TOKENS),
    ],
)
def test_extraction_records_the_preset_its_text_and_budget(tmp_path, tiny_model_dir, args, prompt_id, text, tokens):
    out = tmp_path / "out"
    proc = run_cli(["extract", "--dataset", "demo", "--model", "tiny-random", "--limit", "1", *args, "--out", str(out)])
    assert proc.returncode == 0, proc.stderr[-3000:]
    attrs = zarr.open_group(out / "features.zarr", mode="r").attrs
    assert (attrs["max_new_tokens"], attrs["prompt_id"], attrs["prompt"]) == (tokens, prompt_id, text)
    assert zarr.open_group(out / "features.zarr", mode="r")["token_ids"].shape[1] == tokens
    images = pq.read_table(out / "catalog" / "images").to_pylist()
    assert [(r["prompt_id"], r["prompt_text"]) for r in images] == [(prompt_id, text)]
