"""Writing to a local S3 server against writing to a local disk, in one invocation (ratios from one run).

    python benchmarks/bench_object_store.py --model mid-random --images 16 --new-tokens 16 --repeats 2

Starts moto in server mode on loopback (tests/s3_server.py), then runs the same ``saldata extract``
(whole process: start-up, Ray, model load) alternately into a local folder and into
``s3://bench/run-N``, --repeats times each, so the machine's drift hits both alike. Reports
images/s of the whole process, the writers' time per shard (``write_s`` of the journal's commit
events: staging the Zarr and Parquet files and digesting them) and the driver's commit time
(the span between a shard's staged result and its journal event is not separable, so the whole
run's time is the headline). Checks that both outputs hold the same arrays.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from bench_extract import make_images  # noqa: E402


def extract(args, images: Path, out: str) -> dict:
    cmd = [sys.executable, "-m", "saldata.cli.main", "extract", "--dataset", f"folder:{images}",
           "--model", args.model, "--max-new-tokens", str(args.new_tokens), "--force-new-tokens",
           "--shard-size", str(args.shard_size), "--batch-size", "1", "--out", out]  # fmt: skip
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(proc.stderr[-3000:])
    return {"seconds": seconds, "write_s": journal_write_seconds(out)}


def journal_write_seconds(out: str) -> list[float]:
    from saldata.storage.journal import read_journals
    from saldata.storage.location import as_out

    (events,) = read_journals(as_out(out))
    return [e["write_s"] for e in events if e["event"] == "commit"]


def same_arrays(local: Path, url: str) -> bool:
    import numpy as np

    import saldata

    a, b = saldata.open(local), saldata.open(url)
    return all(np.array_equal(a.group[name][:], b.group[name][:]) for name in ("hidden", "attn_highres", "token_ids"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mid-random")
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--new-tokens", type=int, default=16)
    parser.add_argument("--shard-size", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/bench-object-store"))
    args = parser.parse_args()

    from tests.s3_server import S3Server, set_environment

    args.workdir.mkdir(parents=True, exist_ok=True)
    images = args.workdir / "images"
    if not images.is_dir():
        make_images(images, args.images)
    server = S3Server()
    server.start()
    set_environment(server.endpoint)
    bucket = server.new_bucket()
    runs: dict[str, list[dict]] = {"disk": [], "s3": []}
    try:
        for n in range(args.repeats):
            for kind in ("disk", "s3") if n % 2 == 0 else ("s3", "disk"):
                out = str(args.workdir / f"disk-{n}") if kind == "disk" else f"s3://{bucket}/run-{n}"
                if kind == "disk":
                    subprocess.run(["rm", "-rf", out], check=True)
                runs[kind].append(extract(args, images, out))
                print(kind, n, f"{runs[kind][-1]['seconds']:.1f} s", flush=True)
        agree = same_arrays(args.workdir / "disk-0", f"s3://{bucket}/run-0")
    finally:
        server.stop()

    def rate(kind: str) -> float:
        return args.images / statistics.median(r["seconds"] for r in runs[kind])

    def write_s(kind: str) -> float:
        return statistics.median(s for r in runs[kind] for s in r["write_s"])

    result = {
        "model": args.model,
        "images": args.images,
        "new_tokens": args.new_tokens,
        "shard_size": args.shard_size,
        "repeats": args.repeats,
        "cpu_count": os.cpu_count(),
        "images_per_s": {"disk": rate("disk"), "s3": rate("s3")},
        "s3_over_disk_images_per_s": rate("s3") / rate("disk"),
        "median_shard_write_s": {"disk": write_s("disk"), "s3": write_s("s3")},
        "s3_over_disk_shard_write_s": write_s("s3") / write_s("disk"),
        "same_arrays": agree,
        "runs": runs,
    }
    (args.workdir / "results.json").write_text(json.dumps(result, indent=1))
    print(json.dumps({k: v for k, v in result.items() if k != "runs"}, indent=1))


if __name__ == "__main__":
    main()
