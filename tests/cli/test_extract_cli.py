"""`saldata extract` end to end: the real CLI, the real pipeline, outputs opened with zarr and pyarrow."""

from __future__ import annotations

import numpy as np
import pyarrow.dataset as pads
import pytest
import zarr
from typer.testing import CliRunner

from saldata.cli.main import app
from saldata.schemas.store import STORE_SCHEMA_VERSION
from tests.helpers import DEMO_ARGS, assert_same_output, run_cli

MAX_NEW = 5


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory, tiny_model_dir, demo_root):
    out = tmp_path_factory.mktemp("runs") / "demo"
    args = ["--dataset", "demo", "--model", "tiny-random", "--max-new-tokens", MAX_NEW, "--shard-size", 4]
    proc = run_cli(["extract", *args, "--batch-size", 2, "--out", out])
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, proc


@pytest.mark.slow
def test_summary_says_what_happened(demo_run):
    out, proc = demo_run
    # the summary is the command's report: stdout, like every other command's (#26 point 13)
    assert "done 6" in proc.stdout and "failed 0" in proc.stdout
    assert str(out / "features.zarr") in proc.stdout


@pytest.mark.slow
def test_store_has_the_contracted_arrays_and_attributes(demo_run, tiny_model_dir):
    out, _ = demo_run
    group = zarr.open_group(out / "features.zarr", mode="r")
    assert group.metadata.zarr_format == 3
    d = 64
    expected = {
        "token_ids": ((6, MAX_NEW), "int32"),
        "n_tokens": ((6,), "int32"),
        "hidden": ((6, MAX_NEW, 1, d), "float16"),
        "attn_base": ((6, MAX_NEW, 1, 4, 24, 24), "float16"),
        "attn_highres": ((6, MAX_NEW, 1, 4, 36, 48), "float16"),
        "saliency_map": ((6, 480, 640), "uint8"),
        "fixation_map": ((6, 480, 640), "uint8"),
    }
    for name, (shape, dtype) in expected.items():
        assert group[name].shape == shape and str(group[name].dtype) == dtype, name
    dims = ("image", "token", "layer", "head", "highres_row", "highres_col")
    assert group["attn_highres"].metadata.dimension_names == dims
    attrs = dict(group.attrs)
    assert attrs["schema_version"] == STORE_SCHEMA_VERSION and attrs["model"] == "tiny-random"
    assert attrs["model_path"] == str(tiny_model_dir)
    assert "Describe this image" in attrs["prompt"] and attrs["layers"] == [1] and attrs["heads"] == "all"
    assert attrs["n_decoder_layers"] == 2
    assert attrs["image_size"] == [640, 480] and attrs["base_grid"] == [24, 24] and attrs["highres_grid"] == [36, 48]
    assert group["hidden"].metadata.dimension_names == ("image", "token", "layer", "hidden_dim")
    for key in ("saldata_version", "transformers_version", "created", "config_digest"):
        assert attrs[key]


@pytest.mark.slow
def test_catalog_rows_match_the_store(demo_run):
    out, _ = demo_run
    group = zarr.open_group(out / "features.zarr", mode="r")
    images = pads.dataset(out / "catalog" / "images", format="parquet").to_table().sort_by("idx").to_pylist()
    tokens = (
        pads.dataset(out / "catalog" / "tokens", format="parquet")
        .to_table()
        .sort_by([("idx", "ascending"), ("position", "ascending")])
    )
    assert [r["idx"] for r in images] == list(range(6))
    assert all(r["status"] == "done" and r["error"] is None and r["prompt_id"] == "describe" for r in images)
    assert images[0]["image_id"] == "COCO_val2014_000000000001" and images[0]["dataset"] == "demo"
    assert (images[1]["orig_width"], images[1]["orig_height"]) == (800, 600)
    n_tokens = group["n_tokens"][:]
    assert [r["n_tokens"] for r in images] == n_tokens.tolist()
    token_ids = group["token_ids"][:]
    assert tokens.num_rows == int(n_tokens.sum())
    for idx in range(6):
        stored = tokens.filter(pads.field("idx") == idx).column("token_id").to_pylist()
        assert stored == token_ids[idx, : n_tokens[idx]].tolist()
        assert (token_ids[idx, n_tokens[idx] :] == -1).all()
    assert all(isinstance(r["text"], str) for r in images)


