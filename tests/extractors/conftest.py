"""Fixtures of the capture tests: the sharpened tiny model (test_capture.py's module doc says why)."""

from __future__ import annotations

import pytest
import torch

# q and k projections x4: every score x16. Sharp (std/mean 0.4-0.5 over the image columns) while
# float32 still agrees to ~2e-9; x8 peaks at 0.27 but drifts to 2e-7.
SHARPEN = 4.0


@pytest.fixture(scope="session")
def sharp_model_dir(tiny_model_dir, tmp_path_factory):
    """tiny-random with every decoder layer's q and k projections scaled by SHARPEN, saved like any model."""
    from transformers import AutoProcessor, LlavaNextForConditionalGeneration

    model = LlavaNextForConditionalGeneration.from_pretrained(tiny_model_dir, dtype=torch.float32)
    with torch.no_grad():
        for layer in model.model.language_model.layers:
            layer.self_attn.q_proj.weight.mul_(SHARPEN)
            layer.self_attn.k_proj.weight.mul_(SHARPEN)
    out = tmp_path_factory.mktemp("sharp-model")
    model.save_pretrained(out)
    AutoProcessor.from_pretrained(tiny_model_dir).save_pretrained(out)
    return out
