"""Captured tokens, attention rows and hidden states against plain HF eager ``generate``.

The tiny random model's attention is nearly uniform (every image column ~4.1e-4, std/mean ~0.02),
so on it alone a scaled softmax, a dropped key or float16 rounding all move the maps by less
than a loose tolerance. The comparison therefore also runs on a copy of it whose query and key
projections are scaled (``SHARPEN``): the same architecture and geometry, with attention peaked
enough (std/mean > 0.2, checked) that any of those mistakes moves the maps by orders of
magnitude more than ``ATTN_TOL``, which an exact float32 capture meets.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from saldata.extractors.llava_next import CaptureSettings, LlavaNextExtractor
from saldata.extractors.models import ModelSettings
from saldata.extractors.prompts import resolve_prompt
from tests.extractors.conftest import SHARPEN  # noqa: F401  (the module doc names it)

MAX_NEW = 6
# float32 capture vs float32 eager: observed <= 2.1e-9 on the sharpened model, ~1e-10 on tiny-random.
ATTN_TOL, HIDDEN_TOL = 1e-8, 1e-4
MIN_SHARPNESS = 0.2  # std/mean of the reference's per-head image attention
SIZES = {"640x480": (640, 480), "448x800": (448, 800)}  # landscape and portrait: different any-res grids


def _load_eager(model_dir):
    from transformers import LlavaNextForConditionalGeneration

    return LlavaNextForConditionalGeneration.from_pretrained(
        model_dir, attn_implementation="eager", dtype=torch.float32
    ).eval()


@pytest.fixture(scope="module")
def reference(tiny_model_dir):
    return _load_eager(tiny_model_dir)


@pytest.fixture(scope="module")
def sharp_reference(sharp_model_dir):
    return _load_eager(sharp_model_dir)


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


def image_attention(inputs, out, extractor, row, layer):
    """(steps, heads, n_image_tokens): every head's last-row attention over the image tokens, from HF."""
    image_pos = (inputs["input_ids"][row] == extractor.config.image_token_id).nonzero()[:, 0]
    return torch.stack([out.attentions[step][layer][row, :, -1][:, image_pos] for step in range(len(out.attentions))])


def expected_maps(inputs, out, extractor, row, layer, mean_heads, size=(640, 480)):
    """The research convention, read off HF's outputs: attentions[k][l][:, :, -1], hidden_states[k][l+1][:, -1]."""
    layout = extractor.layout(size)
    att = image_attention(inputs, out, extractor, row, layer)
    if mean_heads:
        att = att.mean(dim=1, keepdim=True)
    steps, heads = att.shape[:2]
    base = att[..., torch.as_tensor(layout.base_positions.ravel())].reshape(steps, heads, *layout.base_grid)
    highres = att[..., torch.as_tensor(layout.highres_positions.ravel())].reshape(steps, heads, *layout.highres_grid)
    hidden = torch.stack([out.hidden_states[step][layer + 1][row, -1] for step in range(steps)])
    return base.numpy(), highres.numpy(), hidden.numpy()


def sharpness(attention: torch.Tensor) -> float:
    """std/mean of the attention values; ~0.02 for tiny-random, whose attention is nearly uniform."""
    values = attention.double()
    return float(values.std() / values.mean())


def images_of_size(size, n=2, seed=7):
    width, height = size
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for _ in range(n)]


