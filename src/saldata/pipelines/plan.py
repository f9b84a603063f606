"""Cut the image list into shards: the unit of work, of writing and (later) of commit.

A shard of K consecutive ``idx`` values is written by exactly one worker, and the Zarr
arrays are sharded along the image axis with the same K, so no two writers ever touch one
Zarr shard file.
"""

from __future__ import annotations

from dataclasses import dataclass

from saldata.datasets.base import ImageSource


@dataclass(frozen=True, slots=True)
class Shard:
    index: int
    start: int
    sources: tuple[ImageSource, ...]

    @property
    def stop(self) -> int:
        return self.start + len(self.sources)


@dataclass(frozen=True, slots=True)
class ShardWork:
    """A shard to (re)process; ``retry`` limits it to those image indices of a committed shard."""

    shard: Shard
    retry: tuple[int, ...] = ()

    @property
    def n_images(self) -> int:
        return len(self.retry) or len(self.shard.sources)


def plan_shards(sources: list[ImageSource], shard_size: int) -> list[Shard]:
    return [
        Shard(index=i, start=start, sources=tuple(sources[start : start + shard_size]))
        for i, start in enumerate(range(0, len(sources), shard_size))
    ]
