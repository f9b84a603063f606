"""Host memory and time of heavy captures in the whole pipeline, in one invocation.

    python benchmarks/bench_host_memory.py --model mid-random --images 24 --new-tokens 16 --shard-size 8
    # on a GPU node
    python benchmarks/bench_host_memory.py --model 8b-random --images 192 --new-tokens 64 --shard-size 32 \
        --device cuda --dtype bfloat16 --batch-size auto

Three whole ``saldata extract`` processes on the same images, each generating exactly --new-tokens
tokens per image (EOS suppressed), every head kept, with Ray and its workers included in the
figures, alternated over --repeats rounds (medians reported):
1. one layer (the last): the run's footprint without heavy maps;
2. ``--layers all`` at the default host-memory budget;
3. the same under ``--host-memory`` = --low-budget shard blocks' worth of maps (default 2: one
   shard in the model actor, one in flight, the least a run can hold), whose store must equal run 2's.
Memory is sampled every 0.1 s over the process tree: the peak of the summed RSS (shared pages, Ray's
object store among them, count once in every process that maps them: an upper bound) and of the
summed PSS (shared pages split among their mappers). CPU seconds (user + system, summed over the
tree) measure the work done, which a machine loaded by others does not inflate as it does wall time.
"""

from __future__ import annotations

import argparse
import json
import statistics
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


KEYS = ("seconds", "cpu_seconds", "tree_peak", "pss_peak", "process_peak")


def median_of(runs: list[dict]) -> dict:
    return {key: statistics.median(run[key] for run in runs) for key in KEYS}


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
    parser.add_argument("--repeats", type=int, default=1, help="rounds of the three runs, alternating")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/bench-host-memory"))
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    images = args.workdir / "images"
    if len(list(images.glob("*.jpg"))) != args.images:
        make_images(images, args.images)
    runs: dict[str, list[dict]] = {"one": [], "all": [], "low": []}
    budget = None
    for _ in range(args.repeats):  # alternating, so the machine's drift hits every kind alike
        runs["one"].append(run_saldata(images, args.workdir / "one", args, ["--layers", "-1"], pss=True))
        runs["all"].append(run_saldata(images, args.workdir / "all", args, ["--layers", "all"], pss=True))
        if budget is None:
            budget = int(args.low_budget * image_bytes(args.workdir / "all") * min(args.shard_size, args.images))
        low = ["--layers", "all", "--host-memory", str(budget)]
        runs["low"].append(run_saldata(images, args.workdir / "low", args, low, pss=True))
    one, every, held = (median_of(runs[kind]) for kind in ("one", "all", "low"))
    per_image = image_bytes(args.workdir / "all")
    figures = {
        "model": args.model,
        "images": args.images,
        "new_tokens": args.new_tokens,
        "shard_size": args.shard_size,
        "repeats": args.repeats,
        "maps_per_image_bytes": per_image,
        "one_layer": one,
        "all_layers": every,
        "all_layers_low_budget": held,
        "low_budget_bytes": budget,
        "all_over_one": {key: every[key] / one[key] for key in KEYS},
        # What the maps added over the one-layer footprint, against the budget they were held to.
        "low_budget_pss_above_one_layer": held["pss_peak"] - one["pss_peak"],
        "low_budget_same_arrays": same_arrays(args.workdir / "all", args.workdir / "low"),
        "runs": {kind: [{key: run[key] for key in KEYS} for run in kind_runs] for kind, kind_runs in runs.items()},
    }
    ratio = figures["all_over_one"]

    def line(name: str, m: dict) -> str:
        return (
            f"  {name:26s} {m['seconds']:7.1f} s wall  {m['cpu_seconds']:7.1f} s CPU   peak RSS {m['tree_peak'] / GB:5.2f} GB"
            f"   PSS {m['pss_peak'] / GB:5.2f} GB"
        )

    print(
        f"{args.model}, {args.images} images x {args.new_tokens} tokens, shards of {args.shard_size}, every head; "
        f"maps {per_image / 1e6:.1f} MB per image with all layers; medians of {args.repeats}\n"
        + line("one layer", one)
        + "\n"
        + line("all layers", every)
        + f"\n    all / one: {ratio['seconds']:.2f}x wall, {ratio['cpu_seconds']:.2f}x CPU, "
        f"{ratio['tree_peak']:.2f}x RSS, {ratio['pss_peak']:.2f}x PSS\n"
        + line(f"all, --host-memory {budget / 1e6:.0f} MB", held)
        + f"\n    PSS above the one-layer run: {figures['low_budget_pss_above_one_layer'] / 1e6:.0f} MB "
        f"(budget {budget / 1e6:.0f} MB); arrays equal to the unbounded run: {figures['low_budget_same_arrays']}"
    )
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
