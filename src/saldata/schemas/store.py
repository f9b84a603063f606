"""The Zarr store contract: which arrays exist, their dimensions, dtypes and fill values.

This is the one place those facts live. The writer creates arrays from these specs, the
readers and the README's schema table are checked against them, and a change here that is
not backwards compatible must bump ``STORE_SCHEMA_VERSION``.

Token convention: row ``t`` of every per-token array belongs to generated token ``t`` and
holds what the decoding step that PRODUCED that token computed. With decoder layers counted
``l = 0..L-1`` that is Hugging Face's ``attentions[t][l][:, :, -1]`` and
``hidden_states[t][l + 1][:, -1]`` (for ``t = 0`` the prompt's last position).

EOS convention: ``n_tokens`` counts generated tokens, EOS excluded. When generation ended with
EOS (``images.ended_with_eos``), row ``n_tokens`` holds the step that produced it, with
``token_ids`` = the EOS id; otherwise rows from ``n_tokens`` on are padding.

Layer convention: the per-token arrays have a ``layer`` axis right after ``token``; position
``p`` on it holds decoder layer ``attrs["layers"][p]`` (0-based, ascending), which the ``layer``
array holds too.

Coordinates: ``image_id`` (on ``image``) and ``layer`` (on ``layer``, named like its dimension) are
the store's coordinate arrays. Every other array on ``image`` names ``image_id`` in its CF
``coordinates`` attribute, so xarray makes both coordinates and every other array a data variable.

Padding: ``token_mask`` is true where a row of the per-token arrays holds data (rows below
``n_tokens``, and row ``n_tokens`` where generation ended with EOS); the fill values of the other
rows (0.0, a legitimate attention value) are never data.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

STORE_SCHEMA_VERSION = 7  # schemas/history.py says what each version changed
STORE_DIRNAME = "features.zarr"
TOKEN_PAD = -1
STRING = "string"  # Zarr v3's variable-length UTF-8 data type
IMAGE_COORDINATE = "image_id"


@dataclass(frozen=True, slots=True)
class Geometry:
    """Every size the store's shapes are made of, derived from the model, processor and run settings."""

    n_images: int
    max_tokens: int
    hidden_size: int
    heads: int  # stored heads: the layer's head count, or 1 with heads="mean"
    base_grid: tuple[int, int]
    highres_grid: tuple[int, int]
    image_size: tuple[int, int]  # (width, height) images are reshaped to
    layers: int = 1  # decoder layers captured (the layer axis' length)

    def size(self, dim: str) -> int:
        sizes = {
            "image": self.n_images,
            "token": self.max_tokens,
            "layer": self.layers,
            "hidden_dim": self.hidden_size,
            "head": self.heads,
            "base_row": self.base_grid[0],
            "base_col": self.base_grid[1],
            "highres_row": self.highres_grid[0],
            "highres_col": self.highres_grid[1],
            "height": self.image_size[1],
            "width": self.image_size[0],
        }
        return sizes[dim]


@dataclass(frozen=True, slots=True)
class ArraySpec:
    """One array of the store: dims are named (they become Zarr v3 ``dimension_names``)."""

    name: str
    dims: tuple[str, ...]
    dtype: str
    fill_value: int | float | bool | str
    doc: str

    def shape(self, geometry: Geometry) -> tuple[int, ...]:
        return tuple(geometry.size(d) for d in self.dims)

    def numpy_dtype(self) -> np.dtype:
        """The dtype of the values a writer hands to Zarr (Python strings for a string array)."""
        return np.dtype(object) if self.dtype == STRING else np.dtype(self.dtype)

    @property
    def per_image(self) -> bool:
        """Rows on the image axis, each shard's written by its one writer; else written once, with the store."""
        return self.dims[0] == "image"

    def attributes(self) -> dict:
        """The array's Zarr attributes: its doc, and the CF ``coordinates`` of an array on ``image``."""
        coordinates = self.per_image and self.name != IMAGE_COORDINATE
        return {"doc": self.doc, **({"coordinates": IMAGE_COORDINATE} if coordinates else {})}


