"""Host memory and time of heavy captures in the whole pipeline, in one invocation.

    python benchmarks/bench_host_memory.py --model mid-random --images 24 --new-tokens 16 --shard-size 8
    # on a GPU node
    python benchmarks/bench_host_memory.py --model 8b-random --images 192 --new-tokens 64 --shard-size 32 \
        --device cuda --dtype bfloat16 --batch-size auto

Three whole ``saldata extract`` processes on the same images, each generating exactly --new-tokens
tokens per image (EOS suppressed), with Ray and its workers included in the memory figures:
1. one layer (the last), every head: the run's footprint without heavy maps;
2. ``--layers all --heads all`` at the default host-memory budget;
3. the same under ``--host-memory`` = --low-budget shard blocks' worth of maps (default 2: one
   shard in the model actor, one in flight, the least a run can hold), whose store must equal run 2's.
Peak memory is the largest sum of RSS over the process tree, sampled every 0.1 s (shared pages,
Ray's object store among them, count in every process that maps them: an upper bound).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_extract import make_images, run_saldata  # noqa: E402

GB = 1e9


def image_bytes(out: Path) -> int:
    """Bytes of one image's maps in the store's dtypes, read from the store's own metadata."""
    import zarr

    group = zarr.open_group(out / "features.zarr", mode="r")
    total = 0
    for name in ("hidden", "attn_base", "attn_highres"):
        array = group[name]
        per_image = array.dtype.itemsize
        for n in array.shape[1:]:
            per_image *= n
        total += per_image
    return total


def same_arrays(a: Path, b: Path) -> bool:
    import numpy as np
    import zarr

    left, right = zarr.open_group(a / "features.zarr", mode="r"), zarr.open_group(b / "features.zarr", mode="r")
    return all(np.array_equal(left[name][:], right[name][:]) for name in left.array_keys())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="mid-random")
    parser.add_argument("--images", type=int, default=24)
    parser.add_argument("--new-tokens", type=int, default=16)
    parser.add_argument("--shard-size", type=int, default=8)
    parser.add_argument("--batch-size", default="auto")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--low-budget", type=float, default=2.0, help="shard blocks of maps for run 3")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/bench-host-memory"))
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    images = args.workdir / "images"
    if len(list(images.glob("*.jpg"))) != args.images:
        make_images(images, args.images)
    one = run_saldata(images, args.workdir / "one", args, ["--layers", "-1", "--heads", "all"])
    every = run_saldata(images, args.workdir / "all", args, ["--layers", "all", "--heads", "all"])
    per_image = image_bytes(args.workdir / "all")
    budget = int(args.low_budget * per_image * min(args.shard_size, args.images))
    low = run_saldata(
        images, args.workdir / "low", args, ["--layers", "all", "--heads", "all", "--host-memory", str(budget)]
    )
    figures = {
        "model": args.model,
        "images": args.images,
        "new_tokens": args.new_tokens,
        "shard_size": args.shard_size,
        "maps_per_image_bytes": per_image,
        "one_layer": {k: one[k] for k in ("seconds", "tree_peak", "process_peak")},
        "all_layers": {k: every[k] for k in ("seconds", "tree_peak", "process_peak")},
        "all_layers_low_budget": {k: low[k] for k in ("seconds", "tree_peak", "process_peak")},
        "low_budget_bytes": budget,
        "all_over_one_time": every["seconds"] / one["seconds"],
        "all_over_one_tree_peak": every["tree_peak"] / one["tree_peak"],
        # What the maps added over the one-layer footprint, against the budget they were held to.
        "low_budget_peak_above_one_layer": low["tree_peak"] - one["tree_peak"],
        "low_budget_same_arrays": same_arrays(args.workdir / "all", args.workdir / "low"),
    }
    print(
        f"{args.model}, {args.images} images x {args.new_tokens} tokens, shards of {args.shard_size}; "
        f"maps {per_image / 1e6:.1f} MB per image (all layers, all heads)\n"
        f"  one layer:               {one['seconds']:7.1f} s   tree peak {one['tree_peak'] / GB:6.2f} GB\n"
        f"  all layers, all heads:   {every['seconds']:7.1f} s   tree peak {every['tree_peak'] / GB:6.2f} GB   "
        f"({figures['all_over_one_time']:.2f}x time, {figures['all_over_one_tree_peak']:.2f}x peak)\n"
        f"  same, --host-memory {budget / 1e6:.0f} MB: {low['seconds']:7.1f} s   tree peak "
        f"{low['tree_peak'] / GB:6.2f} GB   ({figures['low_budget_peak_above_one_layer'] / 1e6:.0f} MB above the "
        f"one-layer run; arrays equal to the unbounded run: {figures['low_budget_same_arrays']})"
    )
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
