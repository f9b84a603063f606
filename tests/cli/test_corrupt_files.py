"""Every corrupt file an output can hold gives one line naming it, from every command; never a traceback."""

from __future__ import annotations

import json
import shutil

import pytest

import saldata
from saldata.errors import StoreError
from tests.helpers import run_cli

pytestmark = pytest.mark.slow  # reference_run is a full CLI extraction


def _truncate(path):
    path.write_bytes(path.read_bytes()[: max(1, path.stat().st_size // 2)])


CORRUPTIONS = {
    "truncated images parquet": lambda out: _truncate(out / "catalog" / "images" / "shard-00002.parquet"),
    "truncated store zarr.json": lambda out: _truncate(out / "features.zarr" / "zarr.json"),
    "truncated array zarr.json": lambda out: _truncate(out / "features.zarr" / "hidden" / "zarr.json"),
    "garbage commit record": lambda out: (out / "commits" / "shard-00001.json").write_text("{not json"),
    "lock with a string pid": lambda out: (out / ".saldata.lock").write_text(json.dumps({"pid": "abc"})),
    "lock holding a list": lambda out: (out / ".saldata.lock").write_text("[1, 2]"),
    "binary journal": lambda out: next((out / "journal").glob("*.jsonl")).write_bytes(b"\xff\xfe\x00garbage\n{]"),
    "journal of wrong types": lambda out: next((out / "journal").glob("*.jsonl")).write_text(
        '{"event": "start", "time": "x"}\n{"event": "commit", "time": 1, "done": "many"}\n[]\n'
    ),
}
COMMANDS = {
    "status": lambda out: ["status", out],
    "verify": lambda out: ["verify", out],
    "catalog show": lambda out: ["catalog", "show", out],
    "catalog query": lambda out: ["catalog", "query", out, "SELECT count(*) AS n FROM images JOIN tokens USING (idx)"],
}


@pytest.fixture(scope="module")
def damaged_outputs(tmp_path_factory, reference_run):
    outputs = {}
    for name, corrupt in CORRUPTIONS.items():
        out = tmp_path_factory.mktemp("corrupt") / "out"
        shutil.copytree(reference_run, out)
        corrupt(out)
        outputs[name] = out
    return outputs


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("corruption", CORRUPTIONS)
def test_a_corrupt_file_gives_one_line_and_no_traceback(damaged_outputs, corruption, command):
    out = damaged_outputs[corruption]
    proc = run_cli(COMMANDS[command](out), timeout=120)
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr[-2000:]
    assert not any(line.startswith("Error:") for line in proc.stdout.splitlines()), proc.stdout
    errors = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(errors) <= 1, proc.stderr
    if errors:
        assert errors[0].startswith("Error: ") and str(out) in errors[0], errors[0]
    if proc.returncode != 0 and not errors:  # verify's answer: the damage, named, on stdout
        assert command == "verify" and proc.returncode == 1 and "damaged" in proc.stdout, proc.stdout


@pytest.mark.parametrize("corruption", CORRUPTIONS)
def test_saldata_open_raises_one_line_or_reads_what_is_committed(damaged_outputs, corruption):
    out = damaged_outputs[corruption]
    try:
        output = saldata.open(out)
        output.images, output.tokens, output.words  # noqa: B018 - reading is the test
    except StoreError as exc:
        assert "\n" not in str(exc) and str(out) in str(exc)


def test_verify_names_each_damaged_file(damaged_outputs):
    proc = run_cli(["verify", damaged_outputs["truncated images parquet"]])
    assert proc.returncode == 1
    assert "shard 2: catalog/images/shard-00002.parquet" in proc.stdout
    proc = run_cli(["verify", damaged_outputs["garbage commit record"]])
    assert proc.returncode == 1 and "shard 1: commit record" in proc.stdout and "unreadable" in proc.stdout
