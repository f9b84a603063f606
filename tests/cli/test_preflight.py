"""Mistakes caught before Ray starts: one line, exit code 2, and Ray never imported."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import replace

import pytest

from saldata.storage.lock import OutputLock
from tests.helpers import DEMO_ARGS

PROBE = """
import sys
from dataclasses import replace
from saldata.cli.main import app
try:
    app(sys.argv[1:], standalone_mode=True)
except SystemExit as exit:
    print(json.dumps({"code": exit.code, "ray": "ray" in sys.modules}))
"""


def extract(*args) -> tuple[int, bool, list[str]]:
    """(exit code, whether Ray was imported, stderr lines) of ``saldata extract ARGS`` in a fresh process."""
    proc = subprocess.run(
        [sys.executable, "-c", "import json\n" + PROBE, "extract", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    return result["code"], result["ray"], [line for line in proc.stderr.splitlines() if line.strip()]


BASE = ["--dataset", "demo", "--model", "tiny-random", "--max-new-tokens", "4"]


@pytest.mark.parametrize(
    ("args", "says"),
    [
        # A case that reads the model's config imports transformers in its fresh process: ~10 s on
        # 2 cores, so slow; test_preflight_in_process_... below gives the fast tier the same checks.
        pytest.param(["--layer", "99"], "--layer 99 is out of range", marks=pytest.mark.slow),
        pytest.param(["--layer", "-99"], "--layer -99 is out of range", marks=pytest.mark.slow),
        (["--attention", "flash_attention_2"], "flash"),
        (["--device", "cuda"], "no usable GPU"),
        (["--limit", "-3"], "--limit must be at least 1"),
        (["--limit", "0"], "--limit must be at least 1"),
        (["--shard-size", "0"], "shard-size"),
    ],
)
def test_a_settings_mistake_is_one_line_before_ray(tmp_path, tiny_model_dir, demo_root, args, says):
    code, ray, errors = extract(*BASE, *args, "--out", tmp_path / "out")
    assert (code, ray) == (2, False), errors
    assert len(errors) == 1 and errors[0].startswith("Error: ") and says in errors[0], errors
    assert not (tmp_path / "out").exists()


def test_out_that_is_a_file_is_refused_before_ray(tmp_path, tiny_model_dir, demo_root):
    (tmp_path / "out").write_text("a file")
    code, ray, errors = extract(*BASE, "--out", tmp_path / "out")
    assert (code, ray) == (2, False) and len(errors) == 1 and "is a file" in errors[0], errors


@pytest.mark.slow  # pre-flight reads the model's config before the lock: ~10 s, as above
def test_an_output_in_use_is_refused_before_ray(tmp_path, tiny_model_dir, demo_root):
    out = tmp_path / "out"
    with OutputLock(out, "holder"):  # a live run: this process
        code, ray, errors = extract(*BASE, "--out", out)
    assert (code, ray) == (2, False) and len(errors) == 1 and "in use by run holder" in errors[0], errors


@pytest.mark.slow
def test_resume_guards_are_checked_before_ray(tmp_path, reference_run):
    out = tmp_path / "out"
    shutil.copytree(reference_run, out)
    args = [a if a != "4" else "5" for a in DEMO_ARGS]  # --max-new-tokens 5
    code, ray, errors = extract(*args, "--out", out)
    assert (code, ray) == (2, False), errors
    assert errors[0].startswith("Error: ") and "max_new_tokens: 4 in the output, 5 now" in "\n".join(errors)


def test_resume_guards_name_the_difference_before_anything_is_written(demo_output):
    """The guards of the test above, in this process: pre-flight reads the output, changes nothing."""
    from saldata.errors import ConfigError
    from saldata.pipelines.preflight import preflight
    from tests.ray_free_run import readers_demo_config

    before = sorted((p.relative_to(demo_output), p.stat().st_mtime_ns) for p in demo_output.rglob("*"))
    config = readers_demo_config(demo_output)
    preflight(config, overwrite=False)  # the same settings: a resume, accepted
    for changed, named in [
        (
            replace(config, capture=replace(config.capture, max_new_tokens=13)),
            "max_new_tokens: 12 in the output, 13 now",
        ),
        (replace(config, shard_size=3), "shard_size: 4 in the output, 3 now"),
    ]:
        with pytest.raises(ConfigError, match=named):
            preflight(changed, overwrite=False)
    assert sorted((p.relative_to(demo_output), p.stat().st_mtime_ns) for p in demo_output.rglob("*")) == before


def test_preflight_in_process_refuses_a_layer_out_of_range_and_an_output_in_use(tmp_path, tiny_model_dir, demo_root):
    """The two slow cases above, in this process: the same pre-flight, the same messages."""
    from saldata.errors import ConfigError, StoreError
    from saldata.pipelines.preflight import preflight
    from tests.ray_free_run import readers_demo_config

    config = readers_demo_config(tmp_path / "out")
    for layers, flag in (((99,), "--layer 99"), ((-99,), "--layer -99"), ((0, 7, -9), "--layers 7, -9")):
        with pytest.raises(ConfigError, match=f"^{flag} is out of range"):
            preflight(replace(config, capture=replace(config.capture, layers=layers)), overwrite=False)
    assert not config.out.exists()
    with OutputLock(config.out, "holder"), pytest.raises(StoreError, match="in use by run holder"):
        preflight(config, overwrite=False)
