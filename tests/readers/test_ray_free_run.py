"""The fast tier's demo output (tests/ray_free_run.py) is the CLI's, so tests on it speak for both."""

from __future__ import annotations

import json

import pytest
import zarr

from saldata.pipelines.resume import RUN_CONFIG_FILE
from saldata.pipelines.verify import verify_output
from tests.helpers import assert_same_output

# What a run writes (tests that ran before may have added theirs, e.g. `saldata stats` its stats/).
RUN_WRITES = {"catalog", "commits", "features.zarr", "journal", "run.json", "staging"}


@pytest.mark.slow
def test_ray_free_build_is_the_cli_output(demo_output_ray_free, demo_output_cli):
    # every array byte for byte, every catalog row (timings and absolute paths aside)
    assert_same_output(demo_output_ray_free, demo_output_cli)
    ours, cli = (
        zarr.open_group(out / "features.zarr", mode="r").attrs for out in (demo_output_ray_free, demo_output_cli)
    )
    assert {**ours, "created": None} == {**cli, "created": None}
    ours, cli = (json.loads((out / RUN_CONFIG_FILE).read_text()) for out in (demo_output_ray_free, demo_output_cli))
    assert {**ours, "out": None} == {**cli, "out": None}
    for out in (demo_output_ray_free, demo_output_cli):
        assert {p.name for p in out.iterdir()} >= RUN_WRITES
        assert verify_output(out).intact
