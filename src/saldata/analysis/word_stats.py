"""Dataset-wide word statistics, computed with dask one Zarr shard at a time.

For every word (lower-cased): how often it occurs and in how many images, its attention
mass (the share of the word's attention that lands on image tokens, base plus high-res grid,
heads averaged, its tokens averaged), and its mean high-res attention map. Each dask task
reads one shard of the store and returns partial sums; they are added up in a tree, so
memory stays at one shard however large the store.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

STATS_DIRNAME = "stats"


@dataclass
class WordTotals:
    count: int = 0
    images: set = field(default_factory=set)
    mass: float = 0.0
    map_sum: np.ndarray | None = None

    def add(self, other: WordTotals) -> None:
        self.count += other.count
        self.images |= other.images
        self.mass += other.mass
        self.map_sum = other.map_sum if self.map_sum is None else self.map_sum + other.map_sum


def shard_totals(idx: np.ndarray, n_tokens, base, highres, words: list[dict]) -> dict[str, WordTotals]:
    """Partial sums for the images of one shard (arrays are that shard's rows)."""
    row_of = {int(i): r for r, i in enumerate(idx)}
    totals: dict[str, WordTotals] = {}
    for w in words:
        row = row_of.get(w["idx"])
        if row is None or w["last_position"] >= n_tokens[row]:
            continue
        span = slice(w["first_position"], w["last_position"] + 1)
        high = highres[row, span].astype(np.float32).mean(axis=(0, 1))  # tokens, then heads
        low = base[row, span].astype(np.float32).mean(axis=(0, 1))
        t = totals.setdefault(w["word"].lower(), WordTotals())
        t.add(WordTotals(1, {w["idx"]}, float(high.sum() + low.sum()), high))
    return totals


def merge(parts: list[dict[str, WordTotals]]) -> dict[str, WordTotals]:
    merged: dict[str, WordTotals] = {}
    for part in parts:
        for word, totals in part.items():
            merged.setdefault(word, WordTotals()).add(totals)
    return merged


def word_statistics(output, layer: int | None = None) -> tuple[pa.Table, np.ndarray]:
    """(table, maps): one row per word sorted by count, and its mean high-res map at the same row,
    from one captured decoder ``layer`` (default the last captured)."""
    import dask

    arrays = output.arrays
    base = output.layers.images_at(arrays["attn_base"], layer)
    highres = output.layers.images_at(arrays["attn_highres"], layer)
    words = output.sql("SELECT w.* FROM words w JOIN images i USING (idx) WHERE i.status = 'done'").to_pylist()
    by_image: dict[int, list[dict]] = {}
    for w in words:
        by_image.setdefault(w["idx"], []).append(w)
    tasks = []
    start = 0
    for size in arrays["n_tokens"].chunks[0]:
        idx = np.arange(start, start + size)
        shard_words = [w for i in idx for w in by_image.get(int(i), ())]
        if shard_words:
            rows = slice(start, start + size)
            tasks.append(
                dask.delayed(shard_totals)(idx, arrays["n_tokens"][rows], base[rows], highres[rows], shard_words)
            )
        start += size
    totals = merge(list(dask.compute(*tasks))) if tasks else {}
    ordered = sorted(totals.items(), key=lambda kv: (-kv[1].count, kv[0]))
    grid = tuple(output.attrs["highres_grid"])
    maps = np.stack([t.map_sum / t.count for _, t in ordered]) if ordered else np.zeros((0, *grid), np.float32)
    table = pa.table(
        {
            "word": [w for w, _ in ordered],
            "count": pa.array([t.count for _, t in ordered], pa.int64()),
            "n_images": pa.array([len(t.images) for _, t in ordered], pa.int64()),
            "attention_mass": pa.array([t.mass / t.count for _, t in ordered], pa.float64()),
            "map_row": pa.array(range(len(ordered)), pa.int64()),
        }
    )
    return table, maps.astype(np.float32)


def write_statistics(out: Path, table: pa.Table, maps: np.ndarray, layer: int) -> Path:
    """``OUT/stats/words.parquet`` and ``OUT/stats/word_maps.zarr`` (array ``mean_map``, row = map_row),
    both saying which decoder ``layer`` they describe."""
    import pyarrow.parquet as pq
    import zarr

    from saldata.storage.commits import write_atomic
    from saldata.storage.location import as_out, zarr_target

    folder = as_out(out) / STATS_DIRNAME
    sink = pa.BufferOutputStream()
    pq.write_table(table.replace_schema_metadata({"saldata.layer": str(layer)}), sink)
    write_atomic(folder / "words.parquet", sink.getvalue().to_pybytes())
    group = zarr.open_group(zarr_target(folder / "word_maps.zarr", "w"), mode="w", zarr_format=3)
    group.attrs.update(words=table.column("word").to_pylist(), layer=layer)
    group.create_array(
        "mean_map",
        data=maps,
        chunks=(1, *maps.shape[1:]) if len(maps) else (1, 1, 1),
        dimension_names=("word", "highres_row", "highres_col"),
    )
    return folder
