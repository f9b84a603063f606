"""What capturing many decoder layers costs, in one invocation (ratios quoted from one run).

    python benchmarks/bench_layers.py --model mid-random --images 3 --new-tokens 16 --workdir /tmp/blayers

Model time: the extractor itself (model loaded once, in this process; start-up excluded, which
only flatters the one-layer runs), on the same images, generating exactly --new-tokens tokens:
- one layer (the last), every layer in one pass (``--layers all``), alternating image by image over
  --repeats rounds so the machine's drift hits both alike (medians, and the fastest call of each);
- one run per layer, every layer once: what capturing them all cost before ``--layers``.
Store bytes: two whole ``saldata extract --layers all`` runs on those images, ``--heads all``
and ``--heads mean``; the attention arrays' bytes on disk (and the whole store's).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_extract import du, make_images  # noqa: E402


def extractor_for(model: str, layers, new_tokens: int):
    from saldata.extractors.llava_next import LlavaNextExtractor
    from saldata.extractors.models import ModelSettings, resolve_model_dir
    from saldata.extractors.prompts import resolve_prompt
    from saldata.extractors.settings import CaptureSettings

    capture = CaptureSettings(layers=layers, max_new_tokens=new_tokens, force_new_tokens=True)
    settings = ModelSettings(model, dtype="float32", device="cpu")
    return LlavaNextExtractor(resolve_model_dir(model), settings, capture, resolve_prompt())


def seconds(extractor, image) -> float:
    start = time.perf_counter()
    extractor([image])
    return time.perf_counter() - start


def load_images(folder: Path) -> list:
    import numpy as np
    from PIL import Image

    return [np.asarray(Image.open(p).convert("RGB")) for p in sorted(folder.glob("*.jpg"))]


def model_time(args, images) -> dict:
    """Seconds per image, one call each, alternating one layer and all layers image by image so that
    the machine's drift hits both alike; then every layer on its own, image by image."""
    one = extractor_for(args.model, (-1,), args.new_tokens)
    every = extractor_for(args.model, "all", args.new_tokens)
    n_layers = len(every.layers)
    seconds(one, images[0]), seconds(every, images[0])  # warm both (first-call allocations)
    one_s, all_s = [], []
    for _ in range(args.repeats):
        for image in images:
            one_s.append(seconds(one, image))
            all_s.append(seconds(every, image))
    singles = [
        one if layer == n_layers - 1 else extractor_for(args.model, (layer,), args.new_tokens)
        for layer in range(n_layers)
    ]
    per_layer_s = [[] for _ in range(n_layers)]
    for image in images:
        for layer, extractor in enumerate(singles):
            per_layer_s[layer].append(seconds(extractor, image))
    each_layer_once = sum(statistics.median(times) for times in per_layer_s)
    return {
        "layers": n_layers,
        "heads": every.config.text_config.num_attention_heads,
        "one_layer_s": one_s,
        "all_layers_s": all_s,
        "each_layer_s": per_layer_s,
        "all_over_one": statistics.median(all_s) / statistics.median(one_s),
        "all_over_one_fastest": min(all_s) / min(one_s),
        "runs_per_layer_over_all": each_layer_once / statistics.median(all_s),
    }


def store_bytes(args, folder: Path) -> dict:
    result = {}
    for heads in ("all", "mean"):
        out = args.workdir / f"store-heads-{heads}"
        cmd = [
            sys.executable, "-m", "saldata.cli.main", "extract", "--dataset", f"folder:{folder}",
            "--model", args.model, "--out", str(out), "--layers", "all", "--heads", heads,
            "--max-new-tokens", str(args.new_tokens), "--force-new-tokens", "--overwrite",
        ]  # fmt: skip
        subprocess.run(cmd, check=True, capture_output=True)
        store = out / "features.zarr"
        result[heads] = {
            "attention_bytes": du(store / "attn_base") + du(store / "attn_highres"),
            "store_bytes": du(store),
        }
    result["mean_over_all_attention"] = result["mean"]["attention_bytes"] / result["all"]["attention_bytes"]
    result["mean_over_all_store"] = result["mean"]["store_bytes"] / result["all"]["store_bytes"]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="mid-random")
    parser.add_argument("--images", type=int, default=3)
    parser.add_argument("--new-tokens", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/saldata-bench-layers"))
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    folder = args.workdir / "images"
    if not folder.is_dir():
        make_images(folder, args.images)
    images = load_images(folder)[: args.images]
    results = {"model": args.model, "images": len(images), "new_tokens": args.new_tokens}
    results["model_time"] = model_time(args, images)
    results["store"] = store_bytes(args, folder)
    (args.workdir / "results.json").write_text(json.dumps(results, indent=2))
    timing, store = results["model_time"], results["store"]
    print(
        f"{args.model}, {len(images)} images x {args.new_tokens} tokens, {timing['layers']} layers\n"
        f"  all layers in one pass / one layer: {timing['all_over_one']:.3f}x by medians "
        f"({statistics.median(timing['all_layers_s']):.2f} / {statistics.median(timing['one_layer_s']):.2f} s per "
        f"image, {len(timing['one_layer_s'])} calls each), {timing['all_over_one_fastest']:.3f}x by the fastest\n"
        f"  one run per layer / all in one pass: {timing['runs_per_layer_over_all']:.2f}x\n"
        f"  --heads mean / --heads all, all layers: attention bytes {store['mean_over_all_attention']:.4f} "
        f"(1/H = {1 / timing['heads']:.4f}), whole store {store['mean_over_all_store']:.4f}\n"
        f"  written: {args.workdir / 'results.json'}"
    )


if __name__ == "__main__":
    main()
