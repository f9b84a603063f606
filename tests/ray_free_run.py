"""The readers' demo extraction without Ray: the pipeline's own steps, called one after another.

``python -m tests.ray_free_run OUT [MODEL [DATASET [DATA_ROOT [SPLIT]]]]`` does what ``saldata
extract`` does with READERS_DEMO_ARGS (tests/helpers.py), with the same code for every step:
``plan_run``, the output lock, ``prepare_output``, ``load_shard``, the model actor's ``process``,
``stage_shard`` and the driver's ``commit_staged``. Only the scheduling differs: no Ray, one shard at a time, in one process. It
builds the readers' store for the fast test tier in seconds; a slow test
(tests/readers/test_ray_free_run.py) checks that it is the CLI's output, byte for byte.

It runs in a process of its own because the pipeline's steps lower their process's CPU priority
(``yield_cpu_to_model``), which the test session must not inherit.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from saldata.extractors.models import ModelSettings
from saldata.extractors.settings import CaptureSettings
from saldata.pipelines.config import ExtractConfig
from saldata.pipelines.extract import commit_staged, plan_run
from saldata.pipelines.model_actor import ExtractorActor
from saldata.pipelines.resume import RUN_CONFIG_FILE, prepare_output, select_work
from saldata.pipelines.steps import load_shard, stage_shard
from saldata.storage.commits import write_atomic
from saldata.storage.journal import RunJournal
from saldata.storage.location import as_out
from saldata.storage.lock import output_lock

RUN_ID = "ray-free"


def readers_demo_config(
    out: Path,
    model: str = "tiny-random",
    dataset: str = "demo",
    data_root: Path | None = None,
    split: str | None = None,
) -> ExtractConfig:
    """READERS_DEMO_ARGS as ExtractConfig (the CLI's defaults for everything they leave out), on
    the demo or on another dataset (e.g. a split of a SALICON-layout fixture under ``data_root``)."""
    return ExtractConfig(
        dataset=dataset,
        data_root=data_root,
        split=split,
        out=out,
        model=ModelSettings(model),
        capture=CaptureSettings(max_new_tokens=12, layers="all"),
        shard_size=4,
        batch_size=2,
    )


def run_without_ray(config: ExtractConfig) -> None:
    """Every shard of ``config`` not yet committed, through the pipeline's steps in this process."""
    plan = plan_run(config)
    config.out.mkdir(parents=True, exist_ok=True)
    with output_lock(config.out, RUN_ID) as lock:
        state = prepare_output(plan, overwrite=False)
        write_atomic(config.out / RUN_CONFIG_FILE, config.to_json().encode())
        work = select_work(plan.shards, state, config.out, retry_failed=False)
        journal = RunJournal(config.out, RUN_ID)
        journal.write("start", shards=[w.shard.index for w in work], images=sum(w.n_images for w in work))
        actor = ExtractorActor(plan.model_dir, config.model, config.capture, config.prompt, config.batch_size)
        for item in work:
            output = actor.process(load_shard(item, config.image_size))
            staged = stage_shard(
                config.out, item, output, plan.geometry, config.prompt, RUN_ID, plan.attributes["config_digest"]
            )
            commit_staged(config.out, staged, lock)
            summary = staged.summary
            journal.write("commit", shard=summary.index, done=summary.done, failed=summary.failed)
        journal.write("end")


def build(
    out: Path,
    timeout: float = 300,
    model: str = "tiny-random",
    dataset: str = "demo",
    data_root: Path | None = None,
    split: str | None = None,
) -> Path:
    """Run this module on ``out`` in a fresh process (from the repository root); returns ``out``."""
    where = [str(data_root or ""), split or ""]
    cmd = [sys.executable, "-m", "tests.ray_free_run", str(out), model, dataset, *where]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=Path(__file__).parents[1])
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


if __name__ == "__main__":  # OUT [MODEL [DATASET [DATA_ROOT [SPLIT]]]]
    args = sys.argv[1:]
    root = Path(args[3]) if len(args) > 3 and args[3] else None
    split = args[4] if len(args) > 4 and args[4] else None
    run_without_ray(readers_demo_config(as_out(args[0]), *args[1:3], data_root=root, split=split))
