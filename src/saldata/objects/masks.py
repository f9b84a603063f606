"""An output's object masks, looked up by (idx, object_id[, source]) and decoded at the stored size."""

from __future__ import annotations

import shlex

import numpy as np
import pyarrow as pa

from saldata.errors import ConfigError, NotInOutputError
from saldata.objects.annotation import SOURCES
from saldata.objects.rle import decode


class ObjectMasks:
    """The ``object_masks`` table, indexed once; ``mask`` gives one object's mask, bool (height, width)."""

    def __init__(self, masks: pa.Table, image_size: tuple[int, int], out):
        self.width, self.height = image_size
        self.out = out
        rows = masks.to_pydict()
        self.by_key: dict[tuple[int, int], dict[str, str]] = {}
        for idx, object_id, source, rle in zip(rows["idx"], rows["object_id"], rows["source"], rows["rle"]):
            self.by_key.setdefault((idx, object_id), {})[source] = rle

    def mask(self, idx: int, object_id: int, source: str | None = None) -> np.ndarray:
        if source is not None and source not in SOURCES:
            raise ConfigError(f"source must be one of {', '.join(SOURCES)}, not {source!r}.")
        found = self.by_key.get((idx, object_id), {})
        if source is not None:
            found = {source: found[source]} if source in found else {}
        if not found:
            listing = f'saldata catalog query {shlex.quote(str(self.out))} "SELECT idx, object_id, source FROM objects"'
            raise NotInOutputError(
                f"{self.out}: no object with object_id {object_id!r} on image idx {idx!r}"
                + (f" from {source}" if source else "")
                + f" (saldata objects adds them); list them with: {listing}"
            )
        if len(found) > 1:
            raise ConfigError(
                f"object_id {object_id} of image idx {idx} is in both {' and '.join(sorted(found))}; "
                f"name one: object_mask({idx}, {object_id}, source={sorted(found)[0]!r})."
            )
        rle = {"size": [self.height, self.width], "counts": next(iter(found.values())).encode("ascii")}
        return decode(rle).astype(bool)
