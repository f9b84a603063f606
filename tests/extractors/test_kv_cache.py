"""The reserved key/value cache: the same generation as Hugging Face's dynamic cache, without regrowing."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import DynamicCache
from transformers.cache_utils import Cache

from saldata.extractors.kv_cache import ReservedLayer, reserved_cache

NEW_TOKENS = 5


@pytest.fixture(scope="module")
def model(tiny_model_dir):
    from transformers import LlavaNextForConditionalGeneration

    return LlavaNextForConditionalGeneration.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()


@pytest.fixture
def inputs(tiny_model_dir, rgb_images):
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(tiny_model_dir)
    text = processor.apply_chat_template(
        [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Describe."}]}],
        add_generation_prompt=True,
    )
    return processor(images=rgb_images[:2], text=[text] * 2, return_tensors="pt")


def generate(model, inputs, cache):
    with torch.inference_mode():
        return model.generate(
            **inputs,
            cache=cache,
            max_new_tokens=NEW_TOKENS,
            min_new_tokens=NEW_TOKENS,
            do_sample=False,
            output_scores=True,
            return_dict_in_generate=True,
        )


class CountingLayer(ReservedLayer):
    reservations = 0

    def _reserve(self, *args):
        CountingLayer.reservations += 1
        super()._reserve(*args)


@pytest.mark.parametrize("spare", [NEW_TOKENS, 2], ids=["room for all", "outgrown"])
def test_generation_is_bitwise_the_dynamic_cache_one(model, inputs, spare):
    n_layers = model.config.text_config.num_hidden_layers
    expected = generate(model, inputs, DynamicCache())
    CountingLayer.reservations = 0
    cache = Cache(layers=[CountingLayer(inputs["input_ids"].shape[1] + spare) for _ in range(n_layers)])
    got = generate(model, inputs, cache)
    np.testing.assert_array_equal(got.sequences.numpy(), expected.sequences.numpy())
    for step_got, step_expected in zip(got.scores, expected.scores, strict=True):
        assert torch.equal(step_got, step_expected)
    # Once per layer when the reservation holds the whole generation; again where it ran out.
    assert CountingLayer.reservations == n_layers * (1 if spare >= NEW_TOKENS else 2)
    final = cache.layers[0]
    assert final.get_seq_length() == got.sequences.shape[1] - 1  # the last token is never fed back


def test_reserved_cache_has_every_layer_and_room_for_the_generation(model, inputs):
    prompt = inputs["input_ids"].shape[1]
    cache = reserved_cache(model.config.text_config, prompt, NEW_TOKENS)
    got = generate(model, inputs, cache)
    np.testing.assert_array_equal(got.sequences.numpy(), generate(model, inputs, DynamicCache()).sequences.numpy())
    assert len(cache.layers) == model.config.text_config.num_hidden_layers
    assert all(layer._key_buffer.shape[-2] == prompt + NEW_TOKENS for layer in cache.layers)  # never regrown


def test_views_follow_crop_and_batch_selection():
    layer = ReservedLayer(capacity=8)
    first, second, third = torch.randn(3, 2, 5, 4), torch.randn(3, 2, 1, 4), torch.randn(2, 2, 2, 4)
    layer.update(first, first.clone())
    layer.crop(-2)
    keys, _ = layer.update(second, second.clone())
    assert torch.equal(keys, torch.cat([first[..., :3, :], second], dim=-2))
    layer.batch_select_indices(torch.tensor([2, 0]))  # replaces the views with a new tensor
    keys, values = layer.update(third, third.clone())
    expected = torch.cat([first[[2, 0], :, :3], second[[2, 0]], third], dim=-2)
    assert torch.equal(keys, expected) and torch.equal(values, expected)