@pytest.mark.slow
def test_stored_maps_are_the_extractor_output(demo_run, tiny_model_dir):
    """The store holds exactly what the extractor computed for that image (to float16)."""
    from saldata.datasets import list_images
    from saldata.extractors.llava_next import CaptureSettings, LlavaNextExtractor
    from saldata.extractors.models import ModelSettings
    from saldata.extractors.prompts import resolve_prompt
    from saldata.pipelines.preprocess import load_image

    out, _ = demo_run
    group = zarr.open_group(out / "features.zarr", mode="r")
    extractor = LlavaNextExtractor(
        tiny_model_dir, ModelSettings("tiny-random"), CaptureSettings(max_new_tokens=MAX_NEW), resolve_prompt()
    )
    idx = 4  # the grayscale demo image
    loaded = load_image(idx, list_images("demo", None, None)[idx], (640, 480))
    (cap,), _ = extractor([loaded.pixels])
    np.testing.assert_array_equal(group["token_ids"][idx], cap.token_ids)
    for name in ("hidden", "attn_base", "attn_highres"):
        np.testing.assert_allclose(group[name][idx].astype(np.float32), getattr(cap, name), rtol=2e-3, atol=1e-6)


def test_missing_dataset_is_a_one_line_error_with_the_layout(tmp_path):
    (tmp_path / "nope").mkdir()  # a root without the layout (a root that is not there: test_help_text.py)
    result = CliRunner().invoke(
        app,
        [
            "extract",
            "--dataset",
            "salicon",
            "--data-root",
            str(tmp_path / "nope"),
            "--model",
            "tiny-random",
            "--out",
            str(tmp_path / "out"),
        ],
    )
    assert result.exit_code == 2  # a mistake found before anything started
    assert "not found" in result.output and "images/{train,val,test}" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "out").exists()


def test_help_reads_well():
    result = CliRunner().invoke(app, ["extract", "--help"])
    assert result.exit_code == 0
    for flag in ("--dataset", "--model", "--max-new-tokens", "--heads", "--batch-size", "--shard-size", "--address"):
        assert flag in result.output


def test_dry_run_prints_the_plan_and_writes_nothing(tmp_path, tiny_model_dir, demo_root):
    out = tmp_path / "never"
    result = CliRunner().invoke(
        app,
        ["extract", "--dataset", "demo", "--model", "tiny-random", "--out", str(out), "--shard-size", "4", "--dry-run"],
    )
    assert result.exit_code == 0, result.output
    assert "images: 6" in result.output and "2 shards of up to 4 images" in result.output
    assert "attn_highres" in result.output and "(6, 64, 1, 4, 36, 48)" in result.output
    assert "KiB" in result.output or "MiB" in result.output
    assert not out.exists()


def test_dry_run_counts_the_layer_axis_in_the_bytes(tmp_path, tiny_model_dir, demo_root):
    """Two layers hold twice one layer's per-token bytes; --layer and --layers together are refused."""
    base = ["extract", "--dataset", "demo", "--model", "tiny-random", "--out", str(tmp_path / "never"), "--dry-run"]
    one = CliRunner().invoke(app, [*base, "--layer", "-1"])
    both = CliRunner().invoke(app, [*base, "--layers", "all"])
    assert one.exit_code == both.exit_code == 0, one.output + both.output
    assert "layers 1," in one.output and "layers 0,1," in both.output
    assert "(6, 64, 2, 4, 36, 48)" in both.output and "(6, 64, 2, 64)" in both.output

    def attn_highres_mib(output: str) -> float:
        line = next(line for line in output.splitlines() if "attn_highres" in line)
        value, unit = line.split("│")[4].split()
        return float(value) * {"KiB": 1 / 1024, "MiB": 1.0, "GiB": 1024.0}[unit]

    assert attn_highres_mib(both.output) == pytest.approx(2 * attn_highres_mib(one.output), rel=0.01)
    refused = CliRunner().invoke(app, [*base, "--layer", "0", "--layers", "0,1"])
    assert refused.exit_code == 2 and "Give --layer or --layers, not both" in refused.output
    bad = CliRunner().invoke(app, [*base, "--layers", "0,x"])
    assert bad.exit_code == 2 and "--layers '0,x' is not a comma list" in bad.output


@pytest.mark.slow
def test_image_processor_on_workers_stores_the_same_output(tmp_path, reference_run):
    """Moving the image processor from the model actor to the decode workers changes where, not what."""
    out = tmp_path / "workers"
    proc = run_cli(["extract", *DEMO_ARGS, "--image-processor-on", "workers", "--out", str(out)])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert_same_output(out, reference_run)


def test_bad_batch_size_is_a_one_line_error(tmp_path):
    args = ["extract", "--dataset", "demo", "--model", "tiny-random", "--out", str(tmp_path / "out"), "--dry-run"]
    result = CliRunner().invoke(app, [*args, "--batch-size", "lots"])
    assert result.exit_code == 2
    assert "--batch-size must be a number of images or 'auto', not 'lots'" in result.output
    assert "Traceback" not in result.output
