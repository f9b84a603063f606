"""``saldata evaluate OUT --objects`` through the real code path: the readers' demo output, objects added
by ``saldata objects`` from COCO- and Visual Genome-format files written here, constructed maps with known
answers written into the store, and a recomputation from raw zarr and the catalog's Parquet files."""

from __future__ import annotations

import json
import shutil

import duckdb
import numpy as np
import pyarrow.parquet as pq
import pytest
import zarr
from typer.testing import CliRunner

import saldata
from saldata.analysis import metrics
from saldata.cli.main import app
from saldata.schemas.evaluation import OBJECT_SCORES
from tests.objects.formats import visual_genome_files

HEIGHT, WIDTH = 480, 640  # the demo's stored size
IDX = 3  # COCO image 4, a 1024x768 file: its annotations are scaled by 0.625
# Its words (research rows): 'tables' twice (word_index 2 at token 2, 6 at token 8), '25', '18J', '19', 'near'.
TABLES_A, TABLES_B = (2, 2), (6, 8)  # (word_index, token position)
TABLE_BOX = (200, 200, 600, 400)  # stored pixels x0, y0, x1, y1 of the dining table (file: 320..960 x 320..640)
DOG_BOX = (20, 20, 120, 120)  # the dog (file: 32..192 x 32..192)


def invoke(*args):
    result = CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "200"})
    return result.exit_code, result.output


def rectangle_polygon(x0, y0, x1, y1) -> list[list[float]]:
    return [[x0, y0, x1, y0, x1, y1, x0, y1]]


def coco_file(path):
    """Image 4 (idx 3): a dining table the word 'tables' names and a dog it does not; image 1 (idx 0): a dog."""
    scale = 1 / 0.625
    table = [v * scale for v in TABLE_BOX]
    dog = [v * scale for v in DOG_BOX]

    def ann(object_id, image, category, box):
        x0, y0, x1, y1 = box
        return {
            "id": object_id,
            "image_id": image,
            "category_id": category,
            "bbox": [x0, y0, x1 - x0, y1 - y0],
            "area": (x1 - x0) * (y1 - y0),
            "segmentation": rectangle_polygon(*box),
            "iscrowd": 0,
        }

    path.write_text(
        json.dumps(
            {
                "images": [
                    {"id": 4, "width": 1024, "height": 768},
                    {"id": 1, "width": 640, "height": 480},
                ],
                "categories": [{"id": 18, "name": "dog"}, {"id": 67, "name": "dining table"}],
                "annotations": [
                    ann(701, 4, 67, table),
                    ann(702, 4, 18, dog),
                    ann(703, 1, 18, [300, 200, 400, 300]),
                ],
            }
        )
    )
    return path


def hot_cells(rows: range, cols: range, grid: tuple[int, int]) -> np.ndarray:
    values = np.zeros(grid, np.float32)
    values[rows.start : rows.stop, cols.start : cols.stop] = 1.0
    return values


@pytest.fixture(scope="module")
def scored(demo_output_ray_free, tmp_path_factory):
    """The demo output with objects and constructed maps for image 3's two 'tables', scored with --objects."""
    root = tmp_path_factory.mktemp("objects")
    out = shutil.copytree(demo_output_ray_free, root / "out")
    code, text = invoke("objects", out, "--coco", coco_file(root / "instances.json"), "--visual-genome",
                        visual_genome_files(root / "vg"))  # fmt: skip
    assert code == 0, text
    array = zarr.open_group(out / "features.zarr", mode="r+")["attn_highres"]
    grid = array.shape[-2:]  # 36 x 48 cells of 13.33 px
    image = np.asarray(array[IDX])
    # Layer 0. 'tables' (2): cells whose upsampled support (their centre +- one cell) lies inside the table
    # box: every bit of its mass on the table. 'tables' (6): one cell centred at (60, 60) px, inside the dog.
    image[TABLES_A[1], 0] = hot_cells(range(18, 27), range(20, 41), grid)
    image[TABLES_B[1], 0] = hot_cells(range(4, 5), range(4, 5), grid)
    # Layer 1. 'tables' (2): constant, so chance everywhere.
    image[TABLES_A[1], 1] = 0.5
    array[IDX] = image
    code, text = invoke("evaluate", out, "--objects")
    assert code == 0, text
    return out, text, pq.read_table(out / "eval" / "objects.parquet")


def rows_of(table, **where) -> list[dict]:
    return [r for r in table.to_pylist() if all(r[k] == v for k, v in where.items())]


