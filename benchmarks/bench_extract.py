"""saldata extract vs the research pipeline, same images and model, one invocation.

    python benchmarks/bench_extract.py --model mid-random --images 24 --new-tokens 16
    # on a GPU box (bf16 peak of an H100 SXM: 989 TFLOP/s dense)
    python benchmarks/bench_extract.py --model 8b-random --images 64 --new-tokens 16 \
        --batch-size 16 --device cuda --dtype bfloat16 --peak-tflops 989

Both sides run as whole processes (imports and start-up included), generate exactly
--new-tokens tokens per image (EOS suppressed), and are checked to agree. Reports images/s
and their ratio, peak memory, bytes on disk per image, the capture's cost over plain sdpa
``generate``, and the model actor's busy fraction (pipeline overlap).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import psutil

HERE = Path(__file__).resolve().parent


class PeakMemory:
    """Samples a process tree: peak of the summed RSS, peak RSS of its largest process, the peak
    of any one process's anonymous RSS (its heap: RSS less the shared libraries' and the mapped
    weights' file pages), and peak memory in use on GPU 0 (NVML: what the card has handed out,
    allocator caches included)."""

    def __init__(self, pid: int, interval: float = 0.1, pss: bool = False):
        self.root = psutil.Process(pid)
        self.tree_peak = self.process_peak = self.anon_peak = self.gpu_peak = self.pss_peak = 0
        self.pss = pss  # also the tree's proportional set size (shared pages split among their mappers)
        self.cpu_seconds: dict[int, float] = {}  # user + system seconds of each process, last seen
        self._gpu = _nvml_handle()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, args=(interval,))
        self._thread.start()

    def _run(self, interval):
        while not self._stop.is_set():
            try:
                procs = [self.root, *self.root.children(recursive=True)]
                rss, pss = [], []
                for p in procs:
                    with contextlib.suppress(psutil.Error):
                        rss.append(p.memory_info().rss)
                        times = p.cpu_times()
                        self.cpu_seconds[p.pid] = times.user + times.system
                        if self.pss:
                            pss.append(p.memory_full_info().pss)
                    self.anon_peak = max(self.anon_peak, _anonymous_rss(p.pid))
                self.tree_peak = max(self.tree_peak, sum(rss))
                self.pss_peak = max(self.pss_peak, sum(pss))
                self.process_peak = max(self.process_peak, max(rss, default=0))
            except psutil.Error:
                pass
            if self._gpu is not None:
                import pynvml

                self.gpu_peak = max(self.gpu_peak, pynvml.nvmlDeviceGetMemoryInfo(self._gpu).used)
            self._stop.wait(interval)

    def stop(self):
        self._stop.set()
        self._thread.join()


def _anonymous_rss(pid: int) -> int:
    """RssAnon from /proc (Linux); 0 where it cannot be read."""
    with contextlib.suppress(OSError, ValueError), open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024
    return 0


def _nvml_handle():
    try:
        import pynvml

        pynvml.nvmlInit()
        return pynvml.nvmlDeviceGetHandleByIndex(0)
    except Exception:  # no NVML library or no GPU: CPU figures only
        return None


def timed_process(cmd: list[str], env=None, pss: bool = False) -> dict:
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    memory = PeakMemory(proc.pid, pss=pss)
    log, _ = proc.communicate()
    memory.stop()
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{log[-4000:]}")
    return {
        "seconds": time.perf_counter() - start,
        "tree_peak": memory.tree_peak,
        "process_peak": memory.process_peak,
        "anonymous_peak": memory.anon_peak,
        "gpu_peak": memory.gpu_peak,
        "pss_peak": memory.pss_peak,
        "cpu_seconds": sum(memory.cpu_seconds.values()),
        "log": log,
    }


def make_images(folder: Path, n: int) -> None:
    from PIL import Image, ImageDraw

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    for i in range(n):
        image = Image.new("RGB", (640, 480), tuple(int(c) for c in rng.integers(0, 255, 3)))
        draw = ImageDraw.Draw(image)
        for _ in range(4):
            x, y, r = (int(v) for v in (rng.integers(0, 640), rng.integers(0, 480), rng.integers(20, 120)))
            draw.ellipse([x - r, y - r, x + r, y + r], fill=tuple(int(c) for c in rng.integers(0, 255, 3)))
        image.save(folder / f"img{i:04d}.jpg", quality=90)


def du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def compare(baseline_dir: Path, out: Path) -> dict:
    import pyarrow.parquet as pq
    import zarr

    group = zarr.open_group(out / "features.zarr", mode="r")
    images = pq.read_table(out / "catalog" / "images").sort_by("idx").to_pylist()
    same_tokens, agreed_steps, attn_diff, hidden_diff = 0, 0, 0.0, 0.0
    for row in images:
        stem, idx = Path(row["image_id"]).stem, row["idx"]
        theirs = json.loads((baseline_dir / f"{stem}.json").read_text())
        n = int(group["n_tokens"][idx])
        ours_tokens = group["token_ids"][idx, :n].tolist()
        same_tokens += ours_tokens == theirs
        # Maps are comparable up to the first step whose input differs: the step that picks the
        # first different token still sees the same prefix. (bf16 on a random model, whose logits
        # are near ties, can flip an argmax; fp32 keeps every token.)
        prefix = next((i for i, (a, b) in enumerate(zip(ours_tokens, theirs)) if a != b), min(n, len(theirs)))
        steps = min(prefix + 1, n, len(theirs))
        agreed_steps += steps
        ref = np.load(baseline_dir / f"{stem}.npy")[:steps]  # (T, H, 576 + R*C)
        ours = np.concatenate(
            [
                group["attn_base"][idx, :steps, -1].reshape(steps, ref.shape[1], -1),  # the last layer
                group["attn_highres"][idx, :steps, -1].reshape(steps, ref.shape[1], -1),
            ],
            axis=-1,
        )
        attn_diff = max(attn_diff, float(np.abs(ours.astype(np.float32) - ref).max()))
        hidden = np.load(baseline_dir / f"{stem}_hidden.npy")[:steps]
        rel = np.abs(group["hidden"][idx, :steps, -1].astype(np.float32) - hidden).max() / np.abs(hidden).max()
        hidden_diff = max(hidden_diff, float(rel))
    return {
        "images_same_tokens": same_tokens,
        "images": len(images),
        "steps_compared": agreed_steps,
        "attn_max_abs_diff": attn_diff,
        "hidden_max_rel_diff": hidden_diff,
    }


def capture_overhead(model: str, new_tokens: int, batch: int, repeats: int, device="auto", dtype="auto") -> dict:
    """Extractor (capture on) vs plain sdpa generate, no outputs requested, same batch and tokens."""
    import torch
    from transformers import LlavaNextForConditionalGeneration

    from saldata.extractors.image_inputs import prepare_images
    from saldata.extractors.kv_cache import reserved_cache
    from saldata.extractors.llava_next import CaptureSettings, LlavaNextExtractor
    from saldata.extractors.models import ModelSettings, resolve_model_dir
    from saldata.extractors.prompts import resolve_prompt

    model_dir = resolve_model_dir(model)
    extractor = LlavaNextExtractor(
        model_dir,
        ModelSettings(model, dtype=dtype, device=device),
        CaptureSettings(max_new_tokens=new_tokens, force_new_tokens=True),
        resolve_prompt(),
    )
    plain = LlavaNextForConditionalGeneration.from_pretrained(
        model_dir, attn_implementation="sdpa", dtype=extractor.model.dtype, device_map=str(extractor.device)
    ).eval()
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (480, 640, 3), dtype=np.uint8) for _ in range(batch)]
    # Inputs made once, outside the timing, for both sides: what is compared is generate alone
    # against generate with the capture (and the extractor's own per-batch work).
    prepared = prepare_images(extractor.processor.image_processor, images)
    inputs = extractor.processor(images=images, text=[extractor.prompt_text] * batch, return_tensors="pt").to(
        extractor.device
    )
    inputs["pixel_values"] = inputs["pixel_values"].to(plain.dtype)

    def run_plain(cache=None):
        with torch.inference_mode():
            plain.generate(
                **inputs,
                max_new_tokens=new_tokens,
                min_new_tokens=new_tokens,
                do_sample=False,
                cache=cache,
            )

    def run_plain_reserved():
        # The extractor's own cache, so that what differs from the capture run is the capture alone.
        run_plain(reserved_cache(plain.config.text_config, inputs["input_ids"].shape[1], new_tokens))

    def timed(fn):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        t = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        return time.perf_counter() - t

    run_plain(), run_plain_reserved(), extractor(prepared)  # warm-up
    plain_s, reserved_s, capture_s = [], [], []
    for _ in range(repeats):  # interleaved so drift hits all alike
        plain_s.append(timed(run_plain))
        reserved_s.append(timed(run_plain_reserved))
        capture_s.append(timed(lambda: extractor(prepared)))
    p, r, c = (float(np.median(x)) for x in (plain_s, reserved_s, capture_s))
    return {
        "plain_s": p,
        "plain_same_cache_s": r,
        "capture_s": c,
        "overhead": c / p - 1,
        "overhead_same_cache": c / r - 1,
        "batch": batch,
        "repeats": repeats,
        "images_per_s_in_model": batch / c,
    }


def prefill_flops(model_dir: Path) -> dict:
    """2 x parameters x prompt tokens of one 640x480 image: the prefill's matmul work, read off the files."""
    from safetensors import safe_open
    from transformers import AutoProcessor

    params = 0
    for path in model_dir.glob("*.safetensors"):
        with safe_open(path, "np") as f:
            params += sum(int(np.prod(f.get_slice(k).get_shape())) for k in f.keys())  # noqa: SIM118 (safe_open is not iterable)
    processor = AutoProcessor.from_pretrained(model_dir)
    chat = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "x"}]}]
    text = processor.apply_chat_template(chat, add_generation_prompt=True)
    image = np.zeros((480, 640, 3), np.uint8)
    tokens = int(processor(images=[image], text=[text], return_tensors="np")["input_ids"].shape[1])
    return {"parameters": params, "prompt_tokens": tokens, "flops_per_image": 2.0 * params * tokens}


