"""The two decode paths (settings.DECODE_MODES) give the same maps.

``chunk`` (the default) generates uncaptured and computes every row in one forward of the
generated tokens; ``steps`` records a row inside each decoding step. test_capture.py holds the
default against Hugging Face eager ``generate``; this file holds the old path against the new one,
on the sharpened model (conftest.py; see test_capture.py: a wrong row or key moves its maps by far more than
the tolerance), with the images of one batch stopping at different steps.
"""

from __future__ import annotations

import numpy as np
import pytest

from saldata.extractors.settings import DECODE_CHUNK, DECODE_STEPS
from tests.extractors.test_capture import ATTN_TOL, HIDDEN_TOL, SIZES, images_of_size, make_extractor


def _stopping_apart(model_dir, images, **capture):
    """An extractor per decode path whose EOS is a token the batch's images first generate at different steps."""
    free, _ = make_extractor(model_dir, **capture)(images)
    candidates = {int(t) for cap in free for t in cap.token_ids}

    def rows(token, cap):  # rows the image would keep were ``token`` its EOS
        hits = np.flatnonzero(cap.token_ids == token)
        return int(hits[0]) + 1 if len(hits) else len(cap.token_ids)

    eos = next(t for t in sorted(candidates) if len({rows(t, cap) for cap in free}) == len(free))
    extractors = {}
    for decode in (DECODE_CHUNK, DECODE_STEPS):
        extractor = make_extractor(model_dir, decode=decode, **capture)
        extractor.eos_ids = {eos}
        extractor.generation_kwargs["eos_token_id"] = [eos]
        extractors[decode] = extractor
    return extractors


def _assert_paths_agree(extractors, images):
    shapes = extractors[DECODE_CHUNK].map_shapes(extractors[DECODE_CHUNK].layout(SIZES["640x480"]))
    outs = {key: {n: np.full((len(images), *s), 7, np.float32) for n, s in shapes.items()} for key in extractors}
    captures = {key: extractor(images, out=outs[key])[0] for key, extractor in extractors.items()}
    chunk, steps = captures[DECODE_CHUNK], captures[DECODE_STEPS]
    assert [c.rows for c in chunk] == [c.rows for c in steps]
    assert len({c.rows for c in chunk}) == len(images), "the images must stop at different steps"
    assert any(c.ended_with_eos for c in chunk)
    for a, b in zip(chunk, steps):
        np.testing.assert_array_equal(a.token_ids, b.token_ids)
        assert a.eos_id == b.eos_id
    for name in shapes:
        tol = HIDDEN_TOL if name == "hidden" else ATTN_TOL
        a, b = outs[DECODE_CHUNK][name], outs[DECODE_STEPS][name]
        for row, cap in enumerate(chunk):  # every row, row 0 and the EOS row included; zeros past the last
            np.testing.assert_allclose(a[row, : cap.rows], b[row, : cap.rows], rtol=0, atol=tol, err_msg=name)
            assert not np.any(a[row, cap.rows :]) and not np.any(b[row, cap.rows :]), name
            assert np.abs(a[row, : cap.rows]).sum() > 0, name


@pytest.mark.parametrize("heads", ["all", "mean"])
def test_chunk_and_steps_decode_agree_on_every_row(sharp_model_dir, heads):
    images = images_of_size(SIZES["640x480"], n=3)
    _assert_paths_agree(_stopping_apart(sharp_model_dir, images, layers="all", heads=heads), images)


@pytest.mark.slow
def test_chunk_and_steps_decode_agree_on_mid_random(saldata_cache):
    from saldata.extractors.models import resolve_model_dir

    images = images_of_size(SIZES["640x480"], n=2)
    _assert_paths_agree(_stopping_apart(resolve_model_dir("mid-random"), images, layers="all", heads="all"), images)


def test_an_unknown_decode_path_is_refused():
    from saldata.errors import ConfigError
    from saldata.extractors.settings import CaptureSettings

    with pytest.raises(ConfigError, match="--decode"):
        CaptureSettings(decode="graph")
