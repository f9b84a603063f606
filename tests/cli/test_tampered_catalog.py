"""A committed catalog file changed, deleted or renamed after its commit: every command that reads
the catalog refuses with one line naming the file and ``saldata verify``, exit 1, no traceback.

The same line on a disk and in an object store (a local S3 server). The library's side is
tests/storage/test_catalog_records.py.
"""

from __future__ import annotations

import shutil

import pytest

from tests.helpers import TAMPERED, rewrite_catalog_file, run_cli

SHOWN = "COCO_val2014_000000000003"  # idx 2, in shard 0 (the tampered one)

COMMANDS = {
    "catalog query": lambda out, tmp: ["catalog", "query", out, "SELECT count(*) FROM images"],
    "catalog show": lambda out, tmp: ["catalog", "show", out],
    "export": lambda out, tmp: ["export", out, tmp / "exported", "--format", "language-att"],
    "evaluate": lambda out, tmp: ["evaluate", out],
    "show": lambda out, tmp: ["show", out, SHOWN, "-o", tmp / "figure.png"],
    "stats": lambda out, tmp: ["stats", out],
    "status": lambda out, tmp: ["status", out],
}


@pytest.fixture(scope="module")
def tampered(demo_output_ray_free, tmp_path_factory):
    """One copy of the readers' demo whose shard-0 images file was rewritten with the same schema."""
    out = tmp_path_factory.mktemp("tampered") / "out"
    shutil.copytree(demo_output_ray_free, out)
    rewrite_catalog_file(out / TAMPERED, "images")
    return out


def refusal(proc, out) -> str:
    """The one line a refused command printed; fails unless it is exactly that (exit 1, no traceback)."""
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr[-3000:]
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 1 and len(lines) == 1, (proc.returncode, proc.stderr, proc.stdout)
    assert lines[0].startswith("Error: ") and "saldata verify" in lines[0], lines[0]
    return lines[0].replace(str(out), "OUT")


@pytest.mark.parametrize("command", COMMANDS)
def test_a_rewritten_images_file_is_refused_by_every_command(tampered, tmp_path, command):
    proc = run_cli(COMMANDS[command](tampered, tmp_path), timeout=120)
    line = refusal(proc, tampered)
    assert line == (
        f"Error: OUT/{TAMPERED} does not match its commit record (commits/shard-00000.json): it changed after its "
        "shard was committed; run saldata verify on the output, then rerun the extraction to redo the damaged shard."
    )
    assert not (tmp_path / "exported").exists() and not (tmp_path / "figure.png").exists()


MOVES = {
    "deleted": lambda path: path.unlink(),
    "renamed": lambda path: path.rename(path.with_name("shard-00007.parquet")),
    "catalog folder deleted": lambda path: shutil.rmtree(path.parents[1]),  # not "is OUT an output?"
}
MISSING = f"Error: OUT/{TAMPERED} is missing although its shard is committed; run saldata verify on the output."


@pytest.mark.parametrize("move", MOVES)
@pytest.mark.parametrize("command", ["catalog query", "catalog show", "show"])
def test_a_deleted_or_renamed_file_is_the_same_one_line(demo_output_ray_free, tmp_path, move, command):
    out = tmp_path / "out"
    shutil.copytree(demo_output_ray_free, out)
    MOVES[move](out / TAMPERED)
    assert refusal(run_cli(COMMANDS[command](out, tmp_path), timeout=120), out) == MISSING


@pytest.fixture
def s3_copy(demo_output_ray_free, s3_out):
    import s3fs

    s3fs.S3FileSystem().put(f"{demo_output_ray_free}/", s3_out.removeprefix("s3://"), recursive=True)
    return s3_out


@pytest.mark.parametrize("command", ["catalog query", "catalog show"])
def test_an_object_store_gives_the_same_lines(demo_output_ray_free, s3_copy, tmp_path, command):
    import s3fs

    fs = s3fs.S3FileSystem()
    local = tmp_path / "out"
    shutil.copytree(demo_output_ray_free, local)
    rewrite_catalog_file(local / TAMPERED, "images")
    fs.put_file(str(local / TAMPERED), f"{s3_copy.removeprefix('s3://')}/{TAMPERED}")
    lines = {refusal(run_cli(COMMANDS[command](out, tmp_path), timeout=120), out) for out in (local, s3_copy)}
    assert len(lines) == 1 and "does not match its commit record" in lines.pop()
    (local / TAMPERED).unlink()
    fs.rm_file(f"{s3_copy.removeprefix('s3://')}/{TAMPERED}")
    lines = {refusal(run_cli(COMMANDS[command](out, tmp_path), timeout=120), out) for out in (local, s3_copy)}
    assert lines == {MISSING}
