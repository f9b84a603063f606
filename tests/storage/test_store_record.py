"""The store record (OUT/commits/store.json): every metadata file of the store checked by verify,
saldata.open and a resume, and restored by a resume; on copies of the readers' demo output."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import zarr
from typer.testing import CliRunner

import saldata
from saldata.cli.main import app
from saldata.errors import ConfigError, StoreError
from saldata.pipelines.extract import plan_run
from saldata.pipelines.preflight import preflight
from saldata.pipelines.resume import already_complete, prepare_output
from saldata.pipelines.verify import verify_output
from saldata.storage.lock import output_lock
from saldata.storage.store_record import read_store_record, store_record_path
from saldata.storage.zarr_store import metadata_relpaths
from tests.ray_free_run import readers_demo_config

ROOT, HIDDEN = "features.zarr/zarr.json", "features.zarr/hidden/zarr.json"


def _edit(path, change) -> None:
    meta = json.loads(path.read_text())
    change(meta)
    path.write_text(json.dumps(meta, indent=2))


def _swap_transpose(array_meta: dict) -> None:
    """The token axis' place in the chunk encoding moved: every value decodes, into the wrong cell."""
    transpose = array_meta["codecs"][0]["configuration"]["codecs"][0]["configuration"]
    transpose["order"] = [*transpose["order"][:-2], transpose["order"][-1], transpose["order"][-2]]


# Each edit leaves valid JSON that any Zarr reader accepts: the maps it serves are rearranged or mislabelled.
TAMPERING = {
    "array codec order": (HIDDEN, lambda out: _edit(out / HIDDEN, _swap_transpose)),
    "consolidated metadata": (
        ROOT,
        lambda out: _edit(out / ROOT, lambda m: _swap_transpose(m["consolidated_metadata"]["metadata"]["hidden"])),
    ),
    "root layers attribute": (
        ROOT,
        lambda out: _edit(out / ROOT, lambda m: m["attributes"].update(layers=m["attributes"]["layers"][::-1])),
    ),
    "array zarr.json deleted": (HIDDEN, lambda out: (out / HIDDEN).unlink()),
}


@pytest.fixture
def copy(demo_output_ray_free, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(demo_output_ray_free, out)
    return out


def test_the_store_record_keeps_every_metadata_file_as_created(demo_output_ray_free):
    record = read_store_record(demo_output_ray_free)
    assert sorted(record.files) == sorted(f"features.zarr/{rel}" for rel in metadata_relpaths())
    for rel, text in record.texts.items():
        assert (demo_output_ray_free / rel).read_text() == text, rel
    assert record.attributes()["layers"] == [0, 1]


@pytest.mark.parametrize("tampering", TAMPERING)
def test_edited_or_deleted_metadata_is_named_by_verify_open_and_resume_and_restored(
    copy, demo_output_ray_free, tampering
):
    rel, tamper = TAMPERING[tampering]
    tamper(copy)
    named = str(copy / rel)

    result = CliRunner().invoke(app, ["verify", str(copy)])
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 1 and len(lines) == 1 and lines[0].startswith("Error: "), result.output
    assert named in lines[0] and "rerun the same saldata extract command" in lines[0]
    with pytest.raises(StoreError) as raised:
        saldata.open(copy)
    assert named in str(raised.value) and "\n" not in str(raised.value)
    config = readers_demo_config(copy)
    assert not already_complete(config), "a rerun would say Nothing to do"

    with output_lock(copy, "test"):  # the rerun's own step: restored, not refused as other settings
        state = prepare_output(plan_run(config), overwrite=False)
    assert state.restored == [rel] and not state.damaged
    assert (copy / rel).read_bytes() == (demo_output_ray_free / rel).read_bytes()
    assert verify_output(copy).intact and already_complete(config)
    np.testing.assert_array_equal(
        saldata.open(copy).hidden(0, layer=1), saldata.open(demo_output_ray_free).hidden(0, layer=1)
    )


def test_a_missing_store_record_is_named_by_verify_open_and_resume(copy):
    store_record_path(copy).unlink()
    for attempt in (
        lambda: verify_output(copy),
        lambda: saldata.open(copy),
        lambda: preflight(readers_demo_config(copy), overwrite=False),
    ):
        with pytest.raises(StoreError, match="commits/store.json is missing.*re-extract with --overwrite"):
            attempt()


def test_a_damaged_store_record_is_refused_and_never_used_to_rewrite_metadata(copy):
    path = store_record_path(copy)
    record = json.loads(path.read_text())
    root = json.loads(record["texts"][ROOT])
    root["attributes"]["layers"] = [1, 0]  # the record's copy edited, its checksum left as it was
    record["texts"][ROOT] = json.dumps(root, indent=2)
    path.write_text(json.dumps(record))
    TAMPERING["root layers attribute"][1](copy)
    tampered = (copy / ROOT).read_bytes()
    for attempt in (lambda: verify_output(copy), lambda: saldata.open(copy)):
        with pytest.raises(StoreError, match="store.json is unreadable .*does not match its own checksum"):
            attempt()
    with pytest.raises(StoreError, match="store.json is unreadable"), output_lock(copy, "test"):
        prepare_output(plan_run(readers_demo_config(copy)), overwrite=False)
    assert (copy / ROOT).read_bytes() == tampered


def test_an_output_of_store_schema_5_verifies_its_shards_and_is_refused_on_resume(copy):
    """What saldata wrote before the store record: verify checks its shards and says the metadata is
    not checked; saldata.open reads it; a resume is refused, saying what changed and what to do."""
    store_record_path(copy).unlink()
    zarr.open_group(copy / "features.zarr", mode="r+").attrs["schema_version"] = 5
    report = verify_output(copy)
    assert report.intact and report.checked == 2 and not report.metadata_checked
    result = CliRunner().invoke(app, ["verify", str(copy)])
    assert result.exit_code == 0 and "metadata not checked" in result.output, result.output
    assert saldata.open(copy).images.num_rows > 0
    with pytest.raises(ConfigError) as refused:
        preflight(readers_demo_config(copy), overwrite=False)
    message = str(refused.value)
    assert "older saldata (store schema_version 5; this one writes 7: the store record" in message
    assert "--overwrite" in message and "\n" not in message
