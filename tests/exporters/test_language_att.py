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
from saldata.datasets.ground_truth import salicon_fixations
from saldata.exporters.annotations import fixation_file_plan, salicon_mat_problem, trainer_mat
from saldata.exporters.language_att import token_strings, trainer_rows
from tests.datasets.formats import write_salicon_gaze
from tests.exporters.conftest import (
    SALICON_OFF_FRAME,
    SALICON_OFF_FRAME_DROPPED,
    SALICON_STEMS,
    SALICON_SUBJECTS,
    SALICON_WITHOUT_TRUTH,
)
from tests.exporters.trainer_loader import (
    TRAINER_MAP_SIZE,
    SaliconLoader,
    annotation,
    batch,
    fixation_map,
    trainer_items,
)

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


def check_rows(
    dest, out, split: str, settings: dict, layer: int | None = None, require_eos: bool = False
) -> list[dict]:
    """Every item the loader serves is the store's rows 1.. of its image at ``layer``; the items."""
    output = saldata.open(out)
    group = output.group
    position = output.layers.position(layer)
    rows = {r["image_id"]: r for r in output.images.to_pylist()}
    items = trainer_items(dest, split, settings["max_len"], hidden_size=settings["input_dim"])
    served = {i for i, r in rows.items() if r["gt_status"] == "ok" and stop(r) > 1}
    assert {i["id"] for i in items} == {i for i in served if rows[i]["ended_with_eos"] or not require_eos}
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


def test_caption_says_how_each_image_ended_and_require_eos_marks_the_cut_ones(late_eos_output, tmp_path):
    """An image that ran to --max-new-tokens has no EOS row: its last row is its last generated token,
    a real word. caption.json says which images those are, the export counts them, and --require-eos
    marks them false, so the trainer's language_parsing never labels a cut word EOS."""
    output = saldata.open(late_eos_output)
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(output.attrs["model_path"])
    rows = output.images.to_pylist()
    cut = [r for r in rows if not r["ended_with_eos"]]
    ended = [r for r in rows if r["ended_with_eos"] and stop(r) > 1]
    assert cut and ended, "the fixture must give images that ran out and images that ended with EOS, with rows"
    dest = tmp_path / "all"
    settings = export(late_eos_output, dest)
    assert f"{len(cut)} of {len(rows)} images did not end with EOS" in settings["output"]
    assert "last row is a real word, not EOS" in settings["output"]
    captions = json.loads((dest / "caption.json").read_text())["val"]
    valid = json.loads((dest / "salicon_valid.json").read_text())["val"]
    for row in rows:
        assert captions[row["image_id"]]["ended_with_eos"] is row["ended_with_eos"]
    model = json.loads((Path(output.attrs["model_path"]) / "generation_config.json").read_text())
    for row in cut:  # valid without --require-eos; the last row is the last generated token, not EOS
        n, idx = row["n_tokens"], row["idx"]
        raw = captions[row["image_id"]]["raw_token"]
        assert valid[f"{row['image_id']}.npy"] is True and len(raw) == n - 1
        last = int(output.group["token_ids"][idx, n - 1])
        assert last != model["eos_token_id"] and raw[-1] == token_strings(tokenizer, [last])[0]
    strict = tmp_path / "strict"
    strict_settings = export(late_eos_output, strict, "--require-eos")
    assert f"{len(cut)} of {len(rows)} images did not end with EOS" in strict_settings["output"]
    assert "--require-eos marked them false" in strict_settings["output"]
    strict_valid = json.loads((strict / "salicon_valid.json").read_text())["val"]
    assert strict_valid == {f"{r['image_id']}.npy": bool(r["ended_with_eos"] and stop(r) > 1) for r in rows}
    items = check_rows(strict, late_eos_output, "val", strict_settings, require_eos=True)
    assert sorted(i["id"] for i in items) == sorted(r["image_id"] for r in ended)
    assert strict_settings["max_len"] == max(stop(r) - 1 for r in ended)  # from the valid images only
    eos = token_strings(tokenizer, [model["eos_token_id"]])[0]
    strict_captions = json.loads((strict / "caption.json").read_text())["val"]
    assert all(strict_captions[r["image_id"]]["raw_token"][-1] == eos for r in ended)
    # DEST is bound to the choice: a rerun with the other one is refused, naming it.
    refused = CliRunner().invoke(
        app, ["export", str(late_eos_output), str(dest), "--format", "language-att", "--require-eos"]
    )
    assert refused.exit_code == 2 and "--require-eos" in refused.output, refused.output
    refused = CliRunner().invoke(app, ["export", str(late_eos_output), str(strict), "--format", "language-att"])
    assert refused.exit_code == 2 and "--require-eos" in refused.output, refused.output


