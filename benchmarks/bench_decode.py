"""The two decode paths (``--decode chunk`` and ``steps``) on the extractor alone, one invocation.

    python benchmarks/bench_decode.py --model mid-random --batch 2 --new-tokens 16
    # on a GPU box
    python benchmarks/bench_decode.py --model 8b-random --batch 32 --new-tokens 64 \
        --device cuda --dtype bfloat16 --profile

For each path: seconds per batch of ``--new-tokens`` forced tokens, the prefill alone (one
token), the decode step ((batch - prefill) / (new tokens - 1)), and plain uncaptured
``generate`` on the same cache for the capture's cost; then the largest difference between the
two paths' maps (they must agree to float rounding). ``--profile`` adds a ``torch.profiler``
table of the chunk path's batch (kernel launches, host syncs, copies). Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace

import numpy as np


def timed(run, repeats: int, synchronize) -> float:
    """The median of ``repeats`` timings of ``run()`` after one warm-up call."""
    run()
    seconds = []
    for _ in range(repeats):
        synchronize()
        start = time.perf_counter()
        run()
        synchronize()
        seconds.append(time.perf_counter() - start)
    return float(np.median(seconds))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="mid-random")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--new-tokens", type=int, default=16)
    parser.add_argument("--layers", default="all", help="all or a comma list")
    parser.add_argument("--heads", default="all", choices=("all", "mean"))
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()

    import torch

    from saldata.extractors.image_inputs import prepare_images
    from saldata.extractors.llava_next import LlavaNextExtractor
    from saldata.extractors.models import ModelSettings, resolve_model_dir
    from saldata.extractors.prompts import resolve_prompt
    from saldata.extractors.settings import DECODE_MODES, CaptureSettings, parse_layers

    model_dir = resolve_model_dir(args.model)
    settings = ModelSettings(args.model, dtype=args.dtype, device=args.device)
    rng = np.random.default_rng(0)
    pixels = [rng.integers(0, 256, (480, 640, 3), dtype=np.uint8) for _ in range(args.batch)]
    capture = CaptureSettings(
        layers=parse_layers(args.layers), heads=args.heads, max_new_tokens=args.new_tokens, force_new_tokens=True
    )
    extractor = LlavaNextExtractor(model_dir, settings, capture, resolve_prompt())
    images = prepare_images(extractor.processor.image_processor, pixels)
    cuda = extractor.device.type == "cuda"

    def synchronize() -> None:
        if cuda:
            torch.cuda.synchronize(extractor.device)

    shapes = extractor.map_shapes(extractor.layout((640, 480)))
    results: dict = {"args": vars(args), "device": str(extractor.device), "paths": {}}
    maps = {}
    for decode in DECODE_MODES:
        out = {name: np.zeros((args.batch, *shape), np.float16) for name, shape in shapes.items()}
        if cuda:
            out = {name: torch.from_numpy(a).pin_memory().numpy() for name, a in out.items()}
        extractor.capture = replace(capture, decode=decode)
        batch_s = timed(lambda out=out: extractor(images, out=out), args.repeats, synchronize)
        maps[decode] = {name: a.astype(np.float32) for name, a in out.items()}
        extractor.capture = replace(capture, decode=decode, max_new_tokens=1)
        extractor.generation_kwargs.update(max_new_tokens=1, min_new_tokens=1)
        one = {name: a[:, :1] for name, a in out.items()}
        prefill_s = timed(lambda one=one: extractor(images, out=one), args.repeats, synchronize)
        extractor.generation_kwargs.update(max_new_tokens=args.new_tokens, min_new_tokens=args.new_tokens)
        results["paths"][decode] = {
            "batch_s": batch_s,
            "images_per_s": args.batch / batch_s,
            "prefill_s": prefill_s,
            "decode_step_ms": 1e3 * (batch_s - prefill_s) / max(args.new_tokens - 1, 1),
        }
    results["max_abs_difference"] = {
        name: float(np.abs(maps["chunk"][name] - maps["steps"][name]).max()) for name in shapes
    }
    extractor.capture = capture
    results["plain_generate_s"] = timed(lambda: plain_generate(extractor, images), args.repeats, synchronize)
    if args.profile:
        results["profile"] = profile_table(extractor, images, out, synchronize)
    print(json.dumps(results))


def plain_generate(extractor, images) -> None:
    """sdpa ``generate`` with no capture, on the same inputs and cache: what the capture adds to."""
    import torch

    from saldata.extractors.kv_cache import reserved_cache

    height, width = images[0].image_size
    prompt = torch.as_tensor(extractor._prompt_ids(height, width))
    batch = len(images)
    with torch.inference_mode():
        extractor.model.generate(
            input_ids=prompt.repeat(batch, 1).to(extractor.device),
            attention_mask=torch.ones(batch, len(prompt), dtype=torch.long, device=extractor.device),
            pixel_values=torch.from_numpy(np.stack([im.pixel_values for im in images])).to(
                device=extractor.device, dtype=extractor.model.dtype
            ),
            image_sizes=torch.tensor([[height, width]] * batch, device=extractor.device),
            cache=reserved_cache(extractor.config.text_config, len(prompt), extractor.capture.max_new_tokens),
            **extractor.generation_kwargs,
        )


def profile_table(extractor, images, out, synchronize) -> str:
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if extractor.device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        extractor(images, out=out)
        synchronize()
    sort = "cuda_time_total" if extractor.device.type == "cuda" else "cpu_time_total"
    return prof.key_averages().table(sort_by=sort, row_limit=25)


if __name__ == "__main__":
    main()
