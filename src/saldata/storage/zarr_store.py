"""The Zarr v3 feature store: created once by the driver, each shard written by one worker.

Arrays are chunked one image per chunk (a trainer reads one image with one chunk read) and
Zarr-sharded along the image axis with the run's shard size, so a run shard and a Zarr
shard file coincide: one writer per file, ever.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from saldata.errors import StoreError
from saldata.schemas.store import ARRAYS, STORE_DIRNAME, Geometry


def store_path(out: Path) -> Path:
    return Path(out) / STORE_DIRNAME


def create_store(out: Path, geometry: Geometry, shard_size: int, attributes: dict) -> None:
    import zarr
    from zarr.codecs import BloscCodec, TransposeCodec

    # Blosc-zstd with byte shuffle: float16 maps compress well and padding rows vanish.
    compressor = BloscCodec(cname="zstd", clevel=4, shuffle="shuffle")
    group = zarr.open_group(store_path(out), mode="w", zarr_format=3)
    group.attrs.update(attributes)
    for spec in ARRAYS:
        shape = spec.shape(geometry)
        chunks = (1, *shape[1:])
        shards = (max(1, min(shard_size, shape[0])), *shape[1:])
        group.create_array(
            spec.name,
            shape=shape,
            chunks=chunks,
            shards=shards,
            dtype=spec.dtype,
            fill_value=spec.fill_value,
            dimension_names=spec.dims,
            filters=[TransposeCodec(order=order)] if (order := token_last(spec.dims)) else [],
            compressors=[compressor],
            attributes={"doc": spec.doc},
        )


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
    if not path.is_dir():
        raise StoreError(f"No feature store at {path}.")
    return zarr.open_group(path, mode=mode, zarr_format=3)


def write_rows(out: Path, indices: list[int], block: dict[str, np.ndarray]) -> None:
    """Write ``block``'s rows at image ``indices`` of every array; the caller owns their Zarr shard."""
    group = open_store(out, mode="r+")
    contiguous = indices == list(range(indices[0], indices[0] + len(indices))) if indices else True
    for name, values in block.items():
        if contiguous and indices:
            group[name][indices[0] : indices[0] + len(indices)] = values
        else:
            for row, idx in enumerate(indices):
                group[name][idx] = values[row]
