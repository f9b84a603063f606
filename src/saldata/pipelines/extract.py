"""The extraction run: plan, take the output, stream shards through Ray, commit, report.

The driver only plans and schedules; Ray CPU tasks decode images and write shards, and one
model actor per GPU (or one on CPU) runs the model. At most ``window`` shards are in flight,
which bounds memory and keeps the actors fed while earlier shards are being written. Every
shard commits on its own, so a run killed at any point resumes where its commits stop.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from saldata import __version__
from saldata.datasets import ImageSource, list_images
from saldata.errors import ConfigError, ImageLoadError, ModelLoadError, SaldataError, StoreError
from saldata.extractors.layout import layout_for
from saldata.extractors.models import HUB_KERNELS, load_config, resolve_model_dir
from saldata.extractors.settings import resolve_layers
from saldata.faults import fault_point
from saldata.pipelines.config import ExtractConfig
from saldata.pipelines.live_progress import ProgressRecorder, RunProgress
from saldata.pipelines.model_actor import ExtractorActor
from saldata.pipelines.plan import Shard, ShardWork, plan_shards
from saldata.pipelines.resume import GUARDED_ATTRIBUTES, RUN_CONFIG_FILE, OutputState, prepare_output, select_work
from saldata.pipelines.signals import Interrupted, deferred
from saldata.pipelines.steps import ShardSummary, StagedShard, load_shard, stage_shard
from saldata.schemas.store import ARRAYS, STORE_SCHEMA_VERSION, Geometry
from saldata.storage.catalog import catalog_dir
from saldata.storage.commits import commit, write_atomic
from saldata.storage.journal import RunJournal
from saldata.storage.lock import OutputLock, output_lock
from saldata.storage.os_errors import explain
from saldata.storage.zarr_store import store_path

_REAPERS: list = []
WAIT_S = 0.5  # longest a signal waits to be acted on while the driver waits for Ray

# Writes may trail the model by this many times the read-ahead before the model waits for them.
WRITE_LAG = 2


@dataclass(frozen=True, slots=True)
class RunPlan:
    config: ExtractConfig
    shards: list[Shard]
    model_dir: Path
    geometry: Geometry
    attributes: dict

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


def list_sources(config: ExtractConfig) -> list[ImageSource]:
    """The run's images in idx order; fails fast, before anything heavy, on a bad dataset."""
    sources = list_images(config.dataset, config.data_root, config.split)
    return sources[: config.limit] if config.limit is not None else sources


def sources_digest(sources: list[ImageSource]) -> str:
    """Which images, in which order: a resumed output must be made of the same list."""
    listing = "\n".join(f"{s.dataset}\t{s.split}\t{s.image_id}" for s in sources)
    return hashlib.sha256(listing.encode()).hexdigest()[:16]


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
    return RunPlan(config, plan_shards(sources, config.shard_size), model_dir, geometry, attributes)


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
        )
        done = failed = committed_images = 0
        actor_stats: list[dict] = []
        recorder = ProgressRecorder(config.out, run_id, sum(w.n_images for w in work), on_progress)

        def retried(shard: int, attempt: int, reason: str) -> None:
            journal.write("retry", shard=shard, attempt=attempt, reason=reason)

        live = LiveWork(recorder=recorder)
        stream = _stream(plan, work, actor_stats, actors, run_id, live, retried) if work else iter(())
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
    """Keep the full report of a failure inside Ray in the journal; the console gets one line."""

    def on_exit(exc_type, exc, tb) -> bool:
        if isinstance(exc, RayFailure):
            journal.write("error", message=str(exc), report=exc.detail)
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


