"""Model resolution: random models built offline and deterministically, clear errors otherwise."""

from __future__ import annotations

import hashlib
import time

import pytest

from saldata.errors import ModelLoadError
from saldata.extractors.models import resolve_model_dir
from saldata.extractors.random_models import GRID_PINPOINTS, IMAGE_SIZE, PATCH_SIZE, random_model_dir


def _digest(path):
    return hashlib.sha256((path / "model.safetensors").read_bytes()).hexdigest()


def test_tiny_random_has_the_real_geometry(tiny_model_dir):
    from transformers import AutoConfig, AutoProcessor

    config = AutoConfig.from_pretrained(tiny_model_dir)
    processor = AutoProcessor.from_pretrained(tiny_model_dir)
    assert (config.vision_config.image_size, config.vision_config.patch_size) == (IMAGE_SIZE, PATCH_SIZE) == (336, 14)
    assert config.image_grid_pinpoints == GRID_PINPOINTS
    assert config.vision_feature_layer == -2 and config.vision_feature_select_strategy == "default"
    assert processor.num_additional_image_tokens == 1
    assert "<|start_header_id|>assistant<|end_header_id|>" in processor.apply_chat_template(
        [{"role": "user", "content": [{"type": "text", "text": "hi"}]}], add_generation_prompt=True
    )


def test_tiny_random_is_deterministic(tiny_model_dir, tmp_path):

    rebuilt = random_model_dir("tiny-random", cache_dir=tmp_path)
    assert rebuilt != tiny_model_dir
    assert _digest(rebuilt) == _digest(tiny_model_dir)
    assert (rebuilt / "tokenizer.json").read_text() == (tiny_model_dir / "tokenizer.json").read_text()


def test_second_resolution_reuses_the_cache(tiny_model_dir):
    before = (tiny_model_dir / "model.safetensors").stat().st_mtime_ns
    assert resolve_model_dir("tiny-random") == tiny_model_dir
    assert (tiny_model_dir / "model.safetensors").stat().st_mtime_ns == before


def test_local_directory_loads_through_the_same_path(tiny_model_dir):
    assert resolve_model_dir(str(tiny_model_dir)) == tiny_model_dir.resolve()


def test_unreachable_hub_id_fails_fast_naming_the_way_out(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.perf_counter()
    with pytest.raises(ModelLoadError) as err:
        resolve_model_dir("llava-hf/no-such-model-for-saldata-tests")
    assert time.perf_counter() - start < 30
    message = str(err.value)
    assert "llava-hf/no-such-model-for-saldata-tests" in message
    assert "tiny-random" in message and "local directory" in message


def test_directory_without_config_is_refused(tmp_path):
    with pytest.raises(ModelLoadError, match="config.json"):
        resolve_model_dir(str(tmp_path))
