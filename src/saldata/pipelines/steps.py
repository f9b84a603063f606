"""The pipeline's CPU steps, plain functions that Ray runs as tasks.

load_shard (CPU task) -> ExtractorActor.process (model actor, ``model_actor.py``) -> stage_shard
(CPU task) -> the driver's commit (``storage/commits.py``). Decoding and writing never run on the
model actor, so it only ever waits for the GPU; committing never runs on a worker, so a worker
whose driver is gone can never commit.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from saldata.datasets.ground_truth import GT_NONE, GroundTruth, load_ground_truth
from saldata.extractors.image_inputs import image_processor, prepare_images
from saldata.extractors.prompts import Prompt
from saldata.extractors.words import group_words
from saldata.faults import fault_point
from saldata.pipelines.model_actor import ImageOutcome, ModelOutput
from saldata.pipelines.plan import Shard, ShardWork
from saldata.pipelines.preprocess import LoadedImage, load_image
from saldata.schemas.catalog import FIXATIONS, IMAGES, STATUS_DONE, STATUS_FAILED, TOKENS, WORDS
from saldata.schemas.store import SHARD_ARRAYS, Geometry
from saldata.storage.catalog import merge_with_committed, stage_tables
from saldata.storage.commits import CommitRecord, digest_staged, staging_dir
from saldata.storage.zarr_store import shard_file_relpaths, stage_rows


@dataclass(frozen=True, slots=True)
class ShardSummary:
    index: int
    done: int
    failed: int
    tokens: int
    write_s: float
    first_error: str | None = None


@dataclass(frozen=True, slots=True)
class StagedShard:
    """A shard whose files are all staged and digested: what the driver needs to commit it."""

    summary: ShardSummary
    record: CommitRecord


def yield_cpu_to_model() -> None:
    """Lower this worker's CPU priority, once per process: decoding and writing run beside the
    model actor, and where cores are scarce the model (or the thread feeding the GPU) goes first."""
    global _niced
    if not _niced:
        with contextlib.suppress(OSError):
            os.nice(HELPER_NICENESS)
        _niced = True


HELPER_NICENESS = 5
_niced = False


def load_shard(work: ShardWork, size: tuple[int, int], processor_dir: Path | None = None) -> list[LoadedImage]:
    """Decode the shard's images; with ``processor_dir``, also run that model's image processor."""
    yield_cpu_to_model()
    shard, wanted = work.shard, set(work.retry)
    images = [
        load_image(shard.start + i, source, size)
        for i, source in enumerate(shard.sources)
        if not wanted or shard.start + i in wanted
    ]
    if processor_dir is not None:
        processor = image_processor(processor_dir)
        for image in images:
            if image.error is None:
                _prepare(image, processor)
    return images


def _prepare(image: LoadedImage, processor) -> None:
    try:
        (image.inputs,) = prepare_images(processor, [image.pixels])
    except Exception as exc:  # this image's problem, not the run's
        image.error = f"{image.source.path}: image processor failed ({type(exc).__name__}: {exc})"
    image.pixels = None  # ship only what the model takes


def stage_shard(
    out: Path,
    work: ShardWork,
    output: ModelOutput,
    geometry: Geometry,
    prompt: Prompt,
    run_id: str,
    config_digest: str,
    attempt: int = 1,
) -> StagedShard:
    """Write the shard's files into its staging folder and digest them; the driver commits."""
    yield_cpu_to_model()
    start = time.perf_counter()
    shard, outcomes = work.shard, output.outcomes
    # Each attempt stages apart: a lost attempt's worker can never write into its retry's files.
    staging = staging_dir(out, shard.index, f"{run_id}-{attempt}")
    truths = [ground_truth(o, geometry.image_size) for o in outcomes]
    rows = catalog_rows(shard, outcomes, truths, prompt)
    sources = [_source_entry(o) for o in outcomes]
    retried = [o.image.idx - shard.start for o in outcomes] if work.retry else None
    if work.retry:
        rows = merge_with_committed(out, shard.index, rows)
        sources = _merge_sources(out, shard.index, sources)
    stage_rows(out, staging, shard.start, shard.stop, shard_block(output, truths, geometry), retried)
    wanted = stage_tables(staging, shard.index, rows) + shard_file_relpaths(out, shard.index)
    files = digest_staged(staging, wanted)
    fault_point("shard-staged", shard.index)
    done = sum(o.error is None for o in outcomes)
    counts = {name: len(table_rows) for name, table_rows in rows.items()}
    record = CommitRecord(
        shard=shard.index,
        start=shard.start,
        stop=shard.stop,
        run_id=run_id,
        config_digest=config_digest,
        files=files,
        sources=sources,
        counts=counts,
        pending=str(staging.relative_to(out)),
    )
    summary = ShardSummary(
        shard.index,
        done,
        len(outcomes) - done,
        sum(len(o.capture.token_ids) for o in outcomes if o.capture),
        time.perf_counter() - start,
        next((o.error for o in outcomes if o.error), None),
    )
    return StagedShard(summary, record)