def _stream(
    plan: RunPlan,
    work: list[ShardWork],
    actor_stats: list[dict],
    actors: list | None,
    run_id: str,
    live: LiveWork,
    on_retry: Callable[[int, int, str], None] | None = None,
):
    """Yield each shard as its files are staged; fills ``actor_stats`` when the last one is in.

    What it starts in Ray is kept in ``live``, for the caller to release however the run ends.

    A shard whose work was lost (a dead node, worker or model actor) is resubmitted whole, up to
    ``MAX_SHARD_ATTEMPTS`` times, and ``on_retry(shard, attempt, reason)`` says so: Ray's own
    silent retries are off, so every retry is seen and journaled.
    """
    import ray

    config = plan.config
    actors = actors or start_actors(config, plan.model_dir)  # given actors mean Ray is already up
    live.actors = actors
    live.counts = ModelCounts(actors, plan.model_dir)
    processor_dir = plan.model_dir if _image_processor_on_workers(config) else None
    load_task = ray.remote(num_cpus=0.5)(load_shard)
    write_task = ray.remote(num_cpus=0.5, max_retries=0)(stage_shard)
    attempts: dict[tuple, int] = {}
    # Up to `ahead` shards are loaded or queued before the model; writes trail it by up to
    # WRITE_LAG x ahead more (8B maps can take longer to compress than to make).
    ahead = config.prefetch_shards * len(actors)
    todo = list(work)
    queued: dict = {}  # the model's result for each shard not yet through it
    inflight = live.writes  # each shard's write, until it lands; the caller releases what is left
    while todo or inflight:
        while todo and len(queued) < ahead and len(inflight) < ahead * (1 + WRITE_LAG):
            item = todo.pop(0)
            loaded = load_task.remote(item, config.image_size, processor_dir)
            outcomes = actors[item.shard.index % len(actors)].process.remote(loaded)
            queued[outcomes] = item.shard
            ref = write_task.remote(
                config.out,
                item,
                outcomes,
                plan.geometry,
                config.prompt.id,
                run_id,
                plan.attributes["config_digest"],
                attempts.get(_key(item), 1),
            )
            inflight[ref] = item
        # fetch_local=False: the model's outputs go from the actor to the writer, never via the driver.
        with deferred():  # a signal waits for the end of this wait (signals.py says why)
            ready, _ = ray.wait([*queued, *inflight], num_returns=1, fetch_local=False, timeout=WAIT_S)
        live.tick()
        if not ready:
            continue
        if ready[0] in queued:
            del queued[ready[0]]
            continue
        item = inflight.pop(ready[0])
        try:
            staged = _get_shard(ready[0], item.shard, config.out, plan.model_dir)
        except ShardLost as lost:
            attempt = attempts.get(_key(item), 1) + 1
            if attempt > MAX_SHARD_ATTEMPTS:
                raise StoreError(
                    f"Shard {item.shard.index} was lost {MAX_SHARD_ATTEMPTS} times ({lost}); it stays "
                    "uncommitted. Check the cluster's nodes and rerun the same command to resume."
                ) from None
            attempts[_key(item)] = attempt
            if on_retry:
                on_retry(item.shard.index, attempt, str(lost))
            _wait_for_actors(actors, plan.model_dir)  # a restarting actor refuses calls until it is back
            todo.insert(0, item)
            continue
        yield staged
    actor_stats.extend(ray.get([actor.stats.remote() for actor in actors], timeout=60))


@dataclass
class LiveWork:
    """What a run has running in Ray: its model actors and the shard writes not yet in."""

    actors: list = field(default_factory=list)
    writes: dict = field(default_factory=dict)
    recorder: ProgressRecorder | None = None
    counts: ModelCounts | None = None

    def tick(self) -> None:
        """Pass the model's live image count on to the progress record."""
        if self.counts and self.recorder:
            processed = self.counts.poll()
            if processed is not None:
                self.recorder.update(processed=processed)

    def release_on_exit(self, exc_type, exc, tb) -> bool:
        self.release(wait=not isinstance(exc, Interrupted))
        return False

    def release(self, wait: bool = True) -> None:
        """Stop the model actors and let the shard writes still running settle.

        No ``ray.cancel``: cancelling a task while its reply arrives crashes the driver inside
        Ray (ray-project/ray#54846). A write whose model actor is gone fails at once; one that has
        its input finishes staging, which is harmless (only the driver commits, and the next run
        sweeps ``staging/``). The wait is bounded, so a stuck node cannot hold the driver, and
        skipped on a signal, after which the caller stops Ray at once.
        """
        import ray

        actors, writes = self.actors, list(self.writes)
        self.actors, self.writes = [], {}
        if not ray.is_initialized():
            return
        for actor in actors:
            ray.kill(actor)
        if writes and wait:
            ray.wait(writes, num_returns=len(writes), timeout=RELEASE_WAIT_S, fetch_local=False)


