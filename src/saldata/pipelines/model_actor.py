"""The model actor: holds one model and runs decoded shards through it in batches.

Its own module so that the actor process imports only what the model needs: the CPU steps'
Parquet and Zarr writers stay out of it (and torch stays out of the CPU workers, which import
this module only for ``ImageOutcome``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from saldata.extractors.models import ModelSettings
from saldata.extractors.prompts import Prompt
from saldata.extractors.settings import CaptureSettings
from saldata.pipelines.host_memory import ShardBlock
from saldata.pipelines.preprocess import LoadedImage

if TYPE_CHECKING:
    from saldata.extractors.llava_next import TokenCapture


@dataclass(slots=True)
class ImageOutcome:
    image: LoadedImage
    capture: TokenCapture | None  # without its maps: those travel in ``ModelOutput.maps``
    model_s: float
    error: str | None


@dataclass(slots=True)
class ModelOutput:
    """A shard through the model: each image's outcome, and the maps of all its images, one row per
    image in the order given, in their stored dtypes (``host_memory.MAP_ARRAYS``). A row whose image
    failed holds the fill value 0. ``maps`` is None when no image reached the model.

    ``maps`` are views of the actor's reused block (``host_memory.ShardBlock``): Ray copies them
    into its object store as ``process`` returns; a caller in the same process must use them
    before the next ``process`` call."""

    outcomes: list[ImageOutcome]
    maps: dict[str, np.ndarray] | None


class ExtractorActor:
    """Holds one model; ``process`` runs a shard's decoded images through it in batches."""

    def __init__(
        self,
        model_dir: Path,
        model: ModelSettings,
        capture: CaptureSettings,
        prompt: Prompt,
        batch_size: int | str,
        threads: int | None = None,
    ):
        import torch

        from saldata.extractors.batching import BatchSizer
        from saldata.extractors.llava_next import LlavaNextExtractor

        if threads:
            torch.set_num_threads(threads)
        self.extractor = LlavaNextExtractor(model_dir, model, capture, prompt)
        self.batch = BatchSizer(batch_size, self.extractor.model)
        self.block = ShardBlock(pinned=self.extractor.device.type == "cuda")
        self.busy_s = 0.0
        self.images_done = 0  # through the model (or failed before it), read live by ``progress``
        self.first_call: float | None = None
        self.last_return: float | None = None

    def stats(self) -> dict:
        """Time spent inside ``process`` against the span from its first call to its last return.

        A busy fraction near 1 means decoding and writing kept up: the model never waited for input.
        """
        span = (self.last_return - self.first_call) if self.first_call and self.last_return else 0.0
        return {"busy_s": self.busy_s, "span_s": span, "batch_size": self.batch.size}

    def progress(self) -> int:
        """Images finished so far. Called in its own concurrency group, so it answers mid-``process``."""
        return self.images_done

    def process(self, images: list[LoadedImage]) -> ModelOutput:
        start = time.perf_counter()
        self.first_call = self.first_call or start
        try:
            return self._process(images)
        finally:
            self.last_return = time.perf_counter()
            self.busy_s += self.last_return - start

    def _process(self, images: list[LoadedImage]) -> ModelOutput:
        outcomes = {im.idx: ImageOutcome(im, None, 0.0, im.error) for im in images if im.error}
        self.images_done += len(outcomes)
        ready = [im for im in images if im.error is None]
        row_of = {im.idx: row for row, im in enumerate(images)}
        maps = self.block.rows(len(images), self._map_shapes(ready[0])) if ready else None
        first = 0
        while first < len(ready):
            batch = ready[first : first + self.batch.size]
            ran = self._run_batch(batch, maps, [row_of[im.idx] for im in batch])
            if ran is None:  # out of memory: the same images again, fewer per call
                self.batch.release()
                continue
            outcomes.update((outcome.image.idx, outcome) for outcome in ran)
            self.images_done += len(batch)
            first += len(batch)
        if maps is not None:  # the block is reused: rows without a capture must hold the fill value
            empty = [row_of[idx] for idx, outcome in outcomes.items() if outcome.capture is None]
            for array in maps.values():
                array[empty] = 0
        for outcome in outcomes.values():
            outcome.image.pixels = outcome.image.inputs = None  # do not ship pixels on to the writer
        return ModelOutput([outcomes[im.idx] for im in images], maps)

    def _map_shapes(self, image: LoadedImage) -> dict[str, tuple[int, ...]]:
        if image.inputs is not None:
            height, width = image.inputs.image_size
        else:
            height, width = image.pixels.shape[:2]
        return self.extractor.map_shapes(self.extractor.layout((width, height)))

    def _run_batch(self, batch: list[LoadedImage], maps: dict, rows: list[int]) -> list[ImageOutcome] | None:
        """The batch's outcomes, its maps written into ``rows`` of ``maps``; None when it ran out of
        memory and should be retried smaller."""
        # The batch is captured into the block's rows from rows[0] on; where a failed image breaks the
        # run of rows, they are moved into place after (no copy of the batch beside the block).
        out = {name: array[rows[0] : rows[0] + len(rows)] for name, array in maps.items()}
        try:
            captures, seconds = self.batch.run(
                lambda inputs: self.extractor(inputs, out=out),
                [im.pixels if im.inputs is None else im.inputs for im in batch],
            )
        except Exception as exc:  # a batch that breaks the model fails its images, not the run
            if self.batch.shrink(exc, len(batch)):
                return None
            return [
                ImageOutcome(im, None, 0.0, f"{im.source.path}: model failed ({type(exc).__name__}: {exc})")
                for im in batch
            ]
        for i in reversed(range(len(rows))):  # rows[i] >= rows[0] + i: last first, nothing is overwritten early
            if rows[i] != rows[0] + i:
                for array in maps.values():
                    array[rows[i]] = array[rows[0] + i]
        return [
            ImageOutcome(im, capture.without_maps(), seconds / len(batch), None) for im, capture in zip(batch, captures)
        ]