def assert_capture_matches(model_dir, reference, images, size, layers, heads):
    """Tokens equal and, for every captured layer, every attention value within ATTN_TOL and hidden
    states within HIDDEN_TOL of HF's; returns the least sharpness seen."""
    extractor = make_extractor(model_dir, layers=layers, heads=heads)
    captures, _ = extractor(images)
    inputs, out = eager_generate(reference, extractor, images)
    generated = out.sequences[:, inputs["input_ids"].shape[1] :].numpy()
    n_layers = reference.config.text_config.num_hidden_layers
    expected_layers = sorted({layer % n_layers for layer in layers}) if layers != "all" else list(range(n_layers))
    assert list(extractor.layers) == expected_layers
    sharpest = np.inf
    for row, cap in enumerate(captures):
        np.testing.assert_array_equal(cap.token_ids, generated[row][: len(cap.token_ids)])
        assert len(cap.token_ids) == MAX_NEW  # the random model emits no EOS in 6 steps
        assert cap.attn_base.shape[1] == cap.attn_highres.shape[1] == cap.hidden.shape[1] == len(expected_layers)
        assert cap.attn_base.dtype == cap.attn_highres.dtype == np.float32
        for position, layer in enumerate(expected_layers):
            sharpest = min(sharpest, sharpness(image_attention(inputs, out, extractor, row, layer)))
            base, highres, hidden = expected_maps(inputs, out, extractor, row, layer, heads == "mean", size)
            where = f"image {row}, layer {layer}"
            assert cap.attn_base[:, position].shape == base.shape
            assert cap.attn_highres[:, position].shape == highres.shape
            np.testing.assert_allclose(cap.attn_base[:, position], base, rtol=0, atol=ATTN_TOL, err_msg=where)
            np.testing.assert_allclose(cap.attn_highres[:, position], highres, rtol=0, atol=ATTN_TOL, err_msg=where)
            assert np.abs(cap.hidden[:, position] - hidden).max() < HIDDEN_TOL, where
    return sharpest


@pytest.mark.parametrize(
    ("layers", "heads", "size"),
    [
        ((-1,), "all", "640x480"),
        ((0,), "all", "640x480"),
        ((-1,), "mean", "640x480"),
        ((-1,), "all", "448x800"),
        ((0,), "mean", "448x800"),
        ("all", "all", "640x480"),
        ((-1, 0), "mean", "448x800"),
    ],
)
def test_capture_matches_eager_generate_on_sharp_attention(sharp_model_dir, sharp_reference, layers, heads, size):
    """Catches a mis-scaled softmax, a dropped key, float16 rounding and a layer stored at another
    layer's position (each fails by 1e-7 or far more)."""
    sharp = assert_capture_matches(
        sharp_model_dir, sharp_reference, images_of_size(SIZES[size]), SIZES[size], layers, heads
    )
    assert sharp > MIN_SHARPNESS, (
        f"the test model's attention is too uniform to tell a wrong capture (std/mean {sharp:.3f})"
    )


def test_capture_matches_eager_generate_on_tiny_random(tiny_model_dir, reference):
    """The model the demo and the CLI tests run, unmodified (its maps are nearly flat: see the module doc)."""
    assert_capture_matches(tiny_model_dir, reference, images_of_size(SIZES["640x480"]), SIZES["640x480"], (-1,), "all")


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


def test_generation_stops_at_eos_and_keeps_the_eos_step(sharp_model_dir, sharp_reference):
    """Generation ending with EOS: n_tokens excludes it, and the step that produced it is one more
    row, equal to HF eager's step n for every captured layer (the research trainer's last row)."""
    images = images_of_size(SIZES["640x480"])
    free = make_extractor(sharp_model_dir, layers="all")
    (unstopped, _), _ = free(images)
    stop_at = 3
    eos = int(unstopped.token_ids[stop_at])
    assert eos not in unstopped.token_ids[:stop_at].tolist()
    assert unstopped.eos_id is None and len(unstopped.hidden) == MAX_NEW  # ran to the end: no extra row
    cut_extractor = make_extractor(sharp_model_dir, layers="all")
    cut_extractor.eos_ids = {eos}
    cut_extractor.generation_kwargs["eos_token_id"] = [eos]
    (cut, _), _ = cut_extractor(images)
    np.testing.assert_array_equal(cut.token_ids, unstopped.token_ids[:stop_at])
    assert len(cut.tokens) == stop_at and cut.eos_id == eos and cut.ended_with_eos
    assert cut.attn_base.shape[0] == cut.attn_highres.shape[0] == cut.hidden.shape[0] == stop_at + 1

    inputs, out = eager_generate(sharp_reference, cut_extractor, images)
    assert int(out.sequences[0, inputs["input_ids"].shape[1] + stop_at]) == eos
    for position, layer in enumerate(cut_extractor.layers):
        base, highres, hidden = expected_maps(inputs, out, cut_extractor, 0, layer, False)
        np.testing.assert_allclose(cut.attn_base[:, position], base[: stop_at + 1], rtol=0, atol=ATTN_TOL)
        np.testing.assert_allclose(cut.attn_highres[:, position], highres[: stop_at + 1], rtol=0, atol=ATTN_TOL)
        assert np.abs(cut.hidden[:, position] - hidden[: stop_at + 1]).max() < HIDDEN_TOL


