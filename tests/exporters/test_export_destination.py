"""DEST: a killed export resumes without rewriting finished files, a changed output is exported
again only where it changed, splits of two outputs share a folder, and anything that would mix
two exports is refused with one line."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from saldata.cli.main import app
from tests.exporters.conftest import SALICON_STEMS, SALICON_TRAIN_STEMS

ROOT = Path(__file__).resolve().parents[2]
FORMATS = ("language-att", "pysaliency")


def invoke(*args):
    return CliRunner().invoke(app, ["export", *map(str, args)])


def export(out, dest, format: str, *args) -> str:
    result = invoke(out, dest, "--format", format, *args)
    assert result.exit_code == 0, result.output
    return result.output


def tree(dest: Path) -> dict[str, bytes]:
    """Every file under DEST (symlinks by target), by relative path."""
    files = {}
    for path in sorted(dest.rglob("*")):
        if path.is_symlink():
            files[str(path.relative_to(dest))] = os.readlink(path).encode()
        elif path.is_file():
            files[str(path.relative_to(dest))] = path.read_bytes()
    return files


WRITTEN = (".npy", ".png")  # the per-image files an export writes itself (pysaliency's stimuli may be links)


def mtimes(dest: Path) -> dict[str, int]:
    files = (p for p in dest.rglob("*") if p.suffix in WRITTEN and not p.is_symlink())
    return {str(p.relative_to(dest)): p.stat().st_mtime_ns for p in files}


def per_image(files: dict) -> dict:
    """The exported files themselves, without DEST's own records (which name the output's path)."""
    return {k: v for k, v in files.items() if not k.startswith((".saldata-export", "saldata-export.json"))}


@pytest.mark.parametrize("format", FORMATS)
def test_a_killed_export_resumes_without_rewriting_finished_files(demo_output_ray_free, tmp_path, format):
    reference = tmp_path / "reference"
    export(demo_output_ray_free, reference, format)
    dest = tmp_path / "dest"
    cmd = [sys.executable, "-m", "saldata.cli.main", "export", str(demo_output_ray_free), str(dest), "--format", format]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "SALDATA_FAULT": "export-file@3=kill"}
    killed = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    before = mtimes(dest)
    assert 4 <= len(before) < len(mtimes(reference))  # whole files so far
    assert not (dest / "stimuli.json").exists() and not (dest / "salicon_valid.json").exists()  # written last
    first = Path(sorted(before)[0])
    aside = dest / first.parent / f".{first.name}.12345.tmp"  # what a kill in the middle of a write leaves
    aside.write_bytes(b"half a file")

    env.pop("SALDATA_FAULT")
    rerun = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0 and rerun.stderr == "", rerun.stderr[-2000:]
    assert tree(dest) == tree(reference)  # the same export, and nothing left aside
    after = mtimes(dest)
    assert {name: after[name] for name in before} == before  # finished files were not written again

    again = export(demo_output_ray_free, dest, format)  # a finished export is left as it is
    assert "(0 written now, 6 already there)" in again and mtimes(dest) == after
    (dest / first).unlink()  # and a file deleted since is written again
    assert "(1 written now, 5 already there)" in export(demo_output_ray_free, dest, format)
    assert tree(dest) == tree(reference)


def test_shards_committed_later_are_added_and_a_recommitted_shard_is_redone(demo_output_ray_free, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(demo_output_ray_free, out)
    record = out / "commits" / "shard-00001.json"
    held = tmp_path / "shard-00001.json"
    record.rename(held)  # shard 1 not committed yet: its catalog rows are not seen
    dest = tmp_path / "dest"
    assert "4 images (4 written now" in export(out, dest, "language-att")
    first = mtimes(dest)
    held.rename(record)  # now it is
    assert "6 images (2 written now, 4 already there)" in export(out, dest, "language-att")
    second = mtimes(dest)
    assert {k: second[k] for k in first} == first
    reference = tmp_path / "reference"
    export(out, reference, "language-att")
    assert per_image(tree(dest)) == per_image(tree(reference))

    # A recommit of shard 0 (as --retry-failed makes) changes its record's file digests: its files are redone.
    zero = out / "commits" / "shard-00000.json"
    data = json.loads(zero.read_text())
    # a store file's: a catalog file other than its record says is refused as damage, before any export
    some = next(rel for rel, digest in data["files"].items() if digest and rel.startswith("features.zarr/"))
    data["files"][some]["crc32c"] = "00000000"
    zero.write_text(json.dumps(data))
    assert "6 images (4 written now, 2 already there)" in export(out, dest, "language-att")
    third = mtimes(dest)
    changed = {k for k in third if third[k] != second[k]}
    assert changed == {k for k in first}  # shard 0's images, and only they


@pytest.mark.slow  # a second SALICON build (train), ~20 s: the fast tier stays under 3 minutes
def test_two_outputs_one_split_each_share_a_dest(salicon_output, salicon_train_output, tmp_path):
    dest = tmp_path / "trainer"
    export(salicon_train_output, dest, "language-att")
    text = export(salicon_output, dest, "language-att")
    assert "splits train, val" in text
    valid = json.loads((dest / "salicon_valid.json").read_text())
    captions = json.loads((dest / "caption.json").read_text())
    assert sorted(valid) == sorted(captions) == ["train", "val"]
    assert sorted(valid["train"]) == sorted(f"{s}.npy" for s in SALICON_TRAIN_STEMS)
    assert set(SALICON_STEMS) < set(captions["val"])
    # The printed --max_len covers both splits: the longest valid image of either.
    longest = max(
        len(c["raw_token"]) for split in captions for k, c in captions[split].items() if valid[split][f"{k}.npy"]
    )
    assert f"--max_len {longest}" in text
    # A rerun of the first keeps the second's split in the JSON files.
    export(salicon_train_output, dest, "language-att")
    assert sorted(json.loads((dest / "salicon_valid.json").read_text())) == ["train", "val"]


def snapshot(path: Path) -> dict:
    return {str(p): (p.stat().st_mtime_ns, p.stat().st_size) for p in path.rglob("*")} if path.exists() else {}


def refused(out, dest, *args) -> str:
    before = snapshot(dest), snapshot(out)
    result = invoke(out, dest, *args)
    assert result.exit_code == 2, result.output
    assert (snapshot(dest), snapshot(out)) == before, "a refused export must write nothing"
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    return lines[0]


def test_what_would_mix_two_exports_is_refused(demo_output_ray_free, late_eos_output, salicon_output, tmp_path):
    out = demo_output_ray_free
    dest = tmp_path / "dest"
    export(out, dest, "language-att")
    assert "--layer 1 (this run: --layer 0)" in refused(out, dest, "--format", "language-att", "--layer", "0")
    assert "--format language-att (this run: --format pysaliency)" in refused(out, dest, "--format", "pysaliency")
    assert "an extraction of another model" in refused(late_eos_output, dest, "--format", "language-att")
    assert "split val from another extraction" in refused(salicon_output, dest, "--format", "language-att")
    maps = tmp_path / "maps"
    export(out, maps, "pysaliency")
    assert "--grid highres (this run: --grid base)" in refused(out, maps, "--format", "pysaliency", "--grid", "base")


def test_dest_must_be_a_folder_of_its_own_outside_out(demo_output_ray_free, tmp_path):
    out = demo_output_ray_free
    for inside in (out, out / "exports", out / "catalog" / ".." / "x"):
        assert "write the result elsewhere" in refused(out, inside, "--format", "language-att")
    link = tmp_path / "link"
    link.symlink_to(out / "catalog")
    assert "is inside" in refused(out, link / "x", "--format", "pysaliency")
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep")
    assert "holds no saldata export" in refused(out, other, "--format", "language-att")
    (tmp_path / "file").write_text("x")
    assert "is a file" in refused(out, tmp_path / "file", "--format", "language-att")


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--format", "language-att", "--grid", "base"], "--grid does not apply to --format language-att"),
        (["--format", "language-att", "--unit", "description"], "--unit does not apply to --format language-att"),
        (["--format", "pysaliency", "--annotations"], "--annotations does not apply to --format pysaliency"),
        (["--format", "pysaliency", "--grid", "fine"], "--grid must be one of highres, base, not 'fine'"),
        (["--format", "pysaliency", "--unit", "word"], "--unit must be one of description, not 'word'"),
        (
            ["--format", "pysaliency", "--layer", "7"],
            "layer 7 is out of range: the model has 2 decoder layers (0..1, or -1..-2 from the end); this output holds layers 0, 1",
        ),
        (["--format", "language-att", "--split", "train"], "--split train: this output has no committed image"),
    ],
)
def test_bad_settings_are_one_line(demo_output_ray_free, tmp_path, args, says):
    assert says in refused(demo_output_ray_free, tmp_path / "dest", *args)


def test_format_choices_are_the_registry():
    from saldata.cli.export import Format
    from saldata.exporters import EXPORTERS

    assert [f.value for f in Format] == list(EXPORTERS)
