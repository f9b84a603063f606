"""The numbers of the report's first page: counts, failures, description lengths, words, evaluation.

Counts come from the committed catalog (``readers.output.Output``), the evaluation from
``OUT/eval/metrics.parquet`` (``analysis.evaluate.summarise``, what ``saldata evaluate`` prints).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from saldata.errors import StoreError, first_line
from saldata.schemas.catalog import STATUS_DONE, STATUS_FAILED
from saldata.schemas.evaluation import HEAD_MEAN, METRICS, METRICS_VERSION, UNIT_DESCRIPTION

TOP_WORDS = 30
LENGTH_BINS = 20


@dataclass(frozen=True, slots=True)
class Evaluation:
    """What ``saldata evaluate`` left in ``OUT/eval``: its summary, its settings, the NSS of each image."""

    settings: dict
    levels: list = field(default_factory=list)  # analysis.evaluate.Level, one per layer
    centre: object = None  # analysis.evaluate.Level of the centre bias
    nss: dict[int, dict[int, float | None]] = field(default_factory=dict)  # idx -> layer -> description NSS
    best_layer: int | None = None
    outdated: str | None = None  # why the file is not summarised: an older layout, whose columns differ


@dataclass(frozen=True, slots=True)
class Overview:
    done: int
    failed: int
    failures: list[tuple[str, int]]  # (reason, count), most common first
    lengths: list[tuple[int, int, int]]  # (low, high, images): words per description, done images
    top_words: list[tuple[str, int]]
    evaluation: Evaluation | None = None
    info: dict = field(default_factory=dict)


def overview(output, info: dict) -> Overview:
    from saldata.pipelines.status import failure_reason

    images = output.images.select(["idx", "status", "error", "source_path"]).to_pylist()
    failed = [r for r in images if r["status"] == STATUS_FAILED]
    reasons = Counter(failure_reason(r["error"] or "unknown", r["source_path"]) for r in failed)
    done = {r["idx"] for r in images if r["status"] == STATUS_DONE}
    words = output.words.select(["idx", "word"]).to_pydict()
    per_image = Counter(i for i in words["idx"] if i in done)
    return Overview(
        done=len(done),
        failed=len(failed),
        failures=reasons.most_common(),
        lengths=length_histogram([per_image.get(i, 0) for i in sorted(done)]),
        top_words=Counter(w.lower() for i, w in zip(words["idx"], words["word"]) if i in done).most_common(TOP_WORDS),
        evaluation=read_evaluation(output.path),
        info=info,
    )


def length_histogram(lengths: list[int]) -> list[tuple[int, int, int]]:
    """(low, high, count) bins of whole numbers, at most LENGTH_BINS of them, covering min..max."""
    if not lengths:
        return []
    low, high = min(lengths), max(lengths)
    width = max(1, -(-(high - low + 1) // LENGTH_BINS))
    counts = np.bincount((np.asarray(lengths) - low) // width)
    return [(low + i * width, low + (i + 1) * width - 1, int(n)) for i, n in enumerate(counts)]


def read_evaluation(out) -> Evaluation | None:
    """The evaluation of ``out``, or None where ``saldata evaluate`` has not run."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from saldata.analysis.evaluate import best_layer, summarise
    from saldata.storage.eval_tables import table_path, table_record

    path = table_path(out, METRICS.name)  # a local file or an object: both read whole
    if not path.exists():
        return None
    try:
        table = pq.read_table(pa.BufferReader(path.read_bytes()))
    except (OSError, pa.ArrowException) as exc:
        raise StoreError(f"{path}: cannot read it ({first_line(exc)}); rerun saldata evaluate to rewrite it.") from None
    record = table_record(table.schema.metadata, table.num_rows, METRICS.name)
    settings = record.settings or {}
    version = record.version or "1"  # a file from before the layout was versioned: version 1
    if version != str(METRICS_VERSION):  # older files lack columns (sauc) or meant others otherwise (auc_judd)
        return Evaluation(settings, outdated=f"{path} has the metrics layout of version {version}, this saldata's is "
                          f"{METRICS_VERSION}; rerun saldata evaluate to see its summary here.")  # fmt: skip
    levels, centre = summarise(table)
    best = best_layer(levels)
    columns = table.select(["idx", "layer", "head", "unit", "nss"]).to_pydict()
    nss: dict[int, dict[int, float | None]] = {}
    for idx, layer, head, unit, value in zip(*columns.values()):
        if unit == UNIT_DESCRIPTION and head == HEAD_MEAN:
            nss.setdefault(idx, {})[layer] = value
    return Evaluation(settings, levels, centre, nss, best.layer if best else None)
