"""The host memory a run's maps may take, and where it goes.

A heavy capture (``--layers all --heads all`` on the 8B model: ~319 MB per image at 64 tokens)
is bounded by counting every place its maps live on the host against one budget per model actor:

- the actor's shard block: the shard's maps in their stored dtype, one block reused from shard to
  shard (pinned on a GPU node). The capture copies each batch from the device into its rows once,
  so a batch takes no host memory of its own;
- the shards in flight: each shard the model has finished but the writers have not yet staged
  holds one copy of its block in Ray's object store, which the writer reads without copying.

So a budget of B bytes and shard blocks of S bytes allow ``B // S - 1`` shards in flight per
actor; the model overlaps the writes only from 2 on. Outside the budget: each writer's working
memory while Zarr assembles a shard file from its compressed chunks. ``--host-memory`` sets B; by
default it is ``DEFAULT_SHARE`` of the node's available memory, divided among its model actors.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from saldata.errors import ConfigError
from saldata.schemas.store import ARRAY_SPECS, Geometry

MAP_ARRAYS = ("hidden", "attn_base", "attn_highres")  # what the model actor hands to the writers
DEFAULT_SHARE = 0.5  # of the node's available memory at start: the rest is the model, Ray, the OS
_UNITS = {"": 1, "b": 1, "k": 1e3, "kb": 1e3, "m": 1e6, "mb": 1e6, "g": 1e9, "gb": 1e9, "t": 1e12, "tb": 1e12}
_UNITS |= {"kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


def parse_bytes(text: str | int | None) -> int | None:
    """'32GB', '2.5G', '512MiB' or a number of bytes; None or 'auto' for the default."""
    if text is None or isinstance(text, int):
        return text
    if text.strip().lower() == "auto":
        return None
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", text)
    unit = match.group(2).lower() if match else None
    if not match or unit not in _UNITS:
        raise ConfigError(f"--host-memory must be a size such as 32GB, 2.5G or 512MiB (or auto), not {text!r}.")
    return int(float(match.group(1)) * _UNITS[unit])


def default_budget(actors_per_node: int) -> int:
    """``DEFAULT_SHARE`` of this node's available memory, divided among its model actors."""
    import psutil

    return int(DEFAULT_SHARE * psutil.virtual_memory().available / max(1, actors_per_node))


def actors_per_node(num_actors: int | None, device: str, device_map: str | None) -> int:
    """Model actors that will share this node's memory: --num-actors, else one per local GPU (one in
    all with --device-map, or on a CPU). Cluster nodes are taken to be like the driver's."""
    if num_actors:
        return num_actors
    if device == "cpu" or device_map:
        return 1
    import torch

    return max(1, torch.cuda.device_count())


@dataclass(frozen=True, slots=True)
class MapsBudget:
    """The budget's arithmetic for one model actor."""

    per_image: dict[str, int]  # bytes of each map array for one image, in its stored dtype
    shard_size: int
    budget: int
    given: bool  # --host-memory was given (else the default share)

    @classmethod
    def for_run(cls, config, geometry: Geometry) -> MapsBudget:
        """The budget of ``config`` (an ``ExtractConfig``) for a store of ``geometry``; not yet checked."""
        given = config.host_memory is not None
        model = config.model
        budget = (
            config.host_memory
            if given
            else default_budget(actors_per_node(config.num_actors, model.device, model.device_map))
        )
        return cls.plan(geometry, config.shard_size, budget, given)

    @classmethod
    def plan(cls, geometry: Geometry, shard_size: int, budget: int, given: bool) -> MapsBudget:
        per_image = {
            name: math.prod(ARRAY_SPECS[name].shape(geometry)[1:]) * ARRAY_SPECS[name].numpy_dtype().itemsize
            for name in MAP_ARRAYS
        }
        return cls(per_image, min(shard_size, geometry.n_images) or shard_size, budget, given)

    @property
    def image_bytes(self) -> int:
        return sum(self.per_image.values())

    @property
    def shard_bytes(self) -> int:
        return self.shard_size * self.image_bytes

    @property
    def shards_in_flight(self) -> int:
        """Shards the model may have finished before their writes are staged (one block is the actor's)."""
        return max(1, self.budget // max(1, self.shard_bytes) - 1)

    @property
    def peak(self) -> int:
        return (1 + self.shards_in_flight) * self.shard_bytes

    def check(self) -> None:
        """Refuse a budget that cannot hold the actor's block and one shard in flight."""
        from saldata.storage.os_errors import human_bytes  # the model actor imports this module: no pyarrow

        if self.budget >= 2 * self.shard_bytes:
            return
        what = "--host-memory" if self.given else f"the default host memory ({DEFAULT_SHARE:.0%} of what is available)"
        fitting = self.budget // (2 * self.image_bytes)
        if fitting < 1:
            raise ConfigError(
                f"{what} is {human_bytes(self.budget)} per model actor, less than two images' maps "
                f"({human_bytes(2 * self.image_bytes)}: one in the model, one being written). Capture fewer "
                "--layers or --heads mean, or give a larger --host-memory."
            )
        raise ConfigError(
            f"{what} is {human_bytes(self.budget)} per model actor, but a shard's maps take {human_bytes(self.shard_bytes)} "
            f"({self.shard_size} images x {human_bytes(self.image_bytes)}) and a run holds at least two shards (one in "
            f"the model, one being written). Use --shard-size {fitting} or less, fewer --layers or --heads mean, "
            "or a larger --host-memory."
        )


class ShardBlock:
    """The model actor's host memory for one shard's maps, allocated once and reused for every shard.

    Ray copies an actor method's return value into its object store when the method returns, so
    the block is free again for the next shard. On a GPU node it is pinned, so the device copies
    into it at full speed.
    """

    def __init__(self, pinned: bool):
        self.pinned = pinned
        self.arrays: dict[str, object] = {}

    def rows(self, n: int, shapes: dict[str, tuple[int, ...]]) -> dict:
        """The first ``n`` rows of each map array, in its stored dtype: allocated for the first shard's
        images (the budget's shard size, or fewer in a run of fewer images), grown only for a larger one."""
        import torch

        for name, shape in shapes.items():
            array = self.arrays.get(name)
            if array is None or array.shape[1:] != shape or array.shape[0] < n:
                self.arrays[name] = None  # let the old one go before the new one is made
                dtype = getattr(torch, ARRAY_SPECS[name].dtype)
                self.arrays[name] = torch.empty((n, *shape), dtype=dtype, pin_memory=self.pinned).numpy()
        return {name: self.arrays[name][:n] for name in shapes}
