"""Stream a run's shards through Ray: decode, model, stage; the driver commits what comes out.

Up to ``ahead`` shards are decoded or queued before the model actors, and their writes trail the
model by a bounded number more, so the actors are kept fed while memory stays bounded. A shard
whose work died with a node, worker or actor is resubmitted whole (Ray's own silent retries are
off, so every retry is seen and journaled).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from saldata.errors import StoreError
from saldata.pipelines.live_progress import ProgressRecorder
from saldata.pipelines.plan import ShardWork
from saldata.pipelines.ray_failures import ShardLost, get_shard
from saldata.pipelines.ray_runtime import ModelCounts, image_processor_on_workers, start_actors, wait_for_actors
from saldata.pipelines.signals import Interrupted, deferred
from saldata.pipelines.steps import load_shard, stage_shard

if TYPE_CHECKING:
    from saldata.pipelines.extract import RunPlan

WAIT_S = 0.5  # longest a signal waits to be acted on while the driver waits for Ray
# Writes may trail the model by this many times the read-ahead before the model waits for them.
WRITE_LAG = 2
MAX_SHARD_ATTEMPTS = 3
RELEASE_WAIT_S = 60.0


def stream_shards(
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
    processor_dir = plan.model_dir if image_processor_on_workers(config) else None
    load_task = ray.remote(num_cpus=0.5)(load_shard)
    write_task = ray.remote(num_cpus=0.5, max_retries=0)(stage_shard)
    attempts: dict[tuple, int] = {}
    # Up to `ahead` shards are loaded or queued before the model; writes trail it by up to
    # WRITE_LAG x ahead more (8B maps can take longer to compress than to make), as far as the host
    # memory budget allows: each shard submitted and not yet staged may hold its maps in the object store.
    budgeted = plan.maps_budget.shards_in_flight * len(actors)
    ahead = min(config.prefetch_shards * len(actors), budgeted)
    most = min(budgeted, ahead * (1 + WRITE_LAG))
    todo = list(work)
    queued: dict = {}  # the model's result for each shard not yet through it
    inflight = live.writes  # each shard's write, until it lands; the caller releases what is left
    while todo or inflight:
        while todo and len(queued) < ahead and len(inflight) < most:
            item = todo.pop(0)
            loaded = load_task.remote(item, config.image_size, processor_dir)
            output = actors[item.shard.index % len(actors)].process.remote(loaded)
            queued[output] = item.shard
            ref = write_task.remote(
                config.out,
                item,
                output,
                plan.geometry,
                config.prompt,
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
            staged = get_shard(ready[0], item.shard, config.out, plan.model_dir)
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
            wait_for_actors(actors, plan.model_dir)  # a restarting actor refuses calls until it is back
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


def _key(item: ShardWork) -> tuple:
    return (item.shard.index, item.retry)
