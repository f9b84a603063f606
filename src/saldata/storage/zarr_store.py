"""The Zarr v3 feature store: created once by the driver, each shard written by one worker.

Arrays are chunked one image (and one layer) per chunk, so a trainer reads one image's maps of
one layer with one chunk read, and Zarr-sharded along the image axis with the run's shard size,
so a run shard and a Zarr shard file coincide: one writer per file, ever. A worker writes its shard's files into the
shard's staging folder (a copy of the store's metadata); the commit moves them into place.
Every chunk ends with a CRC-32C (Zarr v3's core ``crc32c`` codec), so any Zarr reader
detects a flipped byte. An array without an image axis (``layer``) is one chunk, written with the
store and never again; ``saldata verify`` checks it against the root attributes it comes from.
The metadata files are final at creation, and the store record (``storage/store_record.py``)
keeps them as written.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from saldata.errors import NotAnOutputError, StoreError
from saldata.faults import fault_point
from saldata.schemas.store import ARRAYS, SHARD_ARRAYS, STORE_DIRNAME, STRING, Geometry, creation_values
from saldata.storage.location import as_out, check_reachable, copy_file, is_object, remove_tree, zarr_target

METADATA_FILE = "zarr.json"


def store_path(out: Path) -> Path:
    return as_out(out) / STORE_DIRNAME


def create_store(out: Path, geometry: Geometry, shard_size: int, attributes: dict) -> None:
    """Create the store aside and rename it into place: a kill at any moment leaves no store or a whole one."""
    from saldata.storage.commits import fsync_dir
    from saldata.storage.store_record import write_store_record

    aside = store_aside(out)
    remove_tree(aside)
    _create_arrays(aside, geometry, shard_size, attributes)
    _consolidate(aside)
    write_store_record(out, aside)  # before the store takes its place: a store in place has its record
    fault_point("store-created")
    if is_object(out):
        _copy_metadata_in(aside, store_path(out))
        return
    os.rename(aside, store_path(out))
    fsync_dir(Path(out))


def store_aside(out: Path) -> Path:
    """Where a new store is made before it takes its place."""
    from saldata.storage.commits import staging_root

    return staging_root(out) / f"{STORE_DIRNAME}.new"


def store_in_place(out: Path) -> bool:
    """Whether OUT's store has taken its place: on an object store, whose copy into place leaves its
    aside until it is done, a store beside its aside is still being copied in."""
    check_reachable(store_path(out))
    return store_path(out).exists() and not (is_object(out) and store_aside(out).exists())


def metadata_relpaths() -> list[str]:
    """Every metadata file of a store, relative to it: the group's ``zarr.json`` (root attributes and
    consolidated metadata), then each array's."""
    return [METADATA_FILE, *(f"{spec.name}/{METADATA_FILE}" for spec in ARRAYS)]


def _copy_metadata_in(aside, final) -> None:
    """An object store's rename: every array's metadata first, the group's ``zarr.json`` last.

    Until that last PUT there is no store (``store_schema_version`` is None), and the aside copy
    stays until the copy is done, so a kill anywhere is redone from it by the next run."""
    remove_tree(final)
    rels = [aside._as_named(key)[len(aside.key) + 1 :] for key in aside.fs.find(aside.key)]
    for rel in sorted(rels, key=lambda rel: rel == METADATA_FILE):
        copy_file(aside / rel, final / rel)
    remove_tree(aside)


def _consolidate(path: Path) -> None:
    """Array metadata never changes after creation, so a consolidated copy made now stays true for
    the whole run: xarray and other readers open the store in one read, and warn of nothing."""
    import warnings

    import zarr

    with warnings.catch_warnings():
        # Zarr notes that v3 consolidated metadata is its own extension; xarray reads it, and
        # readers that do not simply ignore it.
        warnings.filterwarnings("ignore", "Consolidated metadata is currently not part", UserWarning)
        zarr.consolidate_metadata(zarr_target(path, "r+"), zarr_format=3)


def _create_arrays(path: Path, geometry: Geometry, shard_size: int, attributes: dict) -> None:
    import zarr
    from zarr.codecs import BloscCodec, Crc32cCodec, TransposeCodec

    # Blosc-zstd with byte shuffle: float16 maps compress well and padding rows vanish.
    compressor = BloscCodec(cname="zstd", clevel=4, shuffle="shuffle")
    group = zarr.open_group(zarr_target(path, "w"), mode="w", zarr_format=3)
    group.attrs.update(attributes)
    values = creation_values(attributes, geometry.layers)
    for spec in ARRAYS:
        shape = spec.shape(geometry)
        if spec.per_image:
            chunks = tuple(1 if dim in ("image", "layer") else n for dim, n in zip(spec.dims, shape))
            shards = (max(1, min(shard_size, shape[0])), *shape[1:])
        else:  # written once, now: one chunk
            chunks, shards = shape, None
        array = group.create_array(
            spec.name,
            shape=shape,
            chunks=chunks,
            shards=shards,
            dtype=str if spec.dtype == STRING else spec.dtype,  # zarr 3.0 knows the string type by str only
            fill_value=spec.fill_value,
            dimension_names=spec.dims,
            filters=[TransposeCodec(order=order)] if (order := token_last(spec.dims)) else [],
            compressors=[compressor, Crc32cCodec()],
            attributes=spec.attributes(),
        )
        if spec.name in values:
            array[...] = values[spec.name]
        fault_point("store-array-created", spec.name, path)