def test_require_eos_is_refused_by_other_formats(demo_output_ray_free, tmp_path):
    args = ["export", str(demo_output_ray_free), str(tmp_path / "maps"), "--format", "pysaliency", "--require-eos"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1, result.output
    assert "--require-eos does not apply to --format pysaliency" in result.output
    assert not (tmp_path / "maps").exists()


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
    # the image without ground truth is false
    assert sorted(i["id"] for i in items) == sorted([*SALICON_STEMS, *SALICON_OFF_FRAME])
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


def in_frame(subject: np.ndarray, width: int = 640, height: int = 480) -> np.ndarray:
    """A subject's 1-based points that lie in the frame (0-based x - 1 in [0, width), likewise y)."""
    points = np.asarray(subject, np.float64).reshape(-1, 2)
    keep = (points[:, 0] >= 1) & (points[:, 0] < width + 1) & (points[:, 1] >= 1) & (points[:, 1] < height + 1)
    return points[keep]


def test_off_frame_fixation_files_are_written_in_bounds(salicon_output, salicon_root, tmp_path):
    """A .mat the trainer's loader cannot read as it is (a point off its map) is written anew: the
    same variables and gaze structure, the points outside the frame dropped and counted; the
    other files stay symlinks."""
    dest = tmp_path / "trainer"
    settings = export(salicon_output, dest, "--annotations")
    text = settings["output"]
    assert f"{len(SALICON_OFF_FRAME)} fixation files written in bounds, not linked" in text, text
    assert "1 with fixations outside their resolution" in text  # uint16, as SALICON stores them
    assert "1 with resolution or fixations not stored as integers" in text  # the negative one: float64
    assert f"{SALICON_OFF_FRAME_DROPPED} fixation points outside the frame dropped" in text, text
    for stem in SALICON_STEMS:
        assert (dest / "fixation" / "val" / f"{stem}.mat").is_symlink()
    for stem, subjects in SALICON_OFF_FRAME.items():
        original = salicon_root / "fixations" / "val" / f"{stem}.mat"
        written = dest / "fixation" / "val" / f"{stem}.mat"
        assert written.is_file() and not written.is_symlink()
        with pytest.raises(IndexError):  # the defect: the loader on the original file
            fixation_map(original)
        # saldata's own SALICON reader: every subject, in order, with exactly its points in the frame
        points = salicon_fixations(str(written))
        assert points.frame == (640, 480)
        expected = [in_frame(s) - 1 for s in subjects]
        np.testing.assert_array_equal(points.xy, np.concatenate(expected))
        np.testing.assert_array_equal(points.subject, np.repeat(np.arange(len(subjects)), [len(e) for e in expected]))
        # the same variables and gaze structure as the original; only the fixations changed
        before, after = scipy.io.loadmat(original), scipy.io.loadmat(written)
        public = sorted(k for k in before if not k.startswith("__"))
        assert sorted(k for k in after if not k.startswith("__")) == public
        assert after["gaze"].shape == before["gaze"].shape and after["gaze"].dtype.names == before["gaze"].dtype.names
        assert after["resolution"].dtype == np.uint16 and after["resolution"].tolist() == [[480, 640]]
        assert str(after["image"][0]) == stem
        for s in range(len(subjects)):
            for field in ("location", "timestamp"):
                np.testing.assert_array_equal(after["gaze"][s, 0][field], before["gaze"][s, 0][field])
            assert after["gaze"][s, 0]["fixations"].dtype == np.uint16
        # the trainer's reader: no error, each in-frame point of a subject with two or more marked
        marked = {tuple(map(int, p)) for p in np.argwhere(fixation_map(written))}
        assert marked == {(int(y) - 1, int(x) - 1) for s in subjects if len(in_frame(s)) > 1 for x, y in in_frame(s)}


def test_the_trainer_trains_on_the_export(salicon_output, tmp_path):
    """The trainer's SALICON dataset reads every valid image of the export (fixations off the frame
    included) and one training step of the language-only model runs on all of them at once."""
    import torch
    from torch.utils.data import DataLoader

    from tests.exporters.trainer_model import LanguageOnlyModel, trainer_loss

    dest = tmp_path / "trainer"
    settings = export(salicon_output, dest, "--annotations")
    height, width = TRAINER_MAP_SIZE
    data = SaliconLoader(dest, dest, height, width, "val", settings["max_len"], hidden_size=settings["input_dim"])
    assert sorted(i[:-4] for i in data.img_pool) == sorted([*SALICON_STEMS, *SALICON_OFF_FRAME])
    hidden, base, patch, valid_len, saliency, fixations, image, ids = next(
        iter(DataLoader(data, batch_size=len(data), shuffle=False))
    )
    n, max_len, dim, heads = len(data), settings["max_len"], settings["input_dim"], settings["input_head"]
    assert hidden.shape == (n, max_len, dim) and hidden.dtype == torch.float32
    assert base.shape == (n, max_len, heads, 24, 24) and patch.shape == (n, max_len, heads, 36, 48)
    assert saliency.shape == fixations.shape == (n, height, width) and image.shape == (n, 3, height, width)
    assert saliency.dtype == torch.float32 and fixations.dtype == torch.float64
    assert (fixations.flatten(1).sum(1) > 0).all(), "every image has fixations on its map"
    peaks = torch.amax(patch[:, 0], dim=(2, 3))  # normalised to peak 1 (in float16, as the loader divides)
    torch.testing.assert_close(peaks, torch.ones(n, heads), atol=1e-3, rtol=0)
    torch.manual_seed(0)
    model = LanguageOnlyModel(dim, heads, max_len, tuple(patch.shape[-2:]), (height, width)).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4, betas=(0.9, 0.95))
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    loss = trainer_loss(model(hidden, patch, base, valid_len), fixations, saliency)
    assert torch.isfinite(loss), loss
    optimizer.zero_grad()
    loss.backward()
    assert model.language_attn.weight.grad.abs().sum() > 0  # the rows' weights shape the map
    optimizer.step()
    changed = [name for name, p in model.named_parameters() if not torch.equal(p, before[name])]
    assert "language_attn.weight" in changed and "sal_header.weight" in changed