def test_columns_and_settings(scored):
    out, text, table = scored
    assert table.schema.names == [
        "idx", "image_id", "layer", "head", "word_index", "word", "object_id", "source", "category",
        "mass_in_object", "area_fraction", "ratio", "pointing_hit", "named",
    ]  # fmt: skip
    assert table.schema.names == OBJECT_SCORES.names
    metadata = pq.read_schema(out / "eval" / "objects.parquet").metadata
    assert metadata[b"saldata.objects_version"] == b"1"
    assert json.loads(metadata[b"saldata.evaluation"]) == {
        "blur_px": 0.0, "grid": "highres", "layers": [0, 1], "per_head": False, "rows": "research",
        "saldata_version": saldata.__version__,
    }  # fmt: skip
    assert (out / "eval" / "objects.png").stat().st_size > 0
    assert not (out / "eval" / "metrics.parquet").exists()  # --objects scores objects only


def test_every_word_layer_and_object_of_the_images_with_objects(scored):
    out, _, table = scored
    # idx 0: the COCO dog 703 and the VG objects 101 and 5001; idx 3: the table and the dog. Words with
    # research rows: idx 0 one, idx 3 eight (of nine: 'crib' is token 0 only).
    counts = {}
    for r in table.to_pylist():
        counts[(r["idx"], r["layer"])] = counts.get((r["idx"], r["layer"]), 0) + 1
    assert counts == {(0, -1): 3, (0, 0): 3, (0, 1): 3, (3, -1): 2, (3, 0): 16, (3, 1): 16}
    assert {r["head"] for r in table.to_pylist()} == {-1}
    assert {(r["source"], r["object_id"]) for r in rows_of(table, idx=0, layer=0)} == {
        ("coco", 703), ("visual_genome", 101), ("visual_genome", 5001),
    }  # fmt: skip


def test_named_is_true_for_the_word_that_names_the_object_only(scored):
    _, _, table = scored
    named = {(r["word"], r["category"]) for r in table.to_pylist() if r["named"]}
    assert named == {("tables", "dining table")}
    assert len(rows_of(table, named=True)) == 4  # two 'tables' x two layers
    assert not any(r["named"] for r in rows_of(table, layer=-1))


def test_constructed_maps_have_their_known_answers(scored):
    _, _, table = scored
    table_area = (400 * 200) / (HEIGHT * WIDTH)
    dog_area = (100 * 100) / (HEIGHT * WIDTH)
    (on_table,) = rows_of(table, idx=IDX, layer=0, word_index=TABLES_A[0], object_id=701)
    assert on_table["area_fraction"] == table_area
    assert on_table["mass_in_object"] == pytest.approx(1.0, abs=1e-12)
    assert on_table["ratio"] == pytest.approx(1 / table_area, rel=1e-12)
    assert on_table["pointing_hit"] and on_table["named"]
    (off_dog,) = rows_of(table, idx=IDX, layer=0, word_index=TABLES_A[0], object_id=702)
    assert off_dog["mass_in_object"] == 0.0 and not off_dog["pointing_hit"] and not off_dog["named"]
    (on_dog,) = rows_of(table, idx=IDX, layer=0, word_index=TABLES_B[0], object_id=702)
    assert on_dog["mass_in_object"] == pytest.approx(1.0, abs=1e-12)
    assert on_dog["ratio"] == pytest.approx(1 / dog_area, rel=1e-12) and on_dog["pointing_hit"]
    for r in rows_of(table, idx=IDX, layer=1, word_index=TABLES_A[0]):  # a constant map
        assert r["ratio"] == pytest.approx(1.0, rel=1e-12), r


def test_summary_lines_and_baselines(scored):
    _, text, _ = scored
    table_ratio = (HEIGHT * WIDTH) / (400 * 200)
    dog_ratio = (HEIGHT * WIDTH) / (100 * 100)
    lines = {line.split("│")[1].strip(): [c.strip() for c in line.split("│")[2:-1]] for line in text.splitlines()
             if line.startswith("│")}  # fmt: skip
    # Layer 0, named: 'tables' (2) all on the table, 'tables' (6) all on the dog; other objects: the reverse.
    assert lines["0"][0] == "2" and lines["0"][1] == "0.500 ± 0.500"
    assert lines["0"][2] == f"{table_ratio / 2:.3f} ± {table_ratio / 2:.3f}"
    assert lines["0"][3] == "2" and lines["0"][5] == f"{dog_ratio / 2:.3f} ± {dog_ratio / 2:.3f}"
    # The centre bias against the named pairs' object (the table, twice): its peak is on the table.
    assert lines["centre bias"][0] == "2" and lines["centre bias"][1] == "1.000 ± 0.000"
    assert "named pairs: a word's map against an object it names (2 words on 1 image)" in text


def upsampled_word_map(group, idx: int, layer: int, first: int, last: int) -> np.ndarray:
    """A word's map by hand: its tokens' rows (research: from row 1), heads averaged, summed, upsampled."""
    rows = np.asarray(group["attn_highres"][idx, max(first, 1) : last + 1, layer], np.float64)
    return metrics.upsample_bilinear(rows.mean(axis=1).sum(axis=0), (HEIGHT, WIDTH))


