"""The extraction run: plan, take the output, stream shards through Ray, commit, report.

The driver only plans, schedules (``shard_stream.py``, over the Ray runtime of ``ray_runtime.py``)
and commits; Ray CPU tasks decode images and write shards, and one model actor per GPU (or one
on CPU) runs the model. Every shard commits on its own, so a run killed at any point resumes
where its commits stop.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from saldata import __version__
from saldata.datasets import ImageSource
from saldata.errors import ConfigError, ImageLoadError, StoreError
from saldata.extractors.layout import layout_for
from saldata.extractors.models import HUB_KERNELS, load_config, resolve_model_dir
from saldata.extractors.settings import resolve_layers
from saldata.faults import fault_point
from saldata.pipelines.config import ExtractConfig
from saldata.pipelines.host_memory import MapsBudget
from saldata.pipelines.live_progress import ProgressRecorder, RunProgress
from saldata.pipelines.plan import Shard, ShardWork, plan_shards
from saldata.pipelines.ray_failures import RayFailure
from saldata.pipelines.resume import GUARDED_ATTRIBUTES, RUN_CONFIG_FILE, OutputState, prepare_output, select_work
from saldata.pipelines.shard_stream import LiveWork, stream_shards
from saldata.pipelines.sources import list_sources, sources_digest
from saldata.pipelines.steps import ShardSummary, StagedShard
from saldata.schemas.store import ARRAYS, STORE_SCHEMA_VERSION, Geometry
from saldata.storage.catalog import catalog_dir
from saldata.storage.commits import commit, write_atomic
from saldata.storage.journal import RunJournal
from saldata.storage.lock import OutputLock, output_lock
from saldata.storage.os_errors import explain
from saldata.storage.zarr_store import store_path


@dataclass(frozen=True, slots=True)
class RunPlan:
    config: ExtractConfig
    shards: list[Shard]
    model_dir: Path
    geometry: Geometry
    attributes: dict
    maps_budget: MapsBudget  # the host memory the maps may take per model actor, and what it allows

    @property
    def n_images(self) -> int:
        return self.geometry.n_images

    def array_bytes(self) -> dict[str, int]:
        """Uncompressed bytes of each store array (an upper bound on disk; padding compresses away)."""
        return {spec.name: _prod(spec.shape(self.geometry)) * spec.numpy_dtype().itemsize for spec in ARRAYS}


@dataclass(frozen=True, slots=True)
class RunSummary:
    out: Path
    images: int
    processed: int
    skipped_shards: int
    done: int
    failed: int
    seconds: float
    actor_busy_fraction: float | None = None
    batch_sizes: tuple[int, ...] = ()  # each model actor's images per call at the end (auto or after halving)

    @property
    def store(self) -> Path:
        return store_path(self.out)

    @property
    def catalog(self) -> Path:
        return catalog_dir(self.out)


def plan_run(config: ExtractConfig, sources: list[ImageSource] | None = None, model_dir: Path | None = None) -> RunPlan:
    """Everything decided before any work: images, shards, resolved model, store geometry. Writes nothing."""
    import transformers

    sources = list_sources(config) if sources is None else sources
    model_dir = model_dir or resolve_model_dir(config.model.model)
    model_config = load_config(model_dir)
    layout = layout_for(model_config, config.image_size)
    text = model_config.text_config
    layers = resolve_layers(config.capture.layers, text.num_hidden_layers, config.model.model)
    geometry = Geometry(
        n_images=len(sources),
        max_tokens=config.capture.max_new_tokens,
        hidden_size=text.hidden_size,
        heads=1 if config.capture.heads == "mean" else text.num_attention_heads,
        base_grid=layout.base_grid,
        highres_grid=layout.highres_grid,
        image_size=config.image_size,
        layers=len(layers),
    )
    attributes = {
        "schema_version": STORE_SCHEMA_VERSION,
        "model": config.model.model,
        "model_path": str(model_dir),
        "prompt": config.prompt.text,
        "prompt_id": config.prompt.id,
        "layers": list(layers),
        "n_decoder_layers": text.num_hidden_layers,
        "heads": config.capture.heads,
        "image_size": list(config.image_size),
        "base_grid": list(layout.base_grid),
        "highres_grid": list(layout.highres_grid),
        "max_new_tokens": config.capture.max_new_tokens,
        "shard_size": config.shard_size,
        "dtype": str(config.model.resolved_dtype()).removeprefix("torch."),
        "n_images": len(sources),
        "sources_digest": sources_digest(sources),
        "saldata_version": __version__,
        "transformers_version": transformers.__version__,
        "hub_kernels": HUB_KERNELS,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    guarded = json.dumps([attributes[key] for key in GUARDED_ATTRIBUTES], sort_keys=True)
    attributes["config_digest"] = hashlib.sha256(guarded.encode()).hexdigest()[:16]
    budget = MapsBudget.for_run(config, geometry)  # checked by pre-flight; a dry run shows it either way
    return RunPlan(config, plan_shards(sources, config.shard_size), model_dir, geometry, attributes, budget)


def run_extraction(
    plan: RunPlan,
    *,
    overwrite: bool = False,
    retry_failed: bool = False,
    on_start: Callable[[list[ShardWork], OutputState], None] | None = None,
    on_shard: Callable[[ShardSummary], None] | None = None,
    on_progress: Callable[[RunProgress], None] | None = None,
    actors: list | None = None,
    checked: bool = False,
) -> RunSummary:
    """Process every shard not yet committed in ``plan.config.out`` (and, optionally, failed images).

    ``on_progress`` hears the live counts (``pipelines/live_progress.py``) as the model finishes images.

    ``actors`` from ``start_actors`` lets a caller start the model loading before planning;
    ``checked``: the output passed pre-flight's ``check_output`` (``pipelines/preflight.py``).
    """
    config = plan.config
    start = time.perf_counter()
    run_id = f"{datetime.now(timezone.utc):%Y%m%dT%H%M%S}-{os.getpid()}"
    try:
        config.out.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise ConfigError(f"--out {config.out} is a file; give a directory (new or an earlier output).") from None
    except OSError as exc:
        raise StoreError(f"--out cannot be created: {explain(exc, config.out)}") from None
    with output_lock(config.out, run_id) as lock, contextlib.ExitStack() as stack:
        try:
            state = prepare_output(plan, overwrite, checked)
            write_atomic(config.out / RUN_CONFIG_FILE, config.to_json().encode())
        except OSError as exc:
            raise StoreError(
                f"{config.out} could not be prepared: {explain(exc, config.out)}. Nothing was committed; "
                "fix the cause and rerun the same command."
            ) from None
        work = select_work(plan.shards, state, config.out, retry_failed)
        if on_start:
            on_start(work, state)
        journal = RunJournal(config.out, run_id)
        journal.write(
            "start",
            shards=[w.shard.index for w in work],
            images=sum(w.n_images for w in work),
            committed_before=len(state.committed),
            damaged=sorted(state.damaged),
            retry_failed=retry_failed,
            host_memory=plan.maps_budget.budget,
            shard_maps_bytes=plan.maps_budget.shard_bytes,
            shards_in_flight=plan.maps_budget.shards_in_flight,
        )
        done = failed = committed_images = 0
        actor_stats: list[dict] = []
        recorder = ProgressRecorder(config.out, run_id, sum(w.n_images for w in work), on_progress)

        def retried(shard: int, attempt: int, reason: str) -> None:
            journal.write("retry", shard=shard, attempt=attempt, reason=reason)

        live = LiveWork(recorder=recorder)
        stream = stream_shards(plan, work, actor_stats, actors, run_id, live, retried) if work else iter(())
        # Released here, whatever ends the loop, never left to the garbage collector (which would
        # run the clean-up at some later moment, perhaps after Ray has stopped).
        stack.push(live.release_on_exit)
        stack.push(_journal_failure(journal))
        staged_shards = stream
        if config.fail_fast:  # commit in idx order, so nothing after the first failed image is committed
            staged_shards = _in_order(stream, [w.shard.index for w in work])
        for staged in staged_shards:
            commit_staged(config.out, staged, lock)
            summary = staged.summary
            journal.write(
                "commit", shard=summary.index, done=summary.done, failed=summary.failed, write_s=summary.write_s
            )
            done, failed = done + summary.done, failed + summary.failed
            committed_images += summary.done + summary.failed
            recorder.update(committed=committed_images)
            if on_shard:
                on_shard(summary)
            if config.fail_fast and summary.first_error:
                journal.write("end", done=done, failed=failed, stopped="fail-fast")
                raise ImageLoadError(
                    f"--fail-fast: stopped at the first failed image: {summary.first_error}. Its shard is "
                    "committed with the failure recorded; rerun without --fail-fast to go on."
                )
        recorder.finish()
        busy = _busy_fraction(actor_stats)
        batch_sizes = tuple(s["batch_size"] for s in actor_stats)
        journal.write("end", done=done, failed=failed, actor_busy_fraction=busy, batch_sizes=batch_sizes)
    return RunSummary(
        config.out,
        plan.n_images,
        done + failed,
        len(state.committed),
        done,
        failed,
        time.perf_counter() - start,
        busy,
        batch_sizes,
    )


def _journal_failure(journal: RunJournal):
    """Keep the full report of a failure inside Ray in the journal; the console gets one line.

    On a full disk the report cannot be kept: the line then points to no report.
    """

    def on_exit(exc_type, exc, tb) -> bool:
        if isinstance(exc, RayFailure) and journal.write("error", message=str(exc), report=exc.detail):
            exc.args = (f"{exc} Ray's full report: {journal.path}",)
        return False

    return on_exit


def _in_order(staged_shards, order: list[int]):
    """The staged shards in ``order``, each held back until those before it are through."""
    waiting: dict[int, StagedShard] = {}
    position = 0
    for staged in staged_shards:
        waiting[staged.record.shard] = staged
        while position < len(order) and order[position] in waiting:
            yield waiting.pop(order[position])
            position += 1


def commit_staged(out: Path, staged: StagedShard, lock: OutputLock) -> None:
    """The driver's half of the commit protocol (storage/commits.py), with a failure put in words."""
    shard = staged.record.shard
    fault_point("before-commit", shard)
    try:
        commit(out, staged.record, before_switch=lock.check)
    except OSError as exc:
        raise StoreError(
            f"Shard {shard} could not be committed: {explain(exc, out)}. Committed shards are untouched; fix the "
            "cause and rerun the same command (it finishes or redoes this shard)."
        ) from None


def _busy_fraction(stats: list[dict]) -> float | None:
    span = sum(s["span_s"] for s in stats)
    return sum(s["busy_s"] for s in stats) / span if span > 0 else None


def _prod(shape: tuple[int, ...]) -> int:
    total = 1
    for n in shape:
        total *= n
    return total
