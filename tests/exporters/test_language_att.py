"""``--format language-att``: what the trainer's loader (trainer_loader.py) reads is the store's rows,
row for row: generated tokens 1.., then the EOS step where generation ended with one."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from typer.testing import CliRunner

import saldata
from saldata.cli.main import app
from saldata.datasets.base import ImageSource
from saldata.exporters.annotations import salicon_mat_problem
from saldata.exporters.language_att import token_strings, trainer_rows
from tests.datasets.formats import write_salicon_gaze
from tests.exporters.conftest import SALICON_STEMS, SALICON_SUBJECTS, SALICON_WITHOUT_TRUTH
from tests.exporters.trainer_loader import annotation, batch, trainer_items

ARRAYS = (("hidden", "hidden"), ("base", "attn_base"), ("patch", "attn_highres"))


def export(out, dest, *args) -> dict:
    """Run the export; the trainer settings it prints."""
    result = CliRunner().invoke(app, ["export", str(out), str(dest), "--format", "language-att", *map(str, args)])
    assert result.exit_code == 0, result.output
    found = re.search(r"--input_dim (\d+) --input_head (\d+) --max_len (\d+)", result.output)
    assert found, result.output
    return {"output": result.output, **dict(zip(("input_dim", "input_head", "max_len"), map(int, found.groups())))}


def stop(row: dict) -> int:
    """One past the image's last stored step: n_tokens, plus the EOS step's row when it ended with EOS."""
    return row["n_tokens"] + (1 if row["ended_with_eos"] else 0)


def test_rows_are_tokens_from_one_then_the_eos_step():
    assert list(trainer_rows(5, False)) == [1, 2, 3, 4]
    assert list(trainer_rows(5, True)) == [1, 2, 3, 4, 5]  # the step that produced EOS is row n_tokens
    assert list(trainer_rows(1, True)) == [1]
    for n, eos in [(0, False), (0, True), (1, False), (1, None)]:
        assert list(trainer_rows(n, eos)) == []


def test_token_strings_lose_the_space_marker_and_keep_newlines(tiny_model_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    ids = tokenizer("a cat\non grass", add_special_tokens=False)["input_ids"]
    raw = tokenizer.convert_ids_to_tokens(ids)
    assert any("\u0120" in t for t in raw) and any("\u010a" in t for t in raw), raw  # the markers are there to remove
    strings = token_strings(tokenizer, ids)
    assert "".join(strings) == "acat\nongrass" and len(strings) == len(ids)


def check_rows(dest, out, split: str, settings: dict, layer: int | None = None) -> list[dict]:
    """Every item the loader serves is the store's rows 1.. of its image at ``layer``; the items."""
    output = saldata.open(out)
    group = output.group
    position = output.layers.position(layer)
    rows = {r["image_id"]: r for r in output.images.to_pylist()}
    items = trainer_items(dest, split, settings["max_len"], hidden_size=settings["input_dim"])
    assert {i["id"] for i in items} == {i for i, r in rows.items() if r["gt_status"] == "ok" and stop(r) > 1}
    for item in items:
        row = rows[item["id"]]
        idx, last = row["idx"], stop(row)
        assert item["valid_len"] == last - 1
        for key, name in ARRAYS:
            np.testing.assert_array_equal(item[key][: last - 1], group[name][idx, 1:last, position].astype(np.float32))
            assert not item[key][last - 1 :].any()  # padding
    assert settings["input_dim"] == group["hidden"].shape[-1]
    assert settings["input_head"] == group["attn_base"].shape[3]
    return items


def test_the_trainer_reads_the_store_rows_eos_step_last(late_eos_output, tmp_path):
    dest = tmp_path / "trainer"
    settings = export(late_eos_output, dest)
    items = check_rows(dest, late_eos_output, "val", settings)
    output = saldata.open(late_eos_output)
    rows = {r["image_id"]: r for r in output.images.to_pylist()}
    ended = [i for i in items if rows[i["id"]]["ended_with_eos"]]
    assert ended and len(ended) < len(items), "the fixture must give an EOS ending with rows, and a run-out one"
    model = json.loads((Path(output.attrs["model_path"]) / "generation_config.json").read_text())
    for item in ended:  # the last row is the step that produced EOS: store row n_tokens
        row = rows[item["id"]]
        n = row["n_tokens"]
        assert int(output.group["token_ids"][row["idx"], n]) == model["eos_token_id"]
        np.testing.assert_array_equal(
            item["hidden"][n - 1], output.group["hidden"][row["idx"], n, -1].astype(np.float32)
        )
    # The printed --max_len pads every item to one length, and is the smallest that does: nothing is cut.
    assert batch(items)["hidden"].shape == (len(items), settings["max_len"], settings["input_dim"])
    assert settings["max_len"] == max(i["valid_len"] for i in items)
    with pytest.raises(ValueError):
        batch(trainer_items(dest, "val", settings["max_len"] - 1, hidden_size=settings["input_dim"]))


