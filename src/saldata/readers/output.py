"""``saldata.open(OUT)``: the catalog as Arrow tables, the store as lazy dask arrays.

Dask chunks are one Zarr shard along the image axis (a whole shard file is read at once, the
unit the store was written in) and whole along every other axis. Nothing is read until asked.

``to_xarray`` gives what plain ``xarray.open_zarr`` gives (the ``image_id`` and ``layer``
coordinates) and adds: an index on ``image_id`` (``.sel(image_id=...)``), padding rows of the
per-token float arrays as NaN (``token_mask``), the shard chunks above, and a ``split``
coordinate; for a store written before ``image_id``, ``token_mask`` and ``layer`` were stored, it
makes them from the catalog and the attributes, so every output reads the same way.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import pyarrow as pa

from saldata.errors import ConfigError, ImageIndexError, NotInOutputError, StoreError
from saldata.readers.checked import CheckedGroup
from saldata.readers.layers import PER_TOKEN_ARRAYS, StoredLayers
from saldata.schemas.catalog import STATUS_DONE
from saldata.schemas.store import ARRAY_SPECS, COORDINATE_ARRAYS, IMAGE_COORDINATE, STORE_SCHEMA_VERSION
from saldata.storage.catalog import read_table
from saldata.storage.location import as_out
from saldata.storage.store_record import check_metadata
from saldata.storage.zarr_store import open_store

WORD_REDUCTIONS = ("sum", "mean")
GRIDS = ("highres", "base")


class Output:
    """One extraction output: catalog tables, lazy arrays, SQL, selections, word maps."""

    def __init__(self, out: Path | str, storage_options: dict | None = None):
        self.path = as_out(out, storage_options)  # a folder, or an ObjectPath for a URL
        check_metadata(self.path)  # an edited zarr.json would have every array below read wrongly
        # open_store raises StoreError naming the path when absent; a damaged chunk is named when read
        self.group = CheckedGroup(open_store(self.path), self.path)
        self.attrs: dict = dict(self.group.attrs)
        version = self.attrs.get("schema_version")
        if not isinstance(version, int) or version > STORE_SCHEMA_VERSION:
            raise StoreError(
                f"{self.path}: store schema_version {version!r} is not one this saldata reads "
                f"(up to {STORE_SCHEMA_VERSION}); upgrade saldata."
            )
        try:
            self.layers = StoredLayers.of(self.attrs)
        except StoreError as exc:
            raise StoreError(f"{self.path}: {exc}; re-extract it with --overwrite.") from None

    def require(self, *names: str) -> None:
        """Fail with a clear message when an older store lacks arrays a reader needs."""
        missing = [n for n in names if n not in self.group]
        if missing:
            raise StoreError(
                f"{self.path} (schema_version {self.attrs['schema_version']}) has no {', '.join(missing)}; "
                "re-extract it with this saldata (--overwrite) to get them."
            )

    def __repr__(self) -> str:
        return f"saldata.Output({str(self.path)!r}: {self.images.num_rows} committed images)"

    # -- catalog ---------------------------------------------------------------------------
    @cached_property
    def images(self) -> pa.Table:
        return read_table(self.path, "images")

    @cached_property
    def tokens(self) -> pa.Table:
        return read_table(self.path, "tokens")

    @cached_property
    def words(self) -> pa.Table:
        return read_table(self.path, "words")

    @cached_property
    def fixations(self) -> pa.Table:
        """One row per fixation point (empty for an output older than the table)."""
        return read_table(self.path, "fixations")

    def objects(self) -> pa.Table:
        """One row per object annotation placed on an image by ``saldata objects`` (COCO, Visual Genome),
        boxes in stored-image pixels; no rows (with the columns) where none were added."""
        return self._object_tables["objects"]

    def object_mask(self, idx: int, object_id: int, source: str | None = None) -> np.ndarray:
        """An object's mask at the stored image size, bool (height, width): COCO's segmentation
        rasterised, or a Visual Genome box filled. ``source`` ('coco' or 'visual_genome') is needed
        only when both sources have an object of this id on this image."""
        from saldata.objects.annotation import SOURCES
        from saldata.objects.rle import decode

        if source is not None and source not in SOURCES:
            raise ConfigError(f"source must be one of {', '.join(SOURCES)}, not {source!r}.")
        found = self._masks_by_key.get((idx, object_id), {})
        if source is not None:
            found = {source: found[source]} if source in found else {}
        if not found:
            listing = (
                f'saldata catalog query {shlex.quote(str(self.path))} "SELECT idx, object_id, source FROM objects"'
            )
            raise NotInOutputError(
                f"{self.path}: no object with object_id {object_id!r} on image idx {idx!r}"
                + (f" from {source}" if source else "")
                + f" (saldata objects adds them); list them with: {listing}"
            )
        if len(found) > 1:
            raise ConfigError(
                f"object_id {object_id} of image idx {idx} is in both {' and '.join(sorted(found))}; "
                f"name one: object_mask({idx}, {object_id}, source={sorted(found)[0]!r})."
            )
        width, height = self.attrs["image_size"]
        rle = {"size": [height, width], "counts": next(iter(found.values())).encode("ascii")}
        return decode(rle).astype(bool)

    @cached_property
    def _object_tables(self) -> dict[str, pa.Table]:
        from saldata.objects.table import read_object_table

        return {name: read_object_table(self.path, name) for name in ("objects", "object_masks")}

    @cached_property
    def _masks_by_key(self) -> dict[tuple[int, int], dict[str, str]]:
        masks = self._object_tables["object_masks"].to_pydict()
        by_key: dict[tuple[int, int], dict[str, str]] = {}
        for idx, object_id, source, rle in zip(masks["idx"], masks["object_id"], masks["source"], masks["rle"]):
            by_key.setdefault((idx, object_id), {})[source] = rle
        return by_key

    def sql(self, query: str) -> pa.Table:
        """Run read-only SQL (SELECT only) over the views ``images``, ``tokens``, ``words``, ``fixations``,
        ``objects`` and ``object_masks``; an Arrow table."""
        from saldata.storage.sql import query as readonly_query

        return readonly_query(self.path, query)

    # -- arrays ----------------------------------------------------------------------------
    @cached_property
    def arrays(self) -> dict:
        """Every store array as a dask array (chunks: one Zarr shard of images, whole elsewhere)."""
        import dask.array as da
        from dask.base import tokenize

        arrays = {}
        for name, array in self.group.arrays():
            chunks = ((array.shards or array.chunks)[0], *array.shape[1:])
            # from_array, not from_zarr (which wants a zarr array): the reads go through the checks
            token = tokenize(array.zarr_array, chunks)
            arrays[name] = da.from_array(array, chunks=chunks, name=f"from-zarr-{token}")
        return arrays

    def to_xarray(self, mask: bool = True):
        """An ``xarray.Dataset``: named dimensions, chunks of one store shard along ``image``,
        ``image_id`` (indexed: ``.sel(image_id=...)``), ``split`` and ``layer`` coordinates, and a
        ``token_mask``. With ``mask``, rows of hidden, attn_base and attn_highres that hold no data
        (``~token_mask``) are NaN, so reductions over ``token`` count only real steps."""
        try:
            import xarray as xr
        except ImportError:
            raise ConfigError("to_xarray needs xarray: pip install 'saldata[xarray]'") from None
        variables = {
            name: (self.group[name].metadata.dimension_names, array)
            for name, array in self.arrays.items()
            if name not in COORDINATE_ARRAYS
        }
        n = self.group["n_tokens"].shape[0]
        rows = self.images.select(["idx", "image_id", "split", "ended_with_eos"]).to_pydict()
        split = np.full(n, "", dtype=object)
        split[rows["idx"]] = rows["split"]
        coords = {IMAGE_COORDINATE: ("image", self._image_ids(rows)), "split": ("image", split)}
        if self.layers.has_axis:  # select with .sel(layer=decoder_layer)
            coords["layer"] = ("layer", np.asarray(self.layers.layers, dtype=ARRAY_SPECS["layer"].dtype))
        if "token_mask" not in variables:  # a store written before it: the same rows, from n_tokens and the catalog
            variables["token_mask"] = (("image", "token"), self._token_mask(rows))
        ds = xr.Dataset(variables, coords=coords, attrs=self.attrs).set_xindex(IMAGE_COORDINATE)
        if mask:
            for name in PER_TOKEN_ARRAYS:
                if name in ds:
                    ds[name] = ds[name].where(ds["token_mask"])
        return ds

    def _image_ids(self, rows: dict) -> np.ndarray:
        """Each row's image id: the store's ``image_id``, or the catalog's in a store written before it."""
        if IMAGE_COORDINATE in self.group:
            return np.asarray(self.group[IMAGE_COORDINATE][:], dtype=object)
        ids = np.full(self.group["n_tokens"].shape[0], "", dtype=object)
        ids[rows["idx"]] = rows["image_id"]
        return ids

    def _token_mask(self, rows: dict):
        """``token_mask`` as the writer makes it: rows below n_tokens, and row n_tokens where the
        catalog says generation ended with EOS (never, in a catalog older than that column)."""
        import dask.array as da

        n_tokens = self.arrays["n_tokens"]
        eos = np.zeros(n_tokens.shape[0], dtype=n_tokens.dtype)
        eos[rows["idx"]] = [bool(e) for e in rows["ended_with_eos"]]
        valid = n_tokens + da.from_array(eos, chunks=n_tokens.chunks)
        return da.arange(self.group["token_ids"].shape[1]) < valid[:, None]

    # -- selections ------------------------------------------------------------------------
    def select(
        self,
        *,
        split: str | None = None,
        image_ids: list[str] | None = None,
        where: str | None = None,
        include_failed: bool = False,
    ) -> Selection:
        """Rows (and their arrays) by split, by image id, and/or by a SQL condition on ``images``."""
        conditions = [] if include_failed else [f"status = '{STATUS_DONE}'"]
        if split is not None:
            if split not in self.splits():  # a typo would otherwise select nothing, silently
                raise ConfigError(
                    f"{self.path}: no image of split {split!r}; it has: {', '.join(self.splits()) or 'none committed'}."
                )
            conditions.append(f"split = {_literal(split)}")
        if image_ids is not None:
            conditions.append(f"image_id IN ({', '.join(_literal(i) for i in image_ids) or 'NULL'})")
        if where:
            conditions.append(f"({where})")
        query = "SELECT * FROM images" + (" WHERE " + " AND ".join(conditions) if conditions else "") + " ORDER BY idx"
        rows = self.sql(query)
        if image_ids is not None:
            missing = sorted(set(image_ids) - set(rows.column("image_id").to_pylist()))
            if missing:
                listing = f'saldata catalog query {shlex.quote(str(self.path))} "SELECT image_id FROM images"'
                raise NotInOutputError(
                    f"{self.path}: no committed image with id {', '.join(missing[:5])}; list the ids with: {listing}"
                )
        return Selection(self, rows)

    def splits(self) -> list[str]:
        """The splits of the committed images (done or failed), sorted."""
        return sorted(self.sql("SELECT DISTINCT split FROM images").column("split").to_pylist())

    def row(self, image_id: str) -> dict:
        return self.select(image_ids=[image_id], include_failed=True).images.to_pylist()[0]

    # -- one image's maps ------------------------------------------------------------------
    def image_index(self, idx: int | None = None, image_id: str | None = None) -> int:
        """The store row of an image named by its ``idx`` or its ``image_id`` (exactly one of the two)."""
        if (idx is None) == (image_id is None):
            raise ConfigError("name the image by its idx or its image_id=, one of the two.")
        if image_id is not None:
            return int(self.row(image_id)["idx"])  # an unknown id: StoreError with the query that lists them
        if not isinstance(idx, (int, np.integer)) or isinstance(idx, bool):
            raise ConfigError(f"idx must be an image index (images.idx), an integer, not {idx!r}.")
        n = self.group["n_tokens"].shape[0]
        if not 0 <= idx < n:  # zarr would wrap -1, and fail past n with a BoundsCheckError
            raise ImageIndexError(f"idx {idx!r} is out of range: {self.path} holds images 0..{n - 1} (images.idx).")
        return int(idx)

    def word_maps(
        self,
        idx: int | None = None,
        grid: str = "highres",
        reduce: str = "sum",
        heads: str = "mean",
        layer: int | None = None,
        *,
        image_id: str | None = None,
    ) -> tuple:
        """(words, maps): an image's words and one attention map per word, (n_words, [heads,] rows, cols).

        The image is ``idx`` or ``image_id=``. A word's map is the sum (or mean) of its tokens' maps;
        ``heads="mean"`` averages heads first. ``layer`` is a captured decoder layer (negative counts
        from the model's end); default the last captured.
        """
        if reduce not in WORD_REDUCTIONS:
            raise ConfigError(f"reduce must be one of {WORD_REDUCTIONS}, not {reduce!r}.")
        idx = self.image_index(idx, image_id)
        words = self.sql(f"SELECT * FROM words WHERE idx = {idx} ORDER BY word_index").to_pylist()
        maps = self.token_maps(idx, grid, heads, layer)
        reducer = np.sum if reduce == "sum" else np.mean
        stacked = [reducer(maps[w["first_position"] : w["last_position"] + 1], axis=0) for w in words]
        shape = maps.shape[1:]
        return words, (np.stack(stacked) if stacked else np.zeros((0, *shape), np.float32))

    def token_maps(
        self,
        idx: int | None = None,
        grid: str = "highres",
        heads: str = "mean",
        layer: int | None = None,
        *,
        image_id: str | None = None,
    ) -> np.ndarray:
        """An image's (``idx`` or ``image_id=``) valid per-token maps at one layer, float32: (n, rows, cols),
        or (n, heads, rows, cols) with heads="all"."""
        if grid not in GRIDS:
            raise ConfigError(f"grid must be 'base' or 'highres', not {grid!r}.")
        if heads not in ("mean", "all"):
            raise ConfigError(f"heads must be 'mean' or 'all', not {heads!r}.")
        idx = self.image_index(idx, image_id)
        n = int(self.group["n_tokens"][idx])
        maps = np.asarray(self.layers.rows(self.group[f"attn_{grid}"], idx, n, layer), dtype=np.float32)
        return maps.mean(axis=1) if heads == "mean" else maps

    def hidden(self, idx: int | None = None, layer: int | None = None, *, image_id: str | None = None) -> np.ndarray:
        """An image's (``idx`` or ``image_id=``) valid hidden states at one layer, float32: (n, hidden_dim)."""
        idx = self.image_index(idx, image_id)
        n = int(self.group["n_tokens"][idx])
        return np.asarray(self.layers.rows(self.group["hidden"], idx, n, layer), dtype=np.float32)


@dataclass(frozen=True)
class Selection:
    """Catalog rows and the matching rows of every array (lazy, in ``idx`` order)."""

    output: Output
    images: pa.Table

    @property
    def idx(self) -> np.ndarray:
        return self.images.column("idx").to_numpy()

    @property
    def arrays(self) -> dict:
        """Every array on the image axis at the selected rows (``layer`` has no image axis)."""
        arrays = self.output.arrays.items()
        return {name: array[self.idx] for name, array in arrays if _dims(self.output.group[name])[:1] == ("image",)}

    def __len__(self) -> int:
        return self.images.num_rows


def _dims(array) -> tuple[str, ...]:
    return tuple(array.metadata.dimension_names or ())


def _literal(value: str) -> str:
    return "'" + str(value).replace("'", "''") + "'"
