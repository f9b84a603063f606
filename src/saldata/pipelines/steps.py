"""The pipeline's steps, each a plain function or class that Ray runs remotely.

load_shard (CPU task) -> ExtractorActor.process (model actor) -> write_shard (CPU task).
Decoding and writing never run on the model actor, so it only ever waits for the GPU.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from saldata.extractors.llava_next import CaptureSettings, LlavaNextExtractor, TokenCapture
from saldata.extractors.models import ModelSettings
from saldata.extractors.prompts import Prompt
from saldata.pipelines.plan import Shard, ShardWork
from saldata.pipelines.preprocess import LoadedImage, load_image
from saldata.schemas.catalog import STATUS_DONE, STATUS_FAILED
from saldata.schemas.store import ARRAYS, Geometry
from saldata.storage.catalog import commit_shard, merge_with_committed
from saldata.storage.zarr_store import write_rows


@dataclass(slots=True)
class ImageOutcome:
    image: LoadedImage
    capture: TokenCapture | None
    model_s: float
    error: str | None


@dataclass(frozen=True, slots=True)
class ShardSummary:
    index: int
    done: int
    failed: int
    tokens: int
    write_s: float


def load_shard(work: ShardWork, size: tuple[int, int]) -> list[LoadedImage]:
    shard, wanted = work.shard, set(work.retry)
    return [
        load_image(shard.start + i, source, size)
        for i, source in enumerate(shard.sources)
        if not wanted or shard.start + i in wanted
    ]


class ExtractorActor:
    """Holds one model; ``process`` runs a shard's decoded images through it in batches."""

    def __init__(
        self,
        model_dir: Path,
        model: ModelSettings,
        capture: CaptureSettings,
        prompt: Prompt,
        batch_size: int,
        threads: int | None = None,
    ):
        import torch

        if threads:
            torch.set_num_threads(threads)
        self.extractor = LlavaNextExtractor(model_dir, model, capture, prompt)
        self.batch_size = batch_size

    def process(self, images: list[LoadedImage]) -> list[ImageOutcome]:
        outcomes = {im.idx: ImageOutcome(im, None, 0.0, im.error) for im in images if im.error}
        ready = [im for im in images if im.error is None]
        for first in range(0, len(ready), self.batch_size):
            batch = ready[first : first + self.batch_size]
            try:
                captures, seconds = self.extractor([im.pixels for im in batch])
            except Exception as exc:  # a batch that breaks the model fails its images, not the run
                for im in batch:
                    outcomes[im.idx] = ImageOutcome(
                        im, None, 0.0, f"{im.source.path}: model failed ({type(exc).__name__}: {exc})"
                    )
                continue
            for im, capture in zip(batch, captures):
                outcomes[im.idx] = ImageOutcome(im, capture, seconds / len(batch), None)
        for outcome in outcomes.values():
            outcome.image.pixels = None  # do not ship pixels on to the writer
        return [outcomes[im.idx] for im in images]


def write_shard(
    out: Path, work: ShardWork, outcomes: list[ImageOutcome], geometry: Geometry, prompt_id: str
) -> ShardSummary:
    """Write the shard's rows of every array, then commit its catalog rows (the images file last)."""
    start = time.perf_counter()
    write_rows(out, [o.image.idx for o in outcomes], shard_block(outcomes, geometry))
    images, tokens = catalog_rows(work.shard, outcomes, prompt_id)
    if work.retry:
        images, tokens = merge_with_committed(out, work.shard.index, images, tokens)
    commit_shard(out, work.shard.index, images, tokens)
    done = sum(o.error is None for o in outcomes)
    return ShardSummary(work.shard.index, done, len(outcomes) - done, len(tokens), time.perf_counter() - start)


def shard_block(outcomes: list[ImageOutcome], geometry: Geometry) -> dict[str, np.ndarray]:
    """Padded arrays for the shard's rows; failed images keep the fill values."""
    block = {
        spec.name: np.full((len(outcomes), *spec.shape(geometry)[1:]), spec.fill_value, spec.dtype) for spec in ARRAYS
    }
    for row, outcome in enumerate(outcomes):
        cap = outcome.capture
        if cap is None:
            continue
        n = len(cap.token_ids)
        block["token_ids"][row, :n] = cap.token_ids
        block["n_tokens"][row] = n
        block["hidden"][row, :n] = cap.hidden
        block["attn_base"][row, :n] = cap.attn_base
        block["attn_highres"][row, :n] = cap.attn_highres
    return block


def catalog_rows(shard: Shard, outcomes: list[ImageOutcome], prompt_id: str) -> tuple[list[dict], list[dict]]:
    images, tokens = [], []
    for outcome in outcomes:
        im, cap = outcome.image, outcome.capture
        width, height = im.orig_size or (None, None)
        images.append(
            {
                "idx": im.idx,
                "shard": shard.index,
                "dataset": im.source.dataset,
                "split": im.source.split,
                "image_id": im.source.image_id,
                "source_path": im.source.path,
                "orig_width": width,
                "orig_height": height,
                "text": cap.text if cap else None,
                "n_tokens": len(cap.token_ids) if cap else 0,
                "status": STATUS_DONE if cap else STATUS_FAILED,
                "error": outcome.error,
                "prompt_id": prompt_id,
                "load_s": im.load_s,
                "model_s": outcome.model_s,
            }
        )
        if cap:
            tokens.extend(
                {"idx": im.idx, "position": p, "token_id": int(t), "token": s}
                for p, (t, s) in enumerate(zip(cap.token_ids, cap.tokens))
            )
    return images, tokens
