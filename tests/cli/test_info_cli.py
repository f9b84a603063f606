"""``saldata info OUT`` and ``saldata --version``: the lines people read, the JSON scripts read,
and the one-line errors on a path that is not an output or is damaged."""

from __future__ import annotations

import json
import shutil

import pytest
from typer.testing import CliRunner

import saldata
from saldata.cli.main import app
from saldata.report.info import describe

pytestmark = pytest.mark.filterwarnings("ignore:.*nanobind.*")


def invoke(*args):
    result = CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "200"})
    return result.exit_code, result.output


def test_info_prints_the_overview_and_json_for_scripts(demo_output_ray_free, tmp_path):
    code, text = invoke("info", demo_output_ray_free)
    assert code == 0, text
    lines = text.splitlines()
    assert lines[0] == str(demo_output_ray_free)
    info = describe(demo_output_ray_free)
    expected = [
        "  model:      tiny-random (revision unknown)",
        f"              at {info['model']['path']}",
        f"  prompt:     describe: {info['prompt']['text']}",
        "  data:       demo val (6 images)",
        "  images:     6 at 640x480   done 6   failed 0   pending 0   (2 of 2 shards committed)",
        "  layers:     0, 1 of 2 decoder layers",
        f"  heads:      all ({info['heads']['stored']} heads stored)",
        "  schema:     store 6, catalog 5",
        "  evaluate:   not run",
        "  objects:    not added",
    ]
    for line in expected:
        assert line in lines, (line, text)
    code, text = invoke("info", demo_output_ray_free, "--format", "json")
    assert code == 0 and json.loads(text) == info

    code, text = invoke("info", tmp_path)
    assert code == 2 and "is " + str(tmp_path) + " a saldata extraction output?" in text
    assert len(text.strip().splitlines()) == 1 and "Traceback" not in text
    damaged = tmp_path / "damaged"
    shutil.copytree(demo_output_ray_free, damaged)
    (damaged / "features.zarr" / "zarr.json").write_text("{}")
    code, text = invoke("info", damaged)
    assert code == 1 and "zarr.json was changed after the store was created" in text
    assert len(text.strip().splitlines()) == 1 and "Traceback" not in text

    code, text = invoke("--version")
    assert code == 0 and text == f"saldata {saldata.__version__}\n"
