"""Captured tokens, attention rows and hidden states against plain HF eager ``generate``."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from saldata.extractors.llava_next import CaptureSettings, LlavaNextExtractor
from saldata.extractors.models import ModelSettings
from saldata.extractors.prompts import resolve_prompt

MAX_NEW = 6
ATTN_TOL, HIDDEN_TOL = 1e-5, 1e-4


@pytest.fixture(scope="module")
def reference(tiny_model_dir):
    from transformers import LlavaNextForConditionalGeneration

    return LlavaNextForConditionalGeneration.from_pretrained(
        tiny_model_dir, attn_implementation="eager", dtype=torch.float32
    ).eval()


def make_extractor(model_dir, **capture) -> LlavaNextExtractor:
    settings = CaptureSettings(max_new_tokens=capture.pop("max_new_tokens", MAX_NEW), **capture)
    return LlavaNextExtractor(
        model_dir, ModelSettings("tiny-random", dtype="float32", device="cpu"), settings, resolve_prompt()
    )


def eager_generate(reference, extractor, images):
    inputs = extractor.processor(
        images=images, text=[extractor.prompt_text] * len(images), return_tensors="pt", padding=True
    )
    with torch.inference_mode():
        out = reference.generate(
            **inputs,
            max_new_tokens=MAX_NEW,
            do_sample=False,
            num_beams=1,
            output_attentions=True,
            output_hidden_states=True,
            return_dict_in_generate=True,
        )
    return inputs, out


def expected_maps(inputs, out, extractor, row, layer, mean_heads):
    """The research convention, read off HF's outputs: attentions[k][l][:, :, -1], hidden_states[k][l+1][:, -1]."""
    layout = extractor.layout((640, 480))
    image_pos = (inputs["input_ids"][row] == extractor.config.image_token_id).nonzero()[:, 0]
    base, highres, hidden = [], [], []
    for step in range(len(out.attentions)):
        att = out.attentions[step][layer][row, :, -1][:, image_pos]
        if mean_heads:
            att = att.mean(dim=0, keepdim=True)
        base.append(att[:, torch.as_tensor(layout.base_positions.ravel())].reshape(att.shape[0], *layout.base_grid))
        highres.append(
            att[:, torch.as_tensor(layout.highres_positions.ravel())].reshape(att.shape[0], *layout.highres_grid)
        )
        hidden.append(out.hidden_states[step][layer + 1][row, -1])
    return torch.stack(base).numpy(), torch.stack(highres).numpy(), torch.stack(hidden).numpy()


@pytest.mark.parametrize(("layer", "heads"), [(-1, "all"), (0, "all"), (-1, "mean")])
def test_capture_matches_eager_generate(tiny_model_dir, reference, rgb_images, layer, heads):
    extractor = make_extractor(tiny_model_dir, layer=layer, heads=heads)
    images = rgb_images[:2]
    captures, _ = extractor(images)
    inputs, out = eager_generate(reference, extractor, images)
    generated = out.sequences[:, inputs["input_ids"].shape[1] :].numpy()
    n_layers = reference.config.text_config.num_hidden_layers
    for row, cap in enumerate(captures):
        np.testing.assert_array_equal(cap.token_ids, generated[row][: len(cap.token_ids)])
        assert len(cap.token_ids) == MAX_NEW  # the random model emits no EOS in 6 steps
        base, highres, hidden = expected_maps(inputs, out, extractor, row, layer % n_layers, heads == "mean")
        assert cap.attn_base.shape == base.shape and cap.attn_highres.shape == highres.shape
        assert np.abs(cap.attn_base - base).max() < ATTN_TOL
        assert np.abs(cap.attn_highres - highres).max() < ATTN_TOL
        assert np.abs(cap.hidden - hidden).max() < HIDDEN_TOL


def test_maps_are_nontrivial(tiny_model_dir, rgb_images):
    """Guard against a capture that returns zeros or uniform rows and would still 'match' a broken reference."""
    (cap,) = make_extractor(tiny_model_dir)(rgb_images[:1])[0]
    total = cap.attn_base.sum(axis=(-1, -2)) + cap.attn_highres.sum(axis=(-1, -2))
    assert (total > 0.1).all() and (total <= 1.0 + 1e-5).all()
    assert cap.attn_highres.std() > 0


def test_batch_does_not_change_an_image_outputs(tiny_model_dir, rgb_images):
    extractor = make_extractor(tiny_model_dir)
    batched, _ = extractor(rgb_images)
    for image, together in zip(rgb_images, batched, strict=True):
        (alone,), _ = extractor([image])
        np.testing.assert_array_equal(alone.token_ids, together.token_ids)
        assert np.abs(alone.attn_base - together.attn_base).max() < ATTN_TOL
        assert np.abs(alone.attn_highres - together.attn_highres).max() < ATTN_TOL
        assert np.abs(alone.hidden - together.hidden).max() < HIDDEN_TOL


def test_generation_stops_at_eos_and_eos_is_not_stored(tiny_model_dir, rgb_images):
    extractor = make_extractor(tiny_model_dir)
    (free,), _ = extractor(rgb_images[:1])
    stop_at = 3
    eos = int(free.token_ids[stop_at])
    assert eos not in free.token_ids[:stop_at].tolist()
    extractor.eos_ids = {eos}
    extractor.generation_kwargs["eos_token_id"] = [eos]
    (cut,), _ = extractor(rgb_images[:1])
    np.testing.assert_array_equal(cut.token_ids, free.token_ids[:stop_at])
    assert cut.attn_base.shape[0] == cut.hidden.shape[0] == len(cut.tokens) == stop_at
    assert np.abs(cut.attn_base - free.attn_base[:stop_at]).max() < ATTN_TOL


def test_layer_out_of_range_is_a_clear_error(tiny_model_dir):
    from saldata.errors import ConfigError

    with pytest.raises(ConfigError, match="decoder layers"):
        make_extractor(tiny_model_dir, layer=7)
