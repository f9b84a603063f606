"""The Ray pipeline in-process: head-averaged maps, a broken image among good ones, another size,
the default batch size."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
import zarr
from PIL import Image

from saldata.extractors.llava_next import CaptureSettings
from saldata.extractors.models import ModelSettings
from saldata.extractors.prompts import resolve_prompt
from saldata.pipelines.config import ExtractConfig
from saldata.pipelines.extract import plan_run, run_extraction

pytestmark = pytest.mark.slow  # runs the pipeline through Ray


@pytest.fixture
def folder(tmp_path):
    rng = np.random.default_rng(3)
    root = tmp_path / "images"
    (root / "sub").mkdir(parents=True)
    for i in range(4):
        Image.fromarray(rng.integers(0, 256, (200 + 10 * i, 300, 3), dtype=np.uint8)).save(root / f"img{i}.png")
    (root / "sub" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    return root


def test_folder_with_a_broken_image_and_mean_heads(ray_local, folder, tmp_path, tiny_model_dir):
    out = tmp_path / "out"
    config = ExtractConfig(
        dataset=f"folder:{folder}",
        out=out,
        model=ModelSettings("tiny-random"),
        capture=CaptureSettings(max_new_tokens=3, heads="mean"),
        prompt=resolve_prompt("objects"),
        image_size=(336, 336),
        shard_size=2,
    )
    seen = []
    summary = run_extraction(plan_run(config), on_shard=seen.append)
    assert (summary.done, summary.failed, summary.images) == (4, 1, 5)
    assert summary.batch_sizes == (1,)  # --batch-size auto on a CPU
    end = json.loads(next((out / "journal").glob("*.jsonl")).read_text().splitlines()[-1])
    assert end["event"] == "end" and end["batch_sizes"] == [1]
    assert sorted(s.index for s in seen) == [0, 1, 2]

    group = zarr.open_group(out / "features.zarr", mode="r")
    assert group["attn_base"].shape == (5, 3, 1, 1, 24, 24)  # one layer, heads averaged
    assert group["attn_highres"].shape == (5, 3, 1, 1, 24, 24)
    assert dict(group.attrs)["heads"] == "mean" and dict(group.attrs)["image_size"] == [336, 336]

    images = pq.read_table(out / "catalog" / "images").sort_by("idx").to_pylist()
    broken = [r for r in images if r["status"] == "failed"]
    assert len(broken) == 1 and broken[0]["image_id"] == "sub/broken.jpg"
    assert "broken.jpg" in broken[0]["error"] and broken[0]["n_tokens"] == 0
    idx = broken[0]["idx"]
    assert (group["token_ids"][idx] == -1).all() and group["n_tokens"][idx] == 0
    done = [r["idx"] for r in images if r["status"] == "done"]
    assert (group["n_tokens"][done] == 3).all()
    assert all(r["prompt_id"] == "objects" for r in images)
