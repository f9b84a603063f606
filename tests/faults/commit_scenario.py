"""A run of the commit protocol without the model, for kill tests that need many fast reruns.

``python -m tests.faults.commit_scenario OUT [--retry]`` does what ``extract`` does around its
shards, with the real storage code: create the store if absent, finish interrupted commits,
then stage and commit every shard not yet committed (or, with ``--retry``, rewrite the second
image of shard 1 as a --retry-failed rewrite would). The data are fixed by a seed, so an
interrupted-then-resumed OUT can be compared byte for byte with an undisturbed one.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from saldata.schemas.catalog import IMAGES, TOKENS, WORDS
from saldata.schemas.store import SHARD_ARRAYS, STORE_SCHEMA_VERSION, Geometry
from saldata.storage.catalog import merge_with_committed, stage_tables
from saldata.storage.commits import (
    CommitRecord,
    commit,
    digest_staged,
    finish_pending,
    read_commit_log,
    staging_dir,
    sweep_staging,
)
from saldata.storage.zarr_store import create_store, shard_file_relpaths, stage_rows, store_path

GEOMETRY = Geometry(
    n_images=6, max_tokens=5, hidden_size=8, heads=2, base_grid=(3, 3), highres_grid=(3, 4), image_size=(8, 6)
)
SHARD_SIZE = 2


def block_for(shard: int, rows: list[int], version: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1000 * version + shard)
    block = {}
    for spec in SHARD_ARRAYS:
        values = (rng.random((SHARD_SIZE, *spec.shape(GEOMETRY)[1:])) * 50).astype(spec.numpy_dtype())
        block[spec.name] = values[rows]
    block["n_tokens"][:] = 1  # what the catalog rows say, so saldata verify finds them consistent
    block["token_mask"][:] = np.arange(GEOMETRY.max_tokens) < 1
    block["image_id"][:] = [f"im{shard * SHARD_SIZE + r}" for r in rows]
    block["token_ids"][:, 0] = version
    return block


def rows_for(shard: int, rows: list[int], version: int) -> dict[str, list[dict]]:
    images, tokens, words = [], [], []
    for r in rows:
        idx = shard * SHARD_SIZE + r
        images.append(
            {
                "idx": idx, "shard": shard, "dataset": "t", "split": "val", "image_id": f"im{idx}",
                "source_path": f"/data/im{idx}.jpg", "orig_width": 8, "orig_height": 6, "text": f"v{version}",
                "n_tokens": 1, "status": "done", "error": None, "category": None, "gt_status": "none",
                "gt_error": None, "n_fixations": None, "n_fixations_clipped": None, "prompt_id": "describe",
                "load_s": 0.0, "model_s": 0.0,
            }
        )  # fmt: skip
        tokens.append({"idx": idx, "position": 0, "token_id": version, "token": "a", "char_start": 0, "char_end": 1})
        words.append(
            {"idx": idx, "word_index": 0, "word": "a", "first_position": 0, "last_position": 0,
             "char_start": 0, "char_end": 1}
        )  # fmt: skip
    return {IMAGES.name: images, TOKENS.name: tokens, WORDS.name: words}


def commit_shard(out: Path, shard: int, run_id: str, retry: bool) -> None:
    rows = [1] if retry else list(range(SHARD_SIZE))
    version = 2 if retry else 1
    staging = staging_dir(out, shard, run_id)
    table_rows = rows_for(shard, rows, version)
    if retry:
        table_rows = merge_with_committed(out, shard, table_rows)
    stage_rows(out, staging, shard * SHARD_SIZE, (shard + 1) * SHARD_SIZE, block_for(shard, rows, version),
               rows if retry else None)  # fmt: skip
    wanted = stage_tables(staging, shard, table_rows) + shard_file_relpaths(out, shard)
    record = CommitRecord(
        shard=shard, start=shard * SHARD_SIZE, stop=(shard + 1) * SHARD_SIZE, run_id=run_id,
        config_digest="scenario", files=digest_staged(staging, wanted), sources=[],
        counts={name: len(r) for name, r in table_rows.items()}, pending=str(staging.relative_to(out)),
    )  # fmt: skip
    commit(out, record)


def main(out: Path, retry: bool) -> None:
    run_id = "retry" if retry else "run"
    if not store_path(out).is_dir():
        create_store(
            out,
            GEOMETRY,
            SHARD_SIZE,
            {"schema_version": STORE_SCHEMA_VERSION, "config_digest": "scenario", "layers": [0]},
        )
    finish_pending(out)
    sweep_staging(out)
    committed = read_commit_log(out).committed
    if retry:
        if committed[1].run_id != "retry":
            commit_shard(out, 1, run_id, retry=True)
        return
    for shard in range(GEOMETRY.n_images // SHARD_SIZE):
        if shard not in committed:
            commit_shard(out, shard, run_id, retry=False)


if __name__ == "__main__":
    main(Path(sys.argv[1]), "--retry" in sys.argv[2:])