RELEASE_WAIT_S = 60.0


MAX_SHARD_ATTEMPTS = 3


class ShardLost(Exception):
    """A shard's work died with a node, a worker or the model actor; the shard can be redone."""


def _wait_for_actors(actors: list, model_dir: Path, timeout_s: float = 600.0) -> None:
    import ray

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            ray.get([actor.stats.remote() for actor in actors], timeout=60)
            return
        except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError) as exc:
            raise_if_model_failed(exc, model_dir)
            if time.monotonic() > deadline:
                raise StoreError(f"The model actors did not come back within {timeout_s:.0f} s.") from None
            time.sleep(1.0)


class RayFailure(SaldataError):
    """A failure inside Ray: one line for the console, and ``detail``, Ray's full report, for the journal."""

    def __init__(self, message: str, detail: str):
        super().__init__(message)
        self.detail = detail


class ModelFailed(RayFailure, ModelLoadError):
    """The model actor could not start."""


class WriteFailed(RayFailure, StoreError):
    """A shard's write task failed (the report holds the worker's traceback)."""


def raise_if_model_failed(exc: BaseException, model_dir: Path) -> None:
    """A model actor whose ``__init__`` raised never comes back: stop, naming the real cause."""
    import ray.exceptions as rex

    actor_error = exc if isinstance(exc, rex.RayActorError) else getattr(exc, "cause", None)
    if not (isinstance(actor_error, rex.RayActorError) and actor_error.actor_init_failed):
        return
    detail = _plain(str(actor_error))
    raise ModelFailed(
        f"The model could not be loaded from {model_dir}: {_root_cause(detail)}. Committed shards are "
        "untouched; check the model's files (or --model, --dtype, --device), then rerun the same command.",
        detail,
    ) from None


def _root_cause(report: str) -> str:
    """The innermost 'SomeError: message' line of a Python traceback Ray passed on as text."""
    causes = [line.strip() for line in report.splitlines() if re.match(r"\s*[\w.]+(Error|Exception)\b.*:", line)]
    return causes[-1] if causes else report.strip().splitlines()[-1] if report.strip() else "unknown cause"


def _plain(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;]*m", "", text)  # Ray colours its task names


def _key(item: ShardWork) -> tuple:
    return (item.shard.index, item.retry)


def _lost(exc: BaseException) -> bool:
    import ray.exceptions as rex

    kinds = (rex.RayActorError, rex.WorkerCrashedError, rex.NodeDiedError, rex.ObjectLostError)
    return isinstance(exc, kinds) or isinstance(getattr(exc, "cause", None), kinds)


def _get_shard(ref, shard: Shard, out: Path, model_dir: Path) -> StagedShard:
    import ray

    try:
        return ray.get(ref)
    except Exception as exc:
        raise_if_model_failed(exc, model_dir)
        if _lost(exc):
            raise ShardLost(_first_line(getattr(exc, "cause", None) or exc)) from None
        if not isinstance(exc, ray.exceptions.RayTaskError):
            raise
        cause = exc.cause if isinstance(exc.cause, Exception) else exc
        if isinstance(cause, SaldataError):
            raise cause from None
        reason = explain(cause, out) if isinstance(cause, OSError) else f"{type(cause).__name__}: {cause}"
        raise WriteFailed(
            f"Shard {shard.index} (images {shard.start}..{shard.stop - 1}) could not be written to {out}: "
            f"{reason}. It stays uncommitted; committed shards are untouched. "
            "Fix the cause and rerun the same command to resume.",
            _plain(str(exc)),
        ) from None


