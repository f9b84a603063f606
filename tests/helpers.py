"""Helpers for tests that compare outputs and disturb processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pyarrow.parquet as pq
import zarr

from saldata.schemas.catalog import TABLES
from saldata.schemas.store import ARRAYS

TIMING_COLUMNS = ("load_s", "model_s")

# One set of run settings shared by every test that compares a disturbed run with an undisturbed one:
# the same shards and batches give bitwise-identical arrays.
DEMO_ARGS = [
    "--dataset",
    "demo",
    "--model",
    "tiny-random",
    "--max-new-tokens",
    "4",
    "--shard-size",
    "1",
    "--batch-size",
    "1",
]
DEMO_SHARDS = 6

# The readers' demo output (the demo_output fixture): enough tokens to make words, two shards (one
# partial), two images per model call. tests/ray_free_run.py builds the same output without Ray.
READERS_DEMO_ARGS = [
    "--dataset",
    "demo",
    "--model",
    "tiny-random",
    "--max-new-tokens",
    "12",
    "--shard-size",
    "4",
    "--batch-size",
    "2",
    "--layers",
    "all",  # tiny-random's two layers: every reader test picks from a layer axis
]

# The same comparison with batches of several images and shards of several batches: a resumed
# shard must be cut into the same batches again (batched and single-image runs differ in the
# last bits). 12 images of mixed sizes, 4 per shard, 2 per model call: 3 shards of 2 batches.
BATCHED_IMAGES = 12
BATCHED_SHARDS = 3


def batched_args(folder: Path) -> list[str]:
    return [
        "--dataset",
        f"folder:{folder}",
        "--model",
        "tiny-random",
        "--max-new-tokens",
        "6",
        "--shard-size",
        "4",
        "--batch-size",
        "2",
    ]


def make_batched_images(folder: Path) -> Path:
    """BATCHED_IMAGES deterministic JPEGs of four sizes (landscape and portrait, resized or not)."""
    from PIL import Image

    folder.mkdir(parents=True)
    rng = np.random.default_rng(11)
    sizes = [(640, 480), (800, 600), (500, 375), (480, 640)]
    for i in range(BATCHED_IMAGES):
        width, height = sizes[i % len(sizes)]
        pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"img{i:02d}.jpg", quality=90)
    return folder


def run_cli(args, timeout=300, prefix=None, **kwargs):
    """Run ``saldata ARGS`` in a fresh process; ``prefix`` may wrap the command (e.g. to drop privileges)."""
    cmd = [sys.executable, "-m", "saldata.cli.main", *map(str, args)]
    return subprocess.run(prefix(cmd) if prefix else cmd, capture_output=True, text=True, timeout=timeout, **kwargs)


# Each catalog table's rows in a canonical order (shards commit in any order).
TABLE_KEYS = {
    "images": ("idx",),
    "tokens": ("idx", "position"),
    "words": ("idx", "word_index"),
    "fixations": ("idx", "subject", "fixation_index"),
}


def assert_same_bytes(got: np.ndarray, want: np.ndarray, name: str) -> None:
    """Same dtype, shape and raw bytes: -0.0 against 0.0, or NaN against NaN, is a difference here."""
    assert (got.dtype, got.shape) == (want.dtype, want.shape), (
        f"{name}: {got.dtype}{got.shape} != {want.dtype}{want.shape}"
    )
    if got.dtype.kind in "OT":  # strings: an array's bytes are pointers to them, so compare the strings
        assert got.tolist() == want.tolist(), name
        return
    got_bytes, want_bytes = np.ascontiguousarray(got).tobytes(), np.ascontiguousarray(want).tobytes()
    if got_bytes != want_bytes:
        unsigned = f"u{got.dtype.itemsize}"
        differ = np.ascontiguousarray(got).view(unsigned) != np.ascontiguousarray(want).view(unsigned)
        first = np.unravel_index(int(np.flatnonzero(differ)[0]), got.shape)
        raise AssertionError(
            f"{name}: {int(differ.sum())} of {got.size} values differ in their bytes; first at {tuple(map(int, first))}: "
            f"{got[first]!r} != {want[first]!r}"
        )


def assert_same_output(out: Path, reference: Path) -> None:
    """Every store array equal byte for byte, and equal rows in every catalog table (timings aside)."""
    got, want = zarr.open_group(out / "features.zarr", mode="r"), zarr.open_group(reference / "features.zarr", mode="r")
    for spec in ARRAYS:
        assert_same_bytes(got[spec.name][:], want[spec.name][:], spec.name)
    assert set(TABLE_KEYS) == set(TABLES)
    for table, keys in TABLE_KEYS.items():
        a, b = (read_rows(folder / "catalog" / table, table, keys) for folder in (out, reference))
        assert len(a) == len(b), f"{table}: {len(a)} rows, {len(b)} in the reference"
        assert a == b, table


def read_rows(folder: Path, table: str, keys: tuple[str, ...]) -> list[dict]:
    rows = pq.read_table(folder)
    if table == "images":
        rows = rows.drop_columns(list(TIMING_COLUMNS))
    rows = rows.sort_by([(k, "ascending") for k in keys]).to_pylist()
    for row in rows:
        row.pop("source_path", None)  # absolute paths may differ between caches
    return rows


# A committed catalog file the tampering tests change (the readers' demo: shard 0 holds idx 0-3).
TAMPERED = "catalog/images/shard-00000.parquet"


def rewrite_catalog_file(path: Path, table_name: str) -> None:
    """Change one value and write the file back with the same schema: only its bytes tell."""
    table = pq.read_table(path)
    column = {"images": "text", "tokens": "token", "words": "word", "fixations": "x"}[table_name]
    values = table.column(column).to_pylist()
    values[0] = values[0] + 1.0 if isinstance(values[0], float) else f"FORGED {values[0]}"
    table = table.set_column(table.schema.get_field_index(column), table.field(column), [values])
    pq.write_table(table, path, compression="zstd")


def commit_rewrite(out: Path, path: Path) -> None:
    """Record a catalog file a test rewrote as its shard's own (what an extraction that wrote it
    would have committed): readers then take it for committed data, not for damage."""
    from dataclasses import replace

    from saldata.storage.commits import digest_file, read_commit_log, record_path, write_atomic

    shard = int(path.stem.split("-")[1])
    record = read_commit_log(out).committed[shard]
    files = {**record.files, str(path.relative_to(out)): digest_file(path)}
    write_atomic(record_path(out, shard), replace(record, files=files).to_json().encode())


def committed(out: Path) -> list[Path]:
    folder = out / "catalog" / "images"
    return sorted(folder.glob("shard-*.parquet")) if folder.is_dir() else []


def wait_for(predicate, timeout: float, interval: float = 0.05, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def kill_session(sid: int) -> None:
    """SIGKILL every process left in a session (what a batch scheduler does to a job)."""
    for proc in psutil.process_iter(["pid"]):
        try:
            if os.getsid(proc.pid) == sid and proc.pid != os.getpid():
                proc.send_signal(signal.SIGKILL)
        except (ProcessLookupError, psutil.NoSuchProcess, PermissionError):
            continue


def processes_named(fragment: str) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        if fragment in " ".join(proc.info["cmdline"] or []):
            found.append(proc)
    return found
