"""Session fixtures: one cache (tiny model, demo images) and one local Ray for the whole run."""

from __future__ import annotations

import os

import numpy as np
import pytest

from tests.helpers import DEMO_ARGS, batched_args, make_batched_images, run_cli


@pytest.fixture(scope="session", autouse=True)
def saldata_cache(tmp_path_factory):
    """Build the tiny model and the demo images once per session, shared with CLI subprocesses."""
    cache = os.environ.get("SALDATA_TEST_CACHE") or str(tmp_path_factory.mktemp("saldata-cache"))
    os.environ["SALDATA_CACHE"] = cache
    os.environ.setdefault("HF_HUB_OFFLINE", "0")
    return cache


@pytest.fixture(scope="session")
def tiny_model_dir(saldata_cache):
    from saldata.extractors.models import resolve_model_dir

    return resolve_model_dir("tiny-random")


@pytest.fixture(scope="session")
def demo_root(saldata_cache):
    from saldata.datasets.demo import demo_root

    return demo_root()


@pytest.fixture(scope="session")
def ray_local(saldata_cache):
    import ray

    # "local": never attach to a cluster another test (or a stale /tmp/ray file) points at.
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="ERROR", configure_logging=True)
    yield ray
    ray.shutdown()


@pytest.fixture
def rgb_images():
    """Three random 640x480 RGB images (different content, same size)."""
    rng = np.random.default_rng(7)
    return [rng.integers(0, 256, (480, 640, 3), dtype=np.uint8) for _ in range(3)]


@pytest.fixture(scope="session")
def reference_run(tmp_path_factory, tiny_model_dir, demo_root):
    """An uninterrupted CLI run with DEMO_ARGS."""
    out = tmp_path_factory.mktemp("reference") / "out"
    proc = run_cli(["extract", *DEMO_ARGS, "--out", str(out)])
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


@pytest.fixture(scope="session")
def demo_output(tmp_path_factory, tiny_model_dir, demo_root):
    """A demo run for the readers: enough tokens to make words, two shards (one partial)."""
    out = tmp_path_factory.mktemp("readers") / "demo"
    args = ["--dataset", "demo", "--model", "tiny-random", "--max-new-tokens", "12", "--shard-size", "4"]
    proc = run_cli(["extract", *args, "--batch-size", "2", "--out", str(out)])
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


@pytest.fixture(scope="session")
def batched_images(tmp_path_factory):
    return make_batched_images(tmp_path_factory.mktemp("batched") / "images")


@pytest.fixture(scope="session")
def batched_reference_run(tmp_path_factory, tiny_model_dir, batched_images):
    """An uninterrupted CLI run with batched_args: shards of several batches of several images."""
    out = tmp_path_factory.mktemp("batched-reference") / "out"
    proc = run_cli(["extract", *batched_args(batched_images), "--out", str(out)])
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out