def token_last(dims: tuple[str, ...]) -> tuple[int, ...] | None:
    """Chunk encoding order with the token axis innermost, or None where it already is (or is absent).

    A cell's value changes little from one generated token to the next, so stored side by side
    the shuffled high bytes form long runs: the maps and hidden states take ~9% fewer bytes
    (measured on the mid-random benchmark store). Readers see the array's own axis order.
    """
    if "token" not in dims or dims[-1] == "token":
        return None
    token = dims.index("token")
    return (*(i for i in range(len(dims)) if i != token), token)


def open_store(out: Path, mode: str = "r"):
    import zarr

    path = store_path(out)
    check_reachable(path)
    if not path.is_dir():
        raise NotAnOutputError(f"No feature store at {path}: is {out} a saldata extraction output?")
    problem = _metadata_problem(path)  # zarr reads array metadata lazily, deep inside later calls
    if problem:
        raise StoreError(f"{problem}; the store cannot be opened.")
    try:
        return zarr.open_group(zarr_target(path, mode), mode=mode, zarr_format=3)
    except (ValueError, KeyError, TypeError, OSError, zarr.errors.BaseZarrError) as exc:
        raise StoreError(f"{_metadata_problem(path) or exc}; the store cannot be opened.") from None


def store_schema_version(out: Path) -> int | None:
    """The store's schema_version, read from its metadata without opening it (None: no store)."""
    path = store_path(out) / METADATA_FILE
    check_reachable(path)
    if not path.is_file():
        return None
    problem = _metadata_problem(store_path(out))
    if problem:
        raise StoreError(f"{problem}; the store cannot be opened.")
    version = json.loads(path.read_text()).get("attributes", {}).get("schema_version")
    return version if isinstance(version, int) else None


def _metadata_problem(path: Path) -> str | None:
    """Why a store's metadata files cannot be trusted, naming the file; None when they parse."""
    for meta in (path / rel for rel in metadata_relpaths()):
        if not meta.is_file():
            continue
        try:
            json.loads(meta.read_text())
        except (ValueError, OSError) as exc:
            return f"{meta} is corrupt ({type(exc).__name__}: {exc}); restore it or re-extract with --overwrite"
    return None


def shard_file_relpaths(out: Path, shard_index: int) -> list[str]:
    """Each array's Zarr shard file of run shard ``shard_index``, relative to OUT (arrays on the image axis)."""
    group = open_store(out)
    paths = []
    for spec in SHARD_ARRAYS:
        array = group[spec.name]
        key = array.metadata.encode_chunk_key((shard_index,) + (0,) * (array.ndim - 1))
        paths.append(f"{STORE_DIRNAME}/{spec.name}/{key}")
    return paths


def stage_rows(out: Path, staging: Path, start: int, stop: int, block: dict[str, np.ndarray], rows=None) -> None:
    """Write rows ``start..stop`` of every array on the image axis into a metadata copy of the store under ``staging``.

    ``rows`` (positions within the shard) limits the new values to those rows; the others are
    copied from the committed store (a --retry-failed rewrite writes whole shard files).
    """
    import zarr

    source, target = store_path(out), as_out(staging) / STORE_DIRNAME
    for rel in metadata_relpaths():
        (target / rel).parent.mkdir(parents=True, exist_ok=True)
        copy_file(source / rel, target / rel)
    staged = zarr.open_group(zarr_target(target, "r+"), mode="r+", zarr_format=3)
    committed = open_store(out) if rows is not None else None
    for name, values in block.items():
        if committed is not None:
            whole = committed[name][start:stop]
            whole[list(rows)] = values
            values = whole
        staged[name][start:stop] = values
        fault_point("store-array", name, target / name)


def creation_array_problems(out: Path, group) -> list[str]:
    """Why an array written with the store (``layer``) no longer holds what the root attributes say;
    [] when it does. Such a file belongs to no shard, so no commit record names it: it is checked
    against the attributes it was written from, as every reader of it would see it."""
    problems = []
    for name, expected in creation_values(dict(group.attrs)).items():
        if name not in group:  # a store written before the array existed
            continue
        array = group[name]
        rel = f"{STORE_DIRNAME}/{name}/{array.metadata.encode_chunk_key((0,) * array.ndim)}"
        try:
            stored = array[...]
        except Exception as exc:  # a chunk that fails its own checksum, or cannot be read at all
            problems.append(f"{rel} cannot be read ({type(exc).__name__}: {exc})")
            continue
        if stored.tolist() != expected.tolist():
            state = "is missing" if not (as_out(out) / rel).is_file() else f"holds {stored.tolist()}"
            problems.append(f"{rel} {state}; it must hold {expected.tolist()}, the root attribute layers")
    return problems