def test_demo_fixation_files_are_written_for_the_trainer(demo_output_ray_free, demo_root, tmp_path):
    settings = export(demo_output_ray_free, tmp_path / "trainer", "--annotations")
    # The demo's .mat files store floats (which the loader cannot size a map with) and a point off each image.
    text = settings["output"]
    assert "6 fixation files written in bounds, not linked" in text
    assert "6 with resolution or fixations not stored as integers" in text
    assert "6 fixation points outside the frame dropped" in text
    assert len(list((tmp_path / "trainer" / "saliency_map" / "val").iterdir())) == 6
    for path in sorted((tmp_path / "trainer" / "fixation" / "val").iterdir()):
        assert not path.is_symlink()
        original = salicon_fixations(str(demo_root / "fixations" / "val" / path.name))
        width, height = original.frame
        keep = (original.xy >= 0).all(1) & (original.xy < (width, height)).all(1)
        np.testing.assert_array_equal(salicon_fixations(str(path)).xy, original.xy[keep])
        assert fixation_map(path).shape == (height, width)


def test_only_fixation_files_the_trainer_reads_are_linked(tmp_path):
    def source(points, size=(640, 480), format="salicon", integers=True):
        path = tmp_path / f"{len(list(tmp_path.iterdir()))}.mat"
        write_salicon_gaze(path, points, size)
        if not integers:  # as the demo writes them
            mat = scipy.io.loadmat(path)
            public = {k: v for k, v in mat.items() if not k.startswith("__")}
            scipy.io.savemat(path, {**public, "resolution": mat["resolution"].astype(np.float64)})
        return ImageSource("salicon", "val", path.stem, "x.jpg", None, str(path), format)

    def problem(*args, **kwargs):
        return salicon_mat_problem(source(*args, **kwargs))

    assert problem([np.array([[1, 1], [640, 480]]), np.array([[5, 6]])]) is None
    assert "outside their resolution" in problem([np.array([[641, 10]]), np.array([[5, 6]])])  # past the right edge
    assert "outside their resolution" in problem([np.array([[0, 10]]), np.array([[5, 6]])])  # wraps to the last column
    assert "not stored as integers" in problem([np.array([[10.5, 10]]), np.array([[5, 6]])])
    assert "not stored as integers" in problem([np.array([[10, 10]]), np.array([[5, 6]])], integers=False)
    assert "not SALICON .mat files" in problem([np.array([[10, 10]])], format="osie")
    assert salicon_mat_problem(None) == "the dataset has none"
    # Which of them a copy the loader reads can be written for: not those it cannot read at all.
    assert fixation_file_plan(source([np.array([[641, 10]]), np.array([[5, 6]])]))[0] == "write"
    assert fixation_file_plan(source([np.array([[10, 10]]), np.array([[5, 6]])], integers=False))[0] == "write"
    assert fixation_file_plan(source([np.array([[10, 10]])], format="osie"))[0] == "skip"
    # One subject: gaze reads back as a dict, which the loader indexes by subject number (KeyError).
    lone = source([np.array([[10, 10], [20, 20]])])
    with pytest.raises(KeyError):
        fixation_map(lone.fixations_path)
    assert fixation_file_plan(lone) == ("skip", "one subject only (the trainer's loader reads gaze as a list)")
    nan = source([np.array([[np.nan, 10], [20, 20]]), np.array([[5, 6]])])
    assert fixation_file_plan(nan) == ("skip", "fixation coordinates that are not finite (NaN or Inf)")


