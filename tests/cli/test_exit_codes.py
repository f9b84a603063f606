"""One exit-code rule for every command: 2 for a usage error, 1 for a failure or damage.

A usage error is something the user typed: a path that is not an output, a bad option, an
unknown ``--storage-option`` key. Each is one ``Error:`` line on stderr, never a traceback.
"""

from __future__ import annotations

import shutil

import pytest

from saldata.errors import ConfigError
from saldata.storage.location import as_out, parse_storage_options
from tests.helpers import run_cli

READERS = {
    "status": lambda out: ["status", out],
    "verify": lambda out: ["verify", out],
    "stats": lambda out: ["stats", out],
    "catalog show": lambda out: ["catalog", "show", out],
    "catalog query": lambda out: ["catalog", "query", out, "SELECT 1"],
    "evaluate": lambda out: ["evaluate", out],
    "show": lambda out: ["show", out, "COCO_x", "-o", "/tmp/x.png"],
    "export": lambda out: ["export", out, "/tmp/saldata-never-written", "--format", "pysaliency"],
}


def _one_error_line(proc) -> str:
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stderr[-2000:]
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), proc.stderr
    return lines[0]


@pytest.mark.parametrize("command", READERS)
def test_a_path_that_is_not_an_output_is_a_usage_error(command, tmp_path):
    mistyped = tmp_path / "rnus" / "demo"
    proc = run_cli(READERS[command](mistyped), timeout=120)
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    line = _one_error_line(proc)
    assert str(mistyped) in line and "a saldata extraction output?" in line, line


@pytest.mark.parametrize("command", ["status", "verify", "catalog show"])
def test_a_misspelled_storage_option_key_is_a_usage_error_listing_the_known_ones(command):
    # endpoint-url for endpoint_url: it used to reach the client and come back as "the store
    # cannot be reached (AioSession.__init__() got an unexpected keyword argument ...)", exit 1.
    args = [*READERS[command]("s3://bucket/out"), "--storage-option", "endpoint-url=http://127.0.0.1:9"]
    proc = run_cli(args, timeout=120)
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    line = _one_error_line(proc)
    assert "--storage-option endpoint-url is not an option of s3://" in line, line
    assert "known: " in line and "endpoint_url" in line and "client_kwargs" in line and "profile" in line, line
    assert "AioSession" not in line and "cannot be reached" not in line, line


@pytest.mark.parametrize("command", ["status", "verify"])
def test_a_storage_option_that_is_not_a_pair_is_a_usage_error(command):
    proc = run_cli([*READERS[command]("s3://bucket/out"), "--storage-option", "endpoint_url"], timeout=120)
    assert proc.returncode == 2 and "is not KEY=VALUE" in _one_error_line(proc), proc.stderr


def test_known_storage_option_keys_pass_and_nested_ones_are_not_second_guessed():
    options = parse_storage_options(
        ["endpoint_url=http://h:9000", "anon=true", "client_kwargs.region_name=eu-west-1", "profile=me"]
    )
    assert as_out("s3://bucket/out", options).options == options
    with pytest.raises(ConfigError, match=r"^--storage-option endpoint-url is not an option of s3://"):
        as_out("s3://bucket/out", {"endpoint-url": "x"})


@pytest.mark.slow
def test_damage_is_a_failure_not_a_usage_error(demo_output_ray_free, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(demo_output_ray_free, out)
    (out / "features.zarr" / "zarr.json").write_text("{not json")
    for command in ("status", "stats", "catalog show", "evaluate"):
        proc = run_cli(READERS[command](out), timeout=120)
        assert proc.returncode == 1, (command, proc.returncode, proc.stderr)
        assert str(out) in _one_error_line(proc), (command, proc.stderr)