def test_layer_out_of_range_is_a_clear_error(tiny_model_dir):
    from saldata.errors import ConfigError

    with pytest.raises(ConfigError, match="decoder layers"):
        make_extractor(tiny_model_dir, layers=(7,))


@pytest.mark.slow
def test_every_layer_of_mid_random_matches_eager_generate(saldata_cache):
    """The benchmark's model (8 layers, 8 heads, hidden 512): all its layers in one pass, each exact."""
    from saldata.extractors.models import resolve_model_dir

    model_dir = resolve_model_dir("mid-random")
    reference = _load_eager(model_dir)
    images = images_of_size(SIZES["640x480"], n=1)
    assert_capture_matches(model_dir, reference, images, SIZES["640x480"], "all", "all")


@pytest.mark.parametrize("heads", ["all", "mean"])
@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_device_buffers_and_host_arrays_capture_the_same_bits(sharp_model_dir, heads, dtype):
    """The GPU's path (capture into device buffers holding both grids, one copy out per batch) run on
    the CPU equals the CPU's path (capture straight into the caller's arrays) bit for bit, in the
    store's float16 as in float32; rows past each image's last row are the fill value 0, also in
    arrays that held other data before (the model actor reuses its block)."""
    images = images_of_size(SIZES["640x480"], n=3)
    extractors = {}
    for device_buffers in (True, False):
        extractor = make_extractor(sharp_model_dir, layers="all", heads=heads)
        extractor.device_buffers = device_buffers
        free, _ = extractor(images)
        eos = int(free[0].token_ids[2])  # the images stop where this token first comes, if it does
        extractor.eos_ids = {eos}
        extractor.generation_kwargs["eos_token_id"] = [eos]
        extractors[device_buffers] = extractor
    shapes = extractors[True].map_shapes(extractors[True].layout((640, 480)))
    outs = {key: {n: np.full((len(images), *s), 7, dtype) for n, s in shapes.items()} for key in extractors}
    captures = {key: extractor(images, out=outs[key])[0] for key, extractor in extractors.items()}
    assert [c.rows for c in captures[True]] == [c.rows for c in captures[False]]
    assert captures[True][0].rows == 3  # stopped at EOS, whose step is kept
    for name in shapes:
        np.testing.assert_array_equal(outs[True][name], outs[False][name], err_msg=name)
        for row, cap in enumerate(captures[True]):
            assert not np.any(outs[True][name][row, cap.rows :]), name
            assert np.all(np.isfinite(outs[True][name][row, : cap.rows]))


def test_the_wrapped_kernel_sees_its_own_implementation_name(tiny_model_dir):
    """transformers' flash path looks its kernel up by ``module.config._attn_implementation``; under the
    capture that must still name the wrapped kernel, or transformers 5.2x fetches a Hub 'kernel' named
    after the capture. A probe kernel (sdpa underneath) records what it is shown."""
    from transformers import AttentionInterface, LlavaNextForConditionalGeneration
    from transformers.integrations.sdpa_attention import sdpa_attention_forward
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, AttentionMaskInterface

    from saldata.extractors.capture import capture_implementation

    seen = []

    def probe(module, query, key, value, attention_mask, *args, **kwargs):
        seen.append((module.config._attn_implementation, module.layer_idx, module.is_causal))
        return sdpa_attention_forward(module, query, key, value, attention_mask, *args, **kwargs)

    AttentionInterface.register("saldata_test_probe", probe)
    AttentionMaskInterface.register("saldata_test_probe", ALL_MASK_ATTENTION_FUNCTIONS._global_mapping["sdpa"])
    name = capture_implementation("saldata_test_probe")
    model = LlavaNextForConditionalGeneration.from_pretrained(tiny_model_dir, attn_implementation=name).eval()
    assert model.config.text_config._attn_implementation == name
    with torch.inference_mode():
        model.model.language_model(input_ids=torch.tensor([[1, 2, 3]]))
    assert seen == [("saldata_test_probe", layer, True) for layer in range(len(model.model.language_model.layers))]
