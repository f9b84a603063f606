"""The model actor's batches: a batch that runs out of memory is retried in halves, nothing lost."""

from __future__ import annotations

import numpy as np
import torch

from saldata.datasets.base import ImageSource
from saldata.extractors.models import ModelSettings
from saldata.extractors.prompts import resolve_prompt
from saldata.extractors.settings import CaptureSettings
from saldata.pipelines.model_actor import ExtractorActor
from saldata.pipelines.preprocess import LoadedImage


class MemoryBudget:
    """The extractor on a device that holds ``images`` per call: a larger call fails in torch's allocator."""

    def __init__(self, extractor, images: int):
        self.extractor, self.images, self.calls = extractor, images, []

    def __call__(self, inputs):
        self.calls.append(len(inputs))
        if len(inputs) > self.images:
            torch.empty(2**62, dtype=torch.uint8)  # raises: DefaultCPUAllocator can't allocate memory
        return self.extractor(inputs)


def loaded(rgb_images, count):
    return [
        LoadedImage(i, ImageSource("test", "all", f"im{i}", f"/data/im{i}.png"), rgb_images[i % 3], (640, 480), 0.0)
        for i in range(count)
    ]


def test_out_of_memory_batch_is_retried_in_halves(tiny_model_dir, rgb_images):
    actor = ExtractorActor(
        tiny_model_dir, ModelSettings("tiny-random"), CaptureSettings(max_new_tokens=3), resolve_prompt(), 4
    )
    budget = actor.extractor = MemoryBudget(actor.extractor, images=2)
    outcomes = actor.process(loaded(rgb_images, 5))
    assert [o.error for o in outcomes] == [None] * 5
    assert budget.calls == [4, 2, 2, 1]  # 4 failed; then 2, 2 and the last image, at the kept size
    assert actor.stats()["batch_size"] == 2
    (alone,), _ = budget.extractor([rgb_images[0]])
    np.testing.assert_array_equal(outcomes[0].capture.token_ids, alone.token_ids)
    assert np.abs(outcomes[3].capture.attn_highres - alone.attn_highres).max() < 1e-5  # image 3 is image 0


def test_a_single_image_that_does_not_fit_fails_alone(tiny_model_dir, rgb_images):
    actor = ExtractorActor(
        tiny_model_dir, ModelSettings("tiny-random"), CaptureSettings(max_new_tokens=3), resolve_prompt(), 2
    )
    budget = actor.extractor = MemoryBudget(actor.extractor, images=0)
    outcomes = actor.process(loaded(rgb_images, 3))
    assert budget.calls == [2, 1, 1, 1]
    assert all("/data/im" in o.error and "model failed" in o.error for o in outcomes)
    assert all("can't allocate memory" in o.error for o in outcomes)
