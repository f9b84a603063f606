"""Ray for a run: start (or join) the cluster, create the model actors, and ask them how far they are.

A local run starts a private Ray with a reaper (``reaper.py``) that stops it if the driver dies;
``--address`` joins a cluster. One model actor per GPU (or one on CPU) holds the model.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from saldata.errors import ConfigError, StoreError
from saldata.pipelines.config import ExtractConfig
from saldata.pipelines.model_actor import ExtractorActor
from saldata.pipelines.ray_failures import raise_if_model_failed

_REAPERS: list = []


def ensure_ray(address: str | None) -> None:
    import ray

    if ray.is_initialized():
        return
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    # A private Ray reports nothing home (air-gapped nodes: README "Air-gapped clusters").
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
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


def actors_on_gpus(config: ExtractConfig) -> bool:
    import ray

    return ray.cluster_resources().get("GPU", 0) > 0 and config.model.device != "cpu"


def image_processor_on_workers(config: ExtractConfig) -> bool:
    if config.image_processor_on == "auto":
        return actors_on_gpus(config)
    return config.image_processor_on == "workers"


def start_actors(config: ExtractConfig, model_dir: Path) -> list:
    """Connect to (or start) Ray and create the model actors; they load the model while the caller goes on."""
    # Never let a Ray call made after shutdown (a handle freed late) attach to whatever cluster
    # /tmp/ray last recorded: saldata always says which cluster it means. Read when ray is imported.
    os.environ["RAY_ENABLE_AUTO_CONNECT"] = "0"
    import ray

    ensure_ray(config.address)
    gpus = int(ray.cluster_resources().get("GPU", 0))
    if config.model.device.startswith("cuda") and gpus == 0:
        raise ConfigError("--device cuda was asked for but the Ray cluster has no GPU.")
    if actors_on_gpus(config):
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


def wait_for_actors(actors: list, model_dir: Path, timeout_s: float = 600.0) -> None:
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