def _ensure_ray(address: str | None) -> None:
    import ray

    if ray.is_initialized():
        return
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    # Every result saldata needs it gets; the ones left unread are those of work dropped on
    # purpose (the writes of a killed actor after Ctrl-C), and Ray's report of them is noise.
    os.environ.setdefault("RAY_IGNORE_UNHANDLED_ERRORS", "1")
    # Workers' own output stays in Ray's session logs: failures reach the driver as exceptions,
    # and the console shows saldata's lines only.
    kwargs = dict(include_dashboard=False, configure_logging=True, logging_level="ERROR", log_to_driver=False)
    # "local" always starts a private Ray, never attaching to a cluster someone else started here.
    ray.init(address=address or "local", **kwargs, **({} if address else {"num_cpus": os.cpu_count()}))
    if not address:
        from saldata.pipelines.reaper import start_reaper

        _REAPERS.append(start_reaper())  # held, so it is never collected (and waited for) early


def _actors_on_gpus(config: ExtractConfig) -> bool:
    import ray

    return ray.cluster_resources().get("GPU", 0) > 0 and config.model.device != "cpu"


def _image_processor_on_workers(config: ExtractConfig) -> bool:
    if config.image_processor_on == "auto":
        return _actors_on_gpus(config)
    return config.image_processor_on == "workers"


def start_actors(config: ExtractConfig, model_dir: Path) -> list:
    """Connect to (or start) Ray and create the model actors; they load the model while the caller goes on."""
    # Never let a Ray call made after shutdown (a handle freed late) attach to whatever cluster
    # /tmp/ray last recorded: saldata always says which cluster it means. Read when ray is imported.
    os.environ["RAY_ENABLE_AUTO_CONNECT"] = "0"
    import ray

    _ensure_ray(config.address)
    gpus = int(ray.cluster_resources().get("GPU", 0))
    if config.model.device.startswith("cuda") and gpus == 0:
        raise ConfigError("--device cuda was asked for but the Ray cluster has no GPU.")
    if _actors_on_gpus(config):
        per_actor = gpus if config.model.device_map else 1
        count = config.num_actors or max(1, gpus // per_actor)
        options = dict(num_cpus=1, num_gpus=per_actor)
        threads = None
    else:
        count = config.num_actors or 1
        options = dict(num_cpus=1)
        # The CPU model actor is the bottleneck; let torch use the node's cores (decode tasks are light).
        threads = max(1, (os.cpu_count() or 1) // count)
    # A dead actor (OOM, preempted node) is restarted and its unfinished calls retried.
    # Calls in flight on a dead actor fail (no silent retry): the driver resubmits their shards.
    # The "progress" group answers the driver's count requests while ``process`` runs.
    actor_cls = ray.remote(max_restarts=-1, max_task_retries=0, concurrency_groups={PROGRESS_GROUP: 1})(ExtractorActor)
    return [
        actor_cls.options(**options).remote(
            model_dir, config.model, config.capture, config.prompt, config.batch_size, threads
        )
        for _ in range(count)
    ]


PROGRESS_GROUP = "progress"


class ModelCounts:
    """Images the model actors have finished, asked for without ever blocking the driver's loop."""

    def __init__(self, actors: list, model_dir: Path):
        self.actors = actors
        self.model_dir = model_dir
        self.counts = [0] * len(actors)
        self.asked: dict = {}  # request -> actor position
        self.answered = False

    def poll(self) -> int | None:
        """The sum of the latest counts, or None until a model actor has answered (it is loading)."""
        import ray

        if self.asked:
            ready, _ = ray.wait(list(self.asked), num_returns=len(self.asked), timeout=0, fetch_local=True)
            for ref in ready:
                position = self.asked.pop(ref)
                try:
                    self.counts[position] = ray.get(ref)
                    self.answered = True
                except ray.exceptions.RayError as exc:  # dead or restarting: asked again, unless it cannot load
                    raise_if_model_failed(exc, self.model_dir)
                    self.counts[position] = 0
        waiting = set(self.asked.values())
        for position, actor in enumerate(self.actors):
            if position not in waiting:
                self.asked[actor.progress.options(concurrency_group=PROGRESS_GROUP).remote()] = position
        return sum(self.counts) if self.answered else None


def _prod(shape: tuple[int, ...]) -> int:
    total = 1
    for n in shape:
        total *= n
    return total


def _first_line(exc: BaseException) -> str:
    text = _plain(str(exc)).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__