ARRAYS: tuple[ArraySpec, ...] = (
    ArraySpec(
        "token_ids",
        ("image", "token"),
        "int32",
        TOKEN_PAD,
        "Generated token ids, then the EOS id at row n_tokens when generation ended with it, padded with -1.",
    ),
    ArraySpec("n_tokens", ("image",), "int32", 0, "Number of valid rows in the per-token arrays."),
    ArraySpec(
        "token_mask",
        ("image", "token"),
        "bool",
        False,
        "True where a row of the per-token arrays holds data: rows < n_tokens, and row n_tokens where generation "
        "ended with EOS; the other rows are padding.",
    ),
    ArraySpec(
        "hidden",
        ("image", "token", "layer", "hidden_dim"),  # not "hidden": xarray would make the array a coordinate
        "float16",
        0.0,
        "Hidden state of each captured layer at the step that produced each token.",
    ),
    ArraySpec(
        "attn_base",
        ("image", "token", "layer", "head", "base_row", "base_col"),
        "float16",
        0.0,
        "Attention of each token's step over the base (whole-image) grid.",
    ),
    ArraySpec(
        "attn_highres",
        ("image", "token", "layer", "head", "highres_row", "highres_col"),
        "float16",
        0.0,
        "Attention over the high-resolution grid, padding and newline tokens removed.",
    ),
    ArraySpec(
        "saliency_map",
        ("image", "height", "width"),
        "uint8",
        0,
        "Ground-truth saliency map at the stored image size, 0..255 (all 0 where images.gt_status is not 'ok').",
    ),
    ArraySpec(
        "fixation_map",
        ("image", "height", "width"),
        "uint8",
        0,
        "Ground-truth fixations at the stored image size: 1 where any subject fixated, else 0.",
    ),
    ArraySpec(
        IMAGE_COORDINATE,
        ("image",),
        STRING,
        "",
        "Each image's id (images.image_id), for every image of a committed shard, failed ones too; '' elsewhere.",
    ),
    ArraySpec(
        "layer",  # named like its dimension: xarray makes it the layer axis' index
        ("layer",),
        "int32",
        -1,
        "The decoder layer (0-based) at each position of the layer axis; written when the store is created.",
    ),
)

ARRAY_SPECS: dict[str, ArraySpec] = {spec.name: spec for spec in ARRAYS}
SHARD_ARRAYS: tuple[ArraySpec, ...] = tuple(spec for spec in ARRAYS if spec.per_image)  # one file per shard
COORDINATE_ARRAYS: tuple[str, ...] = (IMAGE_COORDINATE, "layer")

# Root attributes every store carries; the writer fills all of them and resume compares
# the ones that must match between runs.
ROOT_ATTRIBUTES: tuple[str, ...] = (
    "schema_version",
    "model",
    "model_path",
    "prompt",
    "prompt_id",
    "layers",
    "n_decoder_layers",
    "heads",
    "image_size",
    "base_grid",
    "highres_grid",
    "max_new_tokens",
    "shard_size",
    "dtype",
    "n_images",
    "sources_digest",
    "config_digest",
    "saldata_version",
    "transformers_version",
    "hub_kernels",
    "created",
)


def creation_values(attributes: dict, layers: int | None = None) -> dict[str, np.ndarray]:
    """What the arrays written at the store's creation hold: ``layer``, the ``layers`` attribute
    (``layers``: how many the geometry captures, checked). Nothing where the attributes name no
    layers: the array keeps its fill, -1."""
    if "layers" not in attributes:
        return {}
    values = np.asarray(attributes["layers"], dtype=ARRAY_SPECS["layer"].dtype)
    if layers is not None and values.shape != (layers,):
        raise ValueError(f"the layers attribute {attributes['layers']} does not name {layers} captured layers")
    return {"layer": values}
