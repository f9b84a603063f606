"""The Parquet catalog contract: tables, their columns and types.

Arrow schemas are generated from these column lists, never retyped elsewhere. A catalog
row's ``idx`` is the row of every array in the Zarr store.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

CATALOG_SCHEMA_VERSION = 6  # schemas/history.py says what each version changed
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
        Column("dataset", pa.string(), "Dataset name, as given to --dataset (saldata datasets lists them)."),
        Column("split", pa.string(), "Dataset split (train/val/test; 'all' for folders)."),
        Column("image_id", pa.string(), "Image id: the file stem for SALICON, the relative path for folders."),
        Column("source_path", pa.string(), "Absolute path of the source image."),
        Column("orig_width", pa.int32(), "Width of the source image before resizing.", nullable=True),
        Column("orig_height", pa.int32(), "Height of the source image before resizing.", nullable=True),
        Column("text", pa.string(), "Generated description (special tokens removed).", nullable=True),
        Column("n_tokens", pa.int32(), "Generated tokens stored (EOS excluded)."),
        Column(
            "ended_with_eos",
            pa.bool_(),
            "Generation ended with EOS: the step that produced it is stored at row n_tokens of every per-token "
            "array (token_ids there = the EOS id). False: it ran to --max-new-tokens. Null for failed images.",
            nullable=True,
        ),
        Column("status", pa.string(), "'done' or 'failed'."),
        Column("error", pa.string(), "Why the image failed, naming the file.", nullable=True),
        Column("category", pa.string(), "Dataset category where it has them (CAT2000), else null.", nullable=True),
        Column(
            "coco_id",
            pa.int64(),
            "COCO image id: parsed from a SALICON file name (COCO_val2014_000000102625 -> 102625), from "
            "image_data.json for Visual Genome; null otherwise. saldata objects joins COCO annotations by it.",
            nullable=True,
        ),
        Column("gt_status", pa.string(), "Ground truth: 'ok', 'none' (the dataset has none here) or 'failed'."),
        Column("gt_error", pa.string(), "Why the ground truth could not be read, naming the file.", nullable=True),
        Column("n_fixations", pa.int32(), "Fixation points in the ground truth (all subjects).", nullable=True),
        Column(
            "n_fixations_clipped",
            pa.int32(),
            "Fixation points outside the original image, clipped to its border.",
            nullable=True,
        ),
        Column("prompt_id", pa.string(), "Prompt preset name, or 'custom'."),
        Column(
            "prompt_text",
            pa.string(),
            "The prompt's full text, as the model was asked it (the preset's, or --prompt TEXT). Null in outputs "
            "written before it was recorded.",
            nullable=True,
        ),
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
        Column("char_start", pa.int32(), "Start of the token's characters in images.text (empty span: none)."),
        Column("char_end", pa.int32(), "End (exclusive) of the token's characters in images.text."),
    ),
    "One row per generated token.",
)

WORDS = TableSpec(
    "words",
    (
        Column("idx", pa.int64(), "Image row (see images.idx)."),
        Column("word_index", pa.int32(), "Position of the word in the description, from 0."),
        Column("word", pa.string(), "The word as written in images.text (letters and digits, inner - and ')."),
        Column("first_position", pa.int32(), "First token of the word (tokens.position)."),
        Column("last_position", pa.int32(), "Last token of the word, inclusive."),
        Column("char_start", pa.int32(), "Start of the word in images.text."),
        Column("char_end", pa.int32(), "End (exclusive) of the word in images.text."),
    ),
    "One row per word of the description, grouped from token character offsets.",
)

FIXATIONS = TableSpec(
    "fixations",
    (
        Column("idx", pa.int64(), "Image row (see images.idx)."),
        Column(
            "subject",
            pa.int32(),
            "Subject, numbered from 0 in the file's order; null where the format has none (CAT2000, MIT1003 maps).",
            nullable=True,
        ),
        Column(
            "fixation_index",
            pa.int32(),
            "Order of the fixation within its subject, from 0 (a map's: row-major order of its pixels).",
        ),
        Column(
            "x",
            pa.float64(),
            "0-based column in the stored image: orig_x scaled to the stored width, a point off the image "
            "clipped into [0, width), so floor(x) is the column fixation_map marks.",
        ),
        Column("y", pa.float64(), "0-based row in the stored image, like x (floor(y) is fixation_map's row)."),
        Column(
            "orig_x",
            pa.float64(),
            "0-based x as in the file, unclipped, in the pixels of the frame the points refer to "
            "(SALICON: its resolution, which may differ from the image's; else the original image).",
        ),
        Column("orig_y", pa.float64(), "0-based y as in the file, like orig_x."),
        Column(
            "duration_ms",
            pa.float64(),
            "Fixation duration where the dataset has them (OSIE), else null.",
            nullable=True,
        ),
    ),
    "One row per fixation point, duplicates kept, for every image whose fixations loaded "
    "(images.n_fixations not null: as many rows), whatever its status.",
)

OBJECTS = TableSpec(
    "objects",
    (
        Column("idx", pa.int64(), "Image row (see images.idx)."),
        Column("object_id", pa.int64(), "The annotation's own id: COCO's annotation id, Visual Genome's object_id."),
        Column("source", pa.string(), "'coco' or 'visual_genome'."),
        Column(
            "category",
            pa.string(),
            "COCO: the category's name; Visual Genome: the object's first name (null: it has none).",
            nullable=True,
        ),
        Column("names", pa.list_(pa.string()), "COCO: [category]; Visual Genome: the object's names."),
        Column("synsets", pa.list_(pa.string()), "Visual Genome's WordNet synsets (e.g. dog.n.01); [] for COCO."),
        Column(
            "bbox_x",
            pa.float64(),
            "Left edge of the box in stored-image pixels (0-based): the annotation's x times "
            "width / annotation_width, the same stretch the image got.",
        ),
        Column("bbox_y", pa.float64(), "Top edge of the box in stored-image pixels, like bbox_x."),
        Column("bbox_w", pa.float64(), "Box width in stored-image pixels."),
        Column("bbox_h", pa.float64(), "Box height in stored-image pixels."),
        Column(
            "area_fraction",
            pa.float64(),
            "Share of the stored image's pixels inside the object's mask (Visual Genome: its box), as "
            "object_mask rasterises it; always > 0.",
        ),
        Column("iscrowd", pa.bool_(), "COCO's iscrowd (a crowd region, RLE mask); false for Visual Genome."),
    ),
    "One row per placed object annotation (saldata objects), derived after the extraction.",
)

OBJECT_MASKS = TableSpec(
    "object_masks",
    (
        Column("idx", pa.int64(), "Image row (see images.idx)."),
        Column("object_id", pa.int64(), "The object (see objects.object_id)."),
        Column("source", pa.string(), "'coco' or 'visual_genome' (see objects.source)."),
        Column(
            "rle",
            pa.string(),
            "The mask at the stored size (height x width of the root attribute image_size) as COCO's "
            "compressed RLE counts: pycocotools.mask.decode({'size': [height, width], 'counts': rle}).",
        ),
    ),
    "One row per objects row: its mask (COCO: the rasterised segmentation; Visual Genome: the box filled).",
)

# The tables every shard writes (one file per table per shard, named by the shard's commit record).
TABLES: dict[str, TableSpec] = {t.name: t for t in (IMAGES, TOKENS, WORDS, FIXATIONS)}
# Tables derived from a whole output after the extraction (saldata objects): one record, commits/objects.json.
OBJECT_TABLES: dict[str, TableSpec] = {t.name: t for t in (OBJECTS, OBJECT_MASKS)}
CATALOG_TABLES: dict[str, TableSpec] = {**TABLES, **OBJECT_TABLES}
