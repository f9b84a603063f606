"""Schema history of the store and the catalog: one row per version, newest last.

README.md's "Schema history" table is checked against this one (tests/storage/test_schema_docs.py).
A resume refuses an output whose store version is older than ``STORE_SCHEMA_VERSION``;
``saldata.open`` still reads it.
"""

from __future__ import annotations

# (store schema_version, catalog schema_version, what changed)
SCHEMA_HISTORY: tuple[tuple[int, int, str], ...] = (
    (1, 1, "first release: token_ids, n_tokens, hidden, attn_base, attn_highres; images and tokens tables"),
    (
        2,
        2,
        "saliency_map and fixation_map arrays; images.category, gt_status, gt_error, n_fixations; "
        "tokens.char_start/char_end; the words table",
    ),
    (
        3,
        3,
        "commit records (OUT/commits/) naming every file of a shard with its size and CRC-32C; crc32c codec on "
        "every chunk; root attribute config_digest; images.n_fixations_clipped; the hidden array's last dimension is "
        "hidden_dim (was hidden, its own name, which xarray turned into a coordinate); consolidated metadata",
    ),
    (
        4,
        4,
        "layer axis after the token axis of hidden, attn_base and attn_highres (--layers: many layers in one pass); root attribute layers (the captured decoder layers, 0-based, in axis order) replaces layer, and n_decoder_layers is added; chunks hold one layer; the fixations table (one row per fixation point: idx, subject, fixation_index, x, y at the stored size, orig_x, orig_y as in the file, duration_ms, duplicates kept); the EOS step kept at row n_tokens of the per-token arrays, and "
        "images.ended_with_eos",
    ),
    (
        5,
        5,
        "the coordinate arrays image_id (string, on image, named by every other array on image in its CF coordinates attribute) and layer (int32, the decoder layer at each layer-axis position, written when the store is created), and token_mask (bool, true where a row of the per-token arrays holds data); saldata verify checks layer against the root attribute layers, and image_id and token_mask against the catalog; root attribute hub_kernels (false: the model ran on its own layers, never on kernels fetched from the Hub); images.prompt_text (the prompt's full text, beside prompt_id; null in outputs written before it)",
    ),
    (
        6,
        5,
        "the store record (OUT/commits/store.json): every metadata file of the store (the root zarr.json with the root attributes and the consolidated metadata, each array's zarr.json) with its size, CRC-32C and text, written with the store; saldata verify, saldata.open and a resume check them, and a resume restores a changed one",
    ),
    (
        7,
        6,
        "images.coco_id (the COCO image id: from SALICON file names, from image_data.json for Visual Genome); the "
        "objects and object_masks tables (saldata objects: COCO and Visual Genome annotations placed at the stored "
        "size, committed by OUT/commits/objects.json). The store itself is unchanged: its version moves so that a "
        "resume refuses an output whose images files lack coco_id",
    ),
)


def newer_than(store_version: int) -> str:
    """What changed after ``store_version``, in a few words, for a refusal to resume an older output."""
    changes = [what.split(";")[0] for store, _, what in SCHEMA_HISTORY if store > store_version]
    return "; ".join(changes) or "nothing recorded"
