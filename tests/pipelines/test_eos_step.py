"""The EOS step through the pipeline: stored at row n_tokens, named by images.ended_with_eos,
checked by verify; the model's own capture of it is compared with HF eager in test_capture.py."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import zarr
from typer.testing import CliRunner

from saldata.cli.main import app
from saldata.extractors.llava_next import LlavaNextExtractor
from saldata.extractors.models import ModelSettings
from saldata.extractors.prompts import resolve_prompt
from saldata.extractors.settings import CaptureSettings
from saldata.schemas.store import TOKEN_PAD


def test_the_eos_step_is_row_n_tokens_and_the_catalog_says_so(demo_output_eos, eos_model_dir):
    group = zarr.open_group(demo_output_eos / "features.zarr", mode="r")
    eos = int(__import__("json").loads((eos_model_dir / "generation_config.json").read_text())["eos_token_id"])
    images = pq.read_table(demo_output_eos / "catalog" / "images").sort_by("idx").to_pylist()
    ended = [r for r in images if r["ended_with_eos"]]
    ran_out = [r for r in images if r["ended_with_eos"] is False]
    assert ended and ran_out, "the fixture must give both kinds"
    assert images[0]["ended_with_eos"] and images[0]["n_tokens"] <= 2
    for row in images:
        idx, n = row["idx"], row["n_tokens"]
        ids = group["token_ids"][idx]
        assert eos not in ids[:n].tolist()
        if row["ended_with_eos"]:
            assert int(ids[n]) == eos and (ids[n + 1 :] == TOKEN_PAD).all()
            for name in ("hidden", "attn_base", "attn_highres"):
                assert np.abs(group[name][idx, n]).max() > 0, name  # the EOS step's values are stored
                assert not np.asarray(group[name][idx, n + 1 :]).any(), name
            maps = group["attn_highres"][idx, n].astype(np.float32)
            assert 0 < maps.sum() <= 1.0 * maps.shape[0] * maps.shape[1] + 1e-3
        else:
            assert n == 12 and len(ids) == 12  # ran to --max-new-tokens
    assert CliRunner().invoke(app, ["verify", str(demo_output_eos)]).exit_code == 0


def test_the_stored_eos_row_is_the_extractor_s(demo_output_eos, eos_model_dir):
    """Row n_tokens is what the extractor captured for the EOS step (float16 of it)."""
    from saldata.datasets import list_images
    from saldata.pipelines.preprocess import load_image

    group = zarr.open_group(demo_output_eos / "features.zarr", mode="r")
    extractor = LlavaNextExtractor(
        eos_model_dir,
        ModelSettings(str(eos_model_dir)),
        CaptureSettings(max_new_tokens=12, layers="all"),
        resolve_prompt(),
    )
    loaded = load_image(0, list_images("demo", None, None)[0], (640, 480))
    (cap,), _ = extractor([loaded.pixels])
    n = int(group["n_tokens"][0])
    assert cap.ended_with_eos and len(cap.token_ids) == n and len(cap.hidden) == n + 1
    np.testing.assert_allclose(
        group["attn_highres"][0, n].astype(np.float32), cap.attn_highres[n], rtol=2e-3, atol=1e-6
    )
    np.testing.assert_allclose(group["hidden"][0, n].astype(np.float32), cap.hidden[n], rtol=2e-3, atol=1e-3)


def test_verify_rule_for_the_row_after_the_last_token():
    """A writer that drops the EOS row, or leaves a token past n_tokens without the flag, is named.
    (A damaged file is caught earlier by its checksum; this is the check of what a writer wrote.)"""
    from saldata.pipelines.verify import _eos_row_problem

    ids = np.array([5, 6, 2, TOKEN_PAD], np.int32)
    assert _eos_row_problem({"n_tokens": 2, "ended_with_eos": True}, ids) is None
    assert _eos_row_problem({"n_tokens": 3, "ended_with_eos": False}, ids) is None
    assert "is padding" in _eos_row_problem({"n_tokens": 3, "ended_with_eos": True}, ids)
    assert "ended_with_eos is false" in _eos_row_problem({"n_tokens": 2, "ended_with_eos": False}, ids)
    assert _eos_row_problem({"n_tokens": 4, "ended_with_eos": False}, ids) is None  # ran to the end
    assert _eos_row_problem({"n_tokens": 0, "ended_with_eos": None}, ids) is None  # a failed image