def _source_entry(outcome: ImageOutcome) -> dict:
    image = outcome.image
    entry = image.fingerprint or {"path": image.source.path, "size": None, "mtime_ns": None, "blake2b": None}
    return {"idx": image.idx, "status": STATUS_DONE if outcome.capture else STATUS_FAILED, **entry}


def _merge_sources(out: Path, shard_index: int, new: list[dict]) -> list[dict]:
    from saldata.storage.commits import read_commit_log

    old = read_commit_log(out).committed[shard_index].sources
    replaced = {e["idx"] for e in new}
    return sorted([e for e in old if e["idx"] not in replaced] + new, key=lambda e: e["idx"])


def ground_truth(outcome: ImageOutcome, size: tuple[int, int]) -> GroundTruth:
    """Read here, on the writer, so ground truth never travels through the model actor."""
    if outcome.image.orig_size is None:  # the image itself could not be read
        return GroundTruth(GT_NONE)
    return load_ground_truth(outcome.image.source, outcome.image.orig_size, size)


def shard_block(output: ModelOutput, truths: list[GroundTruth], geometry: Geometry) -> dict[str, np.ndarray]:
    """The shard's rows of every array on the image axis; failed images keep the fill values (but their
    ``image_id``: the source is known whatever the model did).

    The maps are the model actor's block as the object store holds it: written from there, never
    copied (a heavy capture's shard is gigabytes)."""
    outcomes = output.outcomes
    maps = output.maps or {}
    block = {
        spec.name: maps[spec.name]
        if spec.name in maps
        else np.full((len(outcomes), *spec.shape(geometry)[1:]), spec.fill_value, spec.numpy_dtype())
        for spec in SHARD_ARRAYS
    }
    for row, (outcome, truth) in enumerate(zip(outcomes, truths)):
        block["image_id"][row] = outcome.image.source.image_id
        if truth.saliency is not None:
            block["saliency_map"][row] = truth.saliency
        if truth.fixations is not None:
            block["fixation_map"][row] = truth.fixations
        cap = outcome.capture
        if cap is None:
            continue
        n = len(cap.token_ids)
        block["token_ids"][row, :n] = cap.token_ids
        if cap.ended_with_eos:
            block["token_ids"][row, n] = cap.eos_id
        block["n_tokens"][row] = n
        block["token_mask"][row, : n + bool(cap.ended_with_eos)] = True
    return block


def catalog_rows(
    shard: Shard, outcomes: list[ImageOutcome], truths: list[GroundTruth], prompt: Prompt
) -> dict[str, list[dict]]:
    """The shard's rows of every catalog table, keyed by table name."""
    images, tokens, words, fixations = [], [], [], []
    for outcome, truth in zip(outcomes, truths):
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
                "ended_with_eos": cap.ended_with_eos if cap else None,
                "status": STATUS_DONE if cap else STATUS_FAILED,
                "error": outcome.error,
                "category": im.source.category,
                "coco_id": im.source.coco_id,
                "gt_status": truth.status,
                "gt_error": truth.error,
                "n_fixations": truth.n_fixations,
                "n_fixations_clipped": truth.n_fixations_clipped,
                "prompt_id": prompt.id,
                "prompt_text": prompt.text,
                "load_s": im.load_s,
                "model_s": outcome.model_s,
            }
        )
        if cap:
            tokens.extend(
                {"idx": im.idx, "position": p, "token_id": int(t), "token": s, "char_start": a, "char_end": b}
                for p, (t, s, (a, b)) in enumerate(zip(cap.token_ids, cap.tokens, cap.offsets))
            )
            words.extend(
                {
                    "idx": im.idx,
                    "word_index": w.index,
                    "word": w.text,
                    "first_position": w.first_position,
                    "last_position": w.last_position,
                    "char_start": w.char_start,
                    "char_end": w.char_end,
                }
                for w in group_words(cap.text, cap.offsets)
            )
        # Like fixation_map, whatever the model did: the ground truth is the image's, not the run's.
        if truth.points is not None:
            fixations.extend(fixation_rows(im.idx, truth))
    return {IMAGES.name: images, TOKENS.name: tokens, WORDS.name: words, FIXATIONS.name: fixations}


def fixation_rows(idx: int, truth: GroundTruth) -> list[dict]:
    """One fixations row per loaded point, in file order; x, y are the points fixation_map marked."""
    points, n = truth.points, len(truth.points)
    subject = points.subject.tolist() if points.subject is not None else [None] * n
    # NaN (a subject without durations) becomes null: unknown, not a number to average
    durations = [] if points.duration_ms is None else points.duration_ms.tolist()
    duration = [None if math.isnan(d) else d for d in durations] or [None] * n
    return [
        {
            "idx": idx,
            "subject": s,
            "fixation_index": i,
            "x": x,
            "y": y,
            "orig_x": ox,
            "orig_y": oy,
            "duration_ms": d,
        }
        for s, i, (x, y), (ox, oy), d in zip(
            subject, points.fixation_index.tolist(), truth.stored_xy.tolist(), points.xy.tolist(), duration
        )
    ]
