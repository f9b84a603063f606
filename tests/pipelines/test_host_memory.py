"""The host-memory budget of the maps: its arithmetic, its refusals, and a run held to a small one."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from saldata.cli.main import app
from saldata.errors import ConfigError
from saldata.pipelines.host_memory import MapsBudget, parse_bytes
from saldata.schemas.store import Geometry
from tests.helpers import DEMO_ARGS, assert_same_output, run_cli

# tiny-random at DEMO_ARGS: 4 tokens, 1 layer, 4 heads, hidden 64, grids 24x24 + 36x48, float16
TINY_IMAGE_BYTES = 4 * 1 * 64 * 2 + 4 * 1 * 4 * 24 * 24 * 2 + 4 * 1 * 4 * 36 * 48 * 2


def geometry(n_images=100, tokens=64, layers=32, heads=32, hidden=4096) -> Geometry:
    return Geometry(n_images, tokens, hidden, heads, (24, 24), (36, 48), (640, 480), layers)


def test_budget_arithmetic_of_an_8b_all_layers_all_heads_capture():
    budget = MapsBudget.plan(geometry(), shard_size=64, budget=64 * 10**9, given=True)
    assert budget.per_image == {
        "hidden": 64 * 32 * 4096 * 2,
        "attn_base": 64 * 32 * 32 * 576 * 2,
        "attn_highres": 64 * 32 * 32 * 1728 * 2,
    }
    assert budget.image_bytes == 318_767_104  # per image in the store's float16, uncompressed
    assert budget.shard_bytes == 64 * budget.image_bytes
    assert budget.shards_in_flight == 64 * 10**9 // budget.shard_bytes - 1 == 2
    assert budget.peak == 3 * budget.shard_bytes <= 64 * 10**9
    budget.check()


@pytest.mark.parametrize(
    ("budget", "in_flight"), [(2 * TINY_IMAGE_BYTES, 1), (3 * TINY_IMAGE_BYTES - 1, 1), (5 * TINY_IMAGE_BYTES, 4)]
)
def test_shards_in_flight_leave_one_block_to_the_model_actor(budget, in_flight):
    plan = MapsBudget.plan(geometry(6, 4, 1, 4, 64), shard_size=1, budget=budget, given=True)
    assert plan.image_bytes == TINY_IMAGE_BYTES
    assert plan.shards_in_flight == in_flight and plan.peak <= budget


def test_a_budget_below_two_shards_is_refused_with_a_shard_size_that_fits():
    plan = MapsBudget.plan(geometry(), shard_size=64, budget=32 * 10**9, given=True)
    with pytest.raises(ConfigError) as refused:
        plan.check()
    message = str(refused.value)
    assert "--host-memory is 29.8 GiB" in message and "64 images" in message
    assert "Use --shard-size 50 or less" in message  # 2 x 50 x 319 MB fits 32 GB, 2 x 51 does not
    MapsBudget.plan(geometry(), shard_size=50, budget=32 * 10**9, given=True).check()
    with pytest.raises(ConfigError):
        MapsBudget.plan(geometry(), shard_size=51, budget=32 * 10**9, given=True).check()
    assert "\n" not in message


def test_the_shard_size_never_counts_more_images_than_the_run_has():
    assert MapsBudget.plan(geometry(n_images=3), shard_size=64, budget=1, given=True).shard_size == 3


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("32GB", 32 * 10**9),
        ("2.5G", 2_500_000_000),
        ("512MiB", 512 * 2**20),
        ("1000", 1000),
        ("auto", None),
        (None, None),
    ],
)
def test_sizes(text, value):
    assert parse_bytes(text) == value


@pytest.mark.parametrize("text", ["lots", "12 parsecs", "-1GB", ""])
def test_a_bad_size_is_one_line(text, tmp_path):
    args = ["extract", "--dataset", "demo", "--model", "tiny-random", "--out", str(tmp_path / "out"), "--dry-run"]
    result = CliRunner().invoke(app, [*args, "--host-memory", text])
    assert result.exit_code == 2, result.output
    assert "--host-memory must be a size such as 32GB" in result.output and "Traceback" not in result.output


def test_dry_run_prints_the_host_memory_arithmetic(tmp_path, tiny_model_dir, demo_root):
    base = ["extract", *DEMO_ARGS, "--out", str(tmp_path / "never"), "--dry-run"]
    result = CliRunner().invoke(app, [*base, "--host-memory", str(3 * TINY_IMAGE_BYTES)], terminal_width=200)
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "Host memory per model actor (--host-memory): 217.5 KiB" in text
    assert "maps per image: hidden 512 B, attn_base 18.0 KiB, attn_highres 54.0 KiB = 72.5 KiB" in text
    assert "images per batch: 1" in text
    assert "shard block: 1 image x 72.5 KiB = 72.5 KiB" in text
    assert "shards in flight (model done, being written): 2" in text
    assert "peak: (1 + 2) x 72.5 KiB = 217.5 KiB" in text
    assert "does not fit" not in text
    small = CliRunner().invoke(app, [*base, "--host-memory", str(TINY_IMAGE_BYTES)], terminal_width=200)
    assert small.exit_code == 0 and "does not fit: --host-memory is 72.5 KiB" in " ".join(small.output.split())


def test_a_run_that_cannot_fit_its_budget_is_refused_before_it_starts(tmp_path, tiny_model_dir, demo_root):
    out = tmp_path / "out"
    # shards of 2 images (the last --shard-size wins): room for two images' maps, not two shards
    args = ["extract", *DEMO_ARGS, "--shard-size", "2", "--out", str(out), "--host-memory", "200KB"]
    result = CliRunner().invoke(app, args, terminal_width=400)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(" ".join(lines).split("Error: ")) == 2 and "Use --shard-size 1 or less" in result.output
    assert "Traceback" not in result.output and not out.exists()
    tiny = CliRunner().invoke(app, [*args[:-1], "100KB"], terminal_width=400)
    assert tiny.exit_code == 2 and "less than two images' maps" in tiny.output and not out.exists()


@pytest.mark.slow
def test_a_run_held_to_a_small_budget_equals_the_unbounded_run(tmp_path, reference_run):
    """One shard in flight at a time (the least a budget allows) changes when shards are written, not what."""
    out = tmp_path / "bounded"
    proc = run_cli(["extract", *DEMO_ARGS, "--host-memory", str(2 * TINY_IMAGE_BYTES), "--out", str(out)])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert_same_output(out, reference_run)
    (journal,) = (out / "journal").glob("*.jsonl")
    start = json.loads(journal.read_text().splitlines()[0])
    assert start["event"] == "start" and start["shards_in_flight"] == 1
    assert start["host_memory"] == 2 * TINY_IMAGE_BYTES and start["shard_maps_bytes"] == TINY_IMAGE_BYTES
    (reference_journal,) = (reference_run / "journal").glob("*.jsonl")
    assert json.loads(reference_journal.read_text().splitlines()[0])["shards_in_flight"] > 1


def test_a_budget_below_two_images_says_no_shard_size_fits():
    plan = MapsBudget.plan(geometry(), shard_size=64, budget=10**8, given=True)
    with pytest.raises(ConfigError, match="less than two images' maps .* Capture fewer --layers or --heads mean"):
        plan.check()


def test_the_shard_block_holds_the_images_it_is_given_and_grows_only_for_more():
    """The actor's block is the budget's block: as many rows as the first shard has (a run of fewer
    images than --shard-size allocates no more), reused after, grown only for a larger shard."""
    from saldata.pipelines.host_memory import ShardBlock

    block = ShardBlock(pinned=False)
    shapes = {"hidden": (4, 1, 64), "attn_base": (4, 1, 4, 24, 24), "attn_highres": (4, 1, 4, 36, 48)}
    first = block.rows(3, shapes)
    assert {name: a.shape[0] for name, a in block.arrays.items()} == dict.fromkeys(shapes, 3)
    first["hidden"][:] = 1
    again = block.rows(2, shapes)
    assert np.shares_memory(again["hidden"], first["hidden"]) and again["hidden"].shape[0] == 2
    block.rows(5, shapes)
    assert {a.shape[0] for a in block.arrays.values()} == {5}
    assert str(block.arrays["attn_highres"].dtype) == "float16"
