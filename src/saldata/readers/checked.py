"""The store's arrays as readers hand them out: a chunk that fails its checksum is named in one line.

Every chunk ends with a CRC-32C (``storage/zarr_store.py``), so zarr detects a flipped byte, but
says only "Stored and computed checksum do not match", as a ``ValueError`` deep in a traceback.
``CheckedGroup`` wraps the opened store; its arrays read exactly as zarr's do, and turn that
error into a ``DamagedChunkError`` naming the array, the image (idx and id), its shard and the
shard's file, and what to do. Nothing is read twice while the chunks are sound: only a failed
read looks, image by image, for the first damaged one.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from saldata.errors import DamagedChunkError
from saldata.schemas.store import IMAGE_COORDINATE, STORE_DIRNAME

CHECKSUM_MISMATCH = "checksum do not match"  # zarr's crc32c codec and numcodecs' checksums both say this


def is_checksum_error(exc: BaseException) -> bool:
    return isinstance(exc, ValueError) and CHECKSUM_MISMATCH in str(exc)


class CheckedGroup:
    """A zarr group of an output whose arrays are ``CheckedArray``; everything else as zarr's group has it."""

    def __init__(self, group, out: Path):
        self.zarr_group = group
        self.out = out

    def __getitem__(self, name: str) -> CheckedArray:
        return CheckedArray(self.zarr_group[name], self)

    def __contains__(self, name: str) -> bool:
        return name in self.zarr_group

    def arrays(self) -> Iterator[tuple[str, CheckedArray]]:
        for name, array in self.zarr_group.arrays():
            yield name, CheckedArray(array, self)

    def __getattr__(self, name: str):
        return getattr(self.zarr_group, name)

    def image_id(self, idx: int) -> str | None:
        """Image ``idx``'s id: the store's coordinate, else (an older store, or that array damaged too) the catalog's."""
        if IMAGE_COORDINATE in self.zarr_group:
            try:
                found = str(self.zarr_group[IMAGE_COORDINATE][idx])
                if found:
                    return found
            except ValueError:
                pass
        try:
            from saldata.storage.catalog import read_table

            images = read_table(self.out, "images").select(["idx", "image_id"]).to_pydict()
            return dict(zip(images["idx"], images["image_id"])).get(idx)
        except Exception:  # the id is a courtesy: the damage is reported without it
            return None


class CheckedArray:
    """A zarr array whose reads raise ``DamagedChunkError`` for a chunk that fails its checksum."""

    def __init__(self, array, group: CheckedGroup):
        self.zarr_array = array
        self._group = group

    def __getitem__(self, key):
        try:
            return self.zarr_array[key]
        except ValueError as exc:
            if not is_checksum_error(exc):
                raise
        raise self.damaged(key)

    def __getattr__(self, name: str):
        return getattr(self.zarr_array, name)

    def __len__(self) -> int:
        return len(self.zarr_array)

    def __dask_tokenize__(self):  # dask names a task by its array: the zarr array's own token
        from dask.base import tokenize

        return ("saldata-checked", tokenize(self.zarr_array))

    def damaged(self, key) -> DamagedChunkError:
        """The error for a failed read of ``key``: the first image it covers whose chunks fail.

        Shard by shard first, then image by image within the failing shard: the search reads
        about what the failed read did, not once more per image."""
        key = key if isinstance(key, tuple) else (key,)
        rest = key[1:] if key and key[0] is not Ellipsis else (Ellipsis,)
        images = _images(key[0] if key else Ellipsis, self.zarr_array.shape[0])
        per_shard = (self.zarr_array.shards or self.zarr_array.chunks)[0]
        shards: dict[int, list[int]] = {}
        for idx in images:
            shards.setdefault(idx // per_shard, []).append(idx)
        for shard_images in shards.values():
            if len(shard_images) > 1 and not self._fails(sorted(shard_images), rest):
                continue
            for idx in shard_images:
                if self._fails(idx, rest):
                    return DamagedChunkError(self._message(idx))
        return DamagedChunkError(self._message(None))

    def _fails(self, images: int | list[int], rest: tuple) -> bool:
        """Whether reading image ``images`` (or the run from the first to the last of a list), with the
        rest of the key, fails a checksum."""
        first = images if isinstance(images, int) else slice(images[0], images[-1] + 1)
        try:
            self.zarr_array[(first, *rest)]
        except Exception as exc:  # any other failure is not what is looked for
            return is_checksum_error(exc)
        return False

    def _message(self, idx: int | None) -> str:
        array = self.zarr_array
        name = array.path.rsplit("/", 1)[-1]
        out = self._group.out
        repair = f"run saldata verify {shlex.quote(str(out))}; rerun the extract to repair it"
        if idx is None:  # not found again (a read of another shape): the array alone
            return f"{out}: array {name} has a chunk that fails its checksum; {repair}."
        shard = idx // (array.shards or array.chunks)[0]
        file = f"{STORE_DIRNAME}/{name}/{array.metadata.encode_chunk_key((shard,) + (0,) * (array.ndim - 1))}"
        image_id = self._group.image_id(idx)
        image = f"image idx {idx}" + (f" ({image_id})" if image_id else "")
        return f"{out}: array {name}, {image}, shard {shard} ({file}): a chunk fails its checksum; {repair}."


def _images(first, n: int) -> list[int]:
    """The image indices a key's first element covers."""
    if first is Ellipsis:
        return list(range(n))
    if isinstance(first, slice):
        return list(range(n))[first]
    if isinstance(first, (int, np.integer)):
        return [int(first) % n] if -n <= int(first) < n else []
    picked = np.asarray(first)
    picked = np.flatnonzero(picked) if picked.dtype == bool else picked.ravel()
    return [int(i) % n for i in picked]