def test_a_written_file_without_resolution_takes_the_image_size(tmp_path):
    """SALICON's frame is its resolution; a file without one refers to the image itself (as saldata
    reads it), so the copy gets the image's size as its resolution, and drops points off the image."""
    path = tmp_path / "a.mat"
    write_salicon_gaze(path, [np.array([[10, 10], [300, 20]]), np.array([[5, 6], [7, 8]])], (640, 480))
    mat = scipy.io.loadmat(path)
    public = {k: v for k, v in mat.items() if not k.startswith("__") and k != "resolution"}
    scipy.io.savemat(path, public)
    source = ImageSource("salicon", "val", "a", "a.jpg", None, str(path), "salicon")
    assert fixation_file_plan(source)[0] == "write"
    data, dropped = trainer_mat(source, (200, 100))  # the image is 200x100: (300, 20) is off it
    written = tmp_path / "written.mat"
    written.write_bytes(data)
    assert dropped == 1 and scipy.io.loadmat(written)["resolution"].tolist() == [[100, 200]]
    np.testing.assert_array_equal(salicon_fixations(str(written)).xy, [[9, 9], [4, 5], [6, 7]])
    assert fixation_map(written).shape == (100, 200)


@pytest.mark.parametrize("size", [(320, 240), (23, 17), (700, 500)])  # (width, height): down, odd, up
def test_the_loaders_resize_is_bilinear_with_half_pixel_centres(size):
    """trainer_loader's stand-in for cv2.resize (INTER_LINEAR) against torch's bilinear resize with
    half-pixel centres and no antialiasing, which computes the same samples."""
    import torch
    import torch.nn.functional as F

    from tests.exporters.trainer_loader import cv2_resize_linear

    values = np.random.default_rng(0).random((480, 640))
    width, height = size
    expected = F.interpolate(torch.from_numpy(values)[None, None], (height, width), mode="bilinear")[0, 0].numpy()
    np.testing.assert_allclose(cv2_resize_linear(values, width, height), expected, rtol=0, atol=1e-12)