def test_captions_name_each_row_and_every_file_has_a_valid_key(late_eos_output, tmp_path):
    from transformers import AutoTokenizer

    dest = tmp_path / "trainer"
    export(late_eos_output, dest)
    output = saldata.open(late_eos_output)
    tokenizer = AutoTokenizer.from_pretrained(output.attrs["model_path"])
    captions = json.loads((dest / "caption.json").read_text())["val"]
    valid = json.loads((dest / "salicon_valid.json").read_text())["val"]
    assert sorted(valid) == sorted(p.name for p in (dest / "hidden_state" / "val").iterdir())
    assert sorted(valid) == sorted(p.name for p in (dest / "attention" / "val").iterdir())
    kinds = set()
    for row in output.images.to_pylist():
        entry, idx, n, last = captions[row["image_id"]], row["idx"], row["n_tokens"], stop(row)
        hidden = np.load(dest / "hidden_state" / "val" / f"{row['image_id']}.npy")
        attention = np.load(dest / "attention" / "val" / f"{row['image_id']}.npy", allow_pickle=True).item()
        assert len(entry["raw_token"]) == len(hidden) == len(attention["base"]) == max(0, last - 1)
        assert sorted(attention) == ["base", "patch"]
        text_ids = output.group["token_ids"][idx, 1:n].tolist()  # token 0 dropped; EOS is no text
        assert entry["merged_token"] == tokenizer.decode(text_ids, skip_special_tokens=True)
        assert row["text"].endswith(entry["merged_token"].lstrip("\ufffd"))  # (a character split by token 0 aside)
        assert not any("\u0120" in t or "\u010a" in t for t in entry["raw_token"])
        if row["ended_with_eos"] and last > 1:
            eos = tokenizer.convert_ids_to_tokens(int(output.group["token_ids"][idx, n]))
            assert entry["raw_token"][-1] == eos.replace("\u0120", "").replace("\u010a", "\n")
        assert valid[f"{row['image_id']}.npy"] == (last > 1)  # every demo image has ground truth
        kinds.add(last > 1)
        if last <= 1:  # no rows: files of zero rows, marked false so the trainer never loads them
            assert hidden.shape == (0, output.group["hidden"].shape[-1]) and hidden.dtype == np.float16
            assert attention["patch"].shape[0] == 0
    assert kinds == {True, False}, "the fixture must give an image without rows"


def test_another_layer_exports_that_layer(late_eos_output, tmp_path):
    dest = tmp_path / "layer0"
    settings = export(late_eos_output, dest, "--layer", "0")
    assert "layer 0: the research used the model's last layer (1)" in settings["output"]
    items = check_rows(dest, late_eos_output, "val", settings, layer=0)
    output = saldata.open(late_eos_output)
    idx = {r["image_id"]: r["idx"] for r in output.images.to_pylist()}
    for item in items:  # not the default layer's rows
        other = output.group["attn_base"][idx[item["id"]], 1 : 1 + item["valid_len"], 1].astype(np.float32)
        assert not np.array_equal(item["base"][: item["valid_len"]], other)


def test_salicon_fixture_with_annotations(salicon_output, salicon_root, tmp_path):
    dest = tmp_path / "trainer"
    settings = export(salicon_output, dest, "--annotations")
    assert f"--anno_path {dest} " in settings["output"]
    assert "1 fixation files not linked: missing from the dataset" in settings["output"]
    items = check_rows(dest, salicon_output, "val", settings)
    assert sorted(i["id"] for i in items) == sorted(SALICON_STEMS)  # the image without ground truth is false
    assert json.loads((dest / "salicon_valid.json").read_text())["val"][f"{SALICON_WITHOUT_TRUTH}.npy"] is False
    for stem in SALICON_STEMS:
        assert (dest / "images" / "val" / f"{stem}.jpg").resolve() == salicon_root / "images" / "val" / f"{stem}.jpg"
        assert (
            dest / "fixation" / "val" / f"{stem}.mat"
        ).resolve() == salicon_root / "fixations" / "val" / f"{stem}.mat"
        truth = annotation(dest, "val", stem)
        assert truth["image"].shape == (480, 640, 3) and truth["saliency"].shape == (480, 640)
        marked = {tuple(map(int, p)) for p in np.argwhere(truth["fixations"])}
        assert marked == {(y - 1, x - 1) for x, y in SALICON_SUBJECTS[0]}  # subject 1's lone pair is skipped
    assert (dest / "images" / "val" / f"{SALICON_WITHOUT_TRUTH}.jpg").is_symlink()
    assert not (dest / "saliency_map" / "val" / f"{SALICON_WITHOUT_TRUTH}.png").exists()


def test_demo_fixation_files_are_not_linked(demo_output_ray_free, tmp_path):
    settings = export(demo_output_ray_free, tmp_path / "trainer", "--annotations")
    # The demo's .mat files store floats (and a point off the image, for the loaders' clipping).
    assert "6 fixation files not linked: resolution or fixations not stored as integers" in settings["output"]
    assert len(list((tmp_path / "trainer" / "saliency_map" / "val").iterdir())) == 6
    assert not (tmp_path / "trainer" / "fixation").exists()


def test_only_fixation_files_the_trainer_reads_are_linked(tmp_path):
    def problem(points, size=(640, 480), format="salicon", integers=True):
        path = tmp_path / f"{len(list(tmp_path.iterdir()))}.mat"
        write_salicon_gaze(path, points, size)
        if not integers:  # as the demo writes them
            mat = scipy.io.loadmat(path)
            public = {k: v for k, v in mat.items() if not k.startswith("__")}
            scipy.io.savemat(path, {**public, "resolution": mat["resolution"].astype(np.float64)})
        return salicon_mat_problem(ImageSource("salicon", "val", path.stem, "x.jpg", None, str(path), format))

    assert problem([np.array([[1, 1], [640, 480]]), np.array([[5, 6]])]) is None
    assert "outside their resolution" in problem([np.array([[641, 10]])])  # past the right edge
    assert "outside their resolution" in problem([np.array([[0, 10]])])  # would wrap round to the last column
    assert "not stored as integers" in problem([np.array([[10.5, 10]])])
    assert "not stored as integers" in problem([np.array([[10, 10]])], integers=False)
    assert "not SALICON .mat files" in problem([np.array([[10, 10]])], format="osie")
    assert salicon_mat_problem(None) == "the dataset has none"
