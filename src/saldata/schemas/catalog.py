"""The Parquet catalog contract: tables, their columns and types.

Arrow schemas are generated from these column lists, never retyped elsewhere. A catalog
row's ``idx`` is the row of every array in the Zarr store.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

CATALOG_SCHEMA_VERSION = 1
CATALOG_DIRNAME = "catalog"

STATUS_DONE = "done"
STATUS_FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    type: pa.DataType
    doc: str
    nullable: bool = False


@dataclass(frozen=True, slots=True)
class TableSpec:
    name: str
    columns: tuple[Column, ...]
    doc: str

    @property
    def schema(self) -> pa.Schema:
        return pa.schema(
            [pa.field(c.name, c.type, nullable=c.nullable) for c in self.columns],
            metadata={"saldata.table": self.name, "saldata.schema_version": str(CATALOG_SCHEMA_VERSION)},
        )

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]


IMAGES = TableSpec(
    "images",
    (
        Column("idx", pa.int64(), "Row of this image in every store array."),
        Column("shard", pa.int32(), "Work unit that wrote this image."),
        Column("dataset", pa.string(), "Dataset name (salicon, demo, folder)."),
        Column("split", pa.string(), "Dataset split (train/val/test; 'all' for folders)."),
        Column("image_id", pa.string(), "Image id: the file stem for SALICON, the relative path for folders."),
        Column("source_path", pa.string(), "Absolute path of the source image."),
        Column("orig_width", pa.int32(), "Width of the source image before resizing.", nullable=True),
        Column("orig_height", pa.int32(), "Height of the source image before resizing.", nullable=True),
        Column("text", pa.string(), "Generated description (special tokens removed).", nullable=True),
        Column("n_tokens", pa.int32(), "Generated tokens stored (EOS excluded)."),
        Column("status", pa.string(), "'done' or 'failed'."),
        Column("error", pa.string(), "Why the image failed, naming the file.", nullable=True),
        Column("prompt_id", pa.string(), "Prompt preset name, or 'custom'."),
        Column("load_s", pa.float64(), "Seconds spent decoding and resizing the image."),
        Column("model_s", pa.float64(), "Seconds of model time, the batch's time split evenly."),
    ),
    "One row per image.",
)

TOKENS = TableSpec(
    "tokens",
    (
        Column("idx", pa.int64(), "Image row (see images.idx)."),
        Column("position", pa.int32(), "Token row in the store's per-token arrays."),
        Column("token_id", pa.int32(), "Vocabulary id."),
        Column("token", pa.string(), "The token decoded on its own (may be part of a word)."),
    ),
    "One row per generated token.",
)

TABLES: dict[str, TableSpec] = {t.name: t for t in (IMAGES, TOKENS)}