def run_saldata(images: Path, out: Path, args, extra=(), pss: bool = False) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    cmd = [
        sys.executable,
        "-m",
        "saldata.cli.main",
        "extract",
        "--dataset",
        f"folder:{images}",
        "--model",
        args.model,
        "--out",
        str(out),
        "--max-new-tokens",
        str(args.new_tokens),
        "--force-new-tokens",
        "--batch-size",
        str(args.batch_size),
        "--shard-size",
        str(args.shard_size),
        "--device",
        args.device,
        "--dtype",
        args.dtype,
        *extra,
    ]
    result = timed_process(cmd, pss=pss)
    events = [json.loads(x) for x in next((out / "journal").glob("*.jsonl")).read_text().splitlines()]
    result["actor_busy_fraction"] = events[-1].get("actor_busy_fraction")
    commits = [e for e in events if e["event"] == "commit"]
    if len(commits) > 1:  # after start-up: images committed after the first shard, over the time they took
        images = sum(e["done"] + e["failed"] for e in commits[1:])
        result["steady_images_per_s"] = images / (commits[-1]["time"] - commits[0]["time"])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="mid-random")
    parser.add_argument("--images", type=int, default=24)
    parser.add_argument("--new-tokens", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--shard-size", type=int, default=8)
    parser.add_argument("--workdir", type=Path, default=Path(".bench"))
    parser.add_argument("--overhead-repeats", type=int, default=3, help="0 skips the capture-overhead timing")
    parser.add_argument("--skip-overlap", action="store_true", help="skip the run without prefetching")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda (both sides)")
    parser.add_argument("--dtype", default="auto", help="auto (bf16 on GPU, fp32 on CPU), float32, bfloat16, float16")
    parser.add_argument(
        "--peak-tflops", type=float, default=None, help="the device's dense peak, for the FLOP fraction"
    )
    args = parser.parse_args()

    from saldata.extractors.models import ModelSettings, resolve_model_dir
    from saldata.extractors.prompts import resolve_prompt

    # The baseline runs on the device and dtype saldata resolves "auto" to, so both do the same work.
    settings = ModelSettings(args.model, dtype=args.dtype, device=args.device)
    work = args.workdir.resolve()
    images = work / f"images-{args.images}"
    if not images.is_dir():
        make_images(images, args.images)
    model_dir = resolve_model_dir(args.model)  # built once, outside every timing
    results: dict = {"args": {k: str(v) for k, v in vars(args).items()}, "cpu_count": os.cpu_count()}

    shutil.rmtree(work / "baseline", ignore_errors=True)
    base = timed_process(
        [
            sys.executable,
            str(HERE / "baseline.py"),
            "--model",
            str(model_dir),
            "--images",
            str(images),
            "--out",
            str(work / "baseline"),
            "--prompt",
            resolve_prompt().text,
            "--new-tokens",
            str(args.new_tokens),
            "--device",
            settings.resolved_device(),
            "--dtype",
            str(settings.resolved_dtype()).removeprefix("torch."),
        ]
    )
    base_report = json.loads(base["log"].strip().splitlines()[-1])
    ours = run_saldata(images, work / "saldata", args)
    results["baseline"] = {k: v for k, v in base.items() if k != "log"}
    results["saldata"] = {k: v for k, v in ours.items() if k != "log"}
    results["agreement"] = compare(work / "baseline", work / "saldata")
    n = args.images
    results["baseline"]["images_per_s"] = n / base["seconds"]
    results["saldata"]["images_per_s"] = n / ours["seconds"]
    results["baseline"]["bytes_per_image"] = du(work / "baseline") / n
    results["saldata"]["bytes_per_image"] = du(work / "saldata") / n
    results["baseline"]["steady_images_per_s"] = n / base_report["loop_s"]  # after the model is loaded
    results["ratios"] = {
        "speed": results["saldata"]["images_per_s"] / results["baseline"]["images_per_s"],
        "peak_memory_model_process": ours["process_peak"] / base["process_peak"],
        "peak_memory_whole_tree": ours["tree_peak"] / base["tree_peak"],
        "peak_anonymous_memory_model_process": ours["anonymous_peak"] / max(base["anonymous_peak"], 1),
        "bytes_per_image": results["saldata"]["bytes_per_image"] / results["baseline"]["bytes_per_image"],
    }
    if base["gpu_peak"]:  # includes the idle card's own few hundred MB on both sides
        results["ratios"]["peak_gpu_memory"] = ours["gpu_peak"] / base["gpu_peak"]
    if "steady_images_per_s" in ours:
        results["ratios"]["speed_after_start_up"] = (
            ours["steady_images_per_s"] / results["baseline"]["steady_images_per_s"]
        )
    flops = prefill_flops(model_dir)
    flops["achieved_tflops"] = flops["flops_per_image"] * results["saldata"]["images_per_s"] / 1e12
    if args.peak_tflops:
        flops["fraction_of_peak"] = flops["achieved_tflops"] / args.peak_tflops
    results["prefill_flops"] = flops
    if not args.skip_overlap:
        serial = run_saldata(images, work / "saldata-serial", args, extra=["--prefetch-shards", "1"])
        results["overlap"] = {
            "prefetch_2_images_per_s": n / ours["seconds"],
            "prefetch_1_images_per_s": n / serial["seconds"],
            "prefetch_2_busy": ours["actor_busy_fraction"],
            "prefetch_1_busy": serial["actor_busy_fraction"],
        }
    if args.overhead_repeats:
        results["capture_overhead"] = capture_overhead(
            args.model, args.new_tokens, args.batch_size, args.overhead_repeats, args.device, args.dtype
        )
    (work / "results.json").write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