# pycocotools' decode, read here with no saldata code between, warns under NumPy 2 (its masks are right).
@pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning")
def test_scores_match_a_recomputation_from_zarr_and_the_catalog(scored):
    from pycocotools import mask as coco_mask

    out, _, table = scored
    group = zarr.open_group(out / "features.zarr", mode="r")
    masks = {
        (r["idx"], r["source"], r["object_id"]): coco_mask.decode({"size": [HEIGHT, WIDTH], "counts": r["rle"].encode()})
        for r in pq.read_table(out / "catalog" / "object_masks").to_pylist()
    }  # fmt: skip
    words = {
        (r[0], r[1]): (r[2], r[3])
        for r in duckdb.sql(
            f"SELECT idx, word_index, first_position, last_position FROM read_parquet('{out}/catalog/words/*.parquet')"
        ).fetchall()
    }
    checked = 0
    for row in table.to_pylist():
        if row["layer"] < 0:
            continue
        prediction = upsampled_word_map(group, row["idx"], row["layer"], *words[(row["idx"], row["word_index"])])
        mask = masks[(row["idx"], row["source"], row["object_id"])].astype(bool)
        mass = prediction[mask].sum() / prediction.sum()
        assert row["mass_in_object"] == pytest.approx(mass, rel=1e-9, abs=1e-12)
        assert row["area_fraction"] == mask.mean()
        assert row["ratio"] == pytest.approx(mass / mask.mean(), rel=1e-9, abs=1e-12)
        peak = np.unravel_index(np.argmax(prediction), prediction.shape)
        ys, xs = np.nonzero(mask)
        assert row["pointing_hit"] == (np.hypot(ys - peak[0], xs - peak[1]).min() <= 15), row
        checked += 1
    assert checked == 38


def test_per_head_rows_score_each_heads_map(scored, tmp_path):
    out = shutil.copytree(scored[0], tmp_path / "out")
    code, text = invoke("evaluate", out, "--objects", "--per-head", "--layers", "0", "--blur", "2", "--overwrite")
    assert code == 0, text
    table = pq.read_table(out / "eval" / "objects.parquet")
    heads = zarr.open_group(out / "features.zarr", mode="r")["attn_highres"].shape[3]
    assert {r["head"] for r in table.to_pylist()} == {-1, *range(heads)}
    assert {r["layer"] for r in table.to_pylist()} == {-1, 0}
    assert json.loads(pq.read_schema(out / "eval" / "objects.parquet").metadata[b"saldata.evaluation"])["blur_px"] == 2


def test_an_output_without_objects_is_one_line(demo_output_ray_free, tmp_path):
    out = shutil.copytree(demo_output_ray_free, tmp_path / "out")
    code, text = invoke("evaluate", out, "--objects")
    assert code == 2
    assert text.strip().splitlines() == [
        f"Error: {out} has no objects; add them first with saldata objects {out} --coco instances_val2014.json "
        "(or --visual-genome DIR), then rerun evaluate --objects."
    ]
    assert not (out / "eval" / "objects.parquet").exists()


def test_the_readme_documents_every_column():
    import re
    from pathlib import Path

    readme = (Path(__file__).parents[2] / "README.md").read_text()
    section = readme.split("### Does each word look at what it names?", 1)[1].split("\n## ", 1)[0]
    documented = [
        n for row in section.splitlines() if row.startswith("| `") for n in re.findall(r"`([^`]+)`", row.split("|")[1])
    ]
    assert documented == OBJECT_SCORES.names


def test_a_rerun_with_other_settings_is_refused_and_a_named_run_writes_beside(scored, tmp_path):
    """The rule of every evaluation table (storage/eval_tables.check_replace): never replaced silently."""
    out = shutil.copytree(scored[0], tmp_path / "out")
    before = (out / "eval" / "objects.parquet").read_bytes()
    code, text = invoke("evaluate", out, "--objects", "--blur", "2")
    assert code == 2 and "was made with other settings (blur_px 0.0 there, 2.0 now)" in text, text
    assert (out / "eval" / "objects.parquet").read_bytes() == before
    code, text = invoke("evaluate", out, "--objects", "--blur", "2", "--name", "blur2")
    assert code == 0, text
    assert (out / "eval" / "objects.parquet").read_bytes() == before
    named = pq.read_table(out / "eval" / "blur2" / "objects.parquet")
    assert named.num_rows == pq.read_table(out / "eval" / "objects.parquet").num_rows
    assert (out / "eval" / "blur2" / "objects.png").stat().st_size > 0
