"""Session fixtures: one cache (tiny model, demo images) and one local Ray for the whole run.

Also the guard of the two test tiers: ``python -m pytest -q`` runs everything, and
``python -m pytest -q -m "not slow"`` the fast tier. A test that runs an extraction through Ray
or the CLI is marked ``slow`` in its file; one that uses a fixture of SLOW_FIXTURES without
that mark fails the collection of the whole suite (or, when the fixture is asked for while the
test runs, that test), so the fast tier cannot silently grow a slow test.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from tests.helpers import DEMO_ARGS, READERS_DEMO_ARGS, batched_args, make_batched_images, run_cli

# Fixtures that run an extraction through Ray or the CLI (which starts Ray), tens of seconds
# each on two cores. A test using one, directly or through other fixtures, must be marked slow.
SLOW_FIXTURES = frozenset(
    {
        "ray_local",
        "reference_run",
        "batched_reference_run",
        "demo_output_cli",
        "demo_run",  # tests/cli/test_extract_cli.py
        "hostile_run",  # tests/pipelines/test_hostile_input.py
        "s3_demo",  # the readers' demo in a local S3 server (tests/pipelines/test_object_store_pipeline.py)
    }
)


def unmarked_slow_fixture_users(items) -> list[str]:
    """'nodeid (fixtures)' for each test not marked slow that uses a fixture of SLOW_FIXTURES."""
    found = []
    for item in items:
        used = SLOW_FIXTURES.intersection(getattr(item, "fixturenames", ()))
        if used and item.get_closest_marker("slow") is None:
            found.append(f"{item.nodeid} ({', '.join(sorted(used))})")
    return found


@pytest.hookimpl(tryfirst=True)  # before -m and -k deselect anything: the whole collection is checked
def pytest_collection_modifyitems(config, items):
    unmarked = unmarked_slow_fixture_users(items)
    if unmarked:
        raise pytest.UsageError(
            "These tests use a slow fixture (an extraction through Ray or the CLI) but are not marked "
            "@pytest.mark.slow; mark them, or the fast tier (-m 'not slow') runs them:\n  " + "\n  ".join(unmarked)
        )


_running: list = []  # the test being run (a stack, for pytester's runs inside a test)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item, nextitem):
    _running.append(item)
    try:
        return (yield)
    finally:
        _running.pop()


@pytest.hookimpl(tryfirst=True)
def pytest_fixture_setup(fixturedef, request):
    """The same rule for a slow fixture asked for while a test runs (request.getfixturevalue)."""
    if fixturedef.argname in SLOW_FIXTURES and _running and _running[-1].get_closest_marker("slow") is None:
        pytest.fail(
            f"{_running[-1].nodeid} is not marked slow but asked for the slow fixture {fixturedef.argname}.",
            pytrace=False,
        )


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


@pytest.fixture(scope="session", params=["ray-free", pytest.param("cli", marks=pytest.mark.slow)])
def demo_output(request):
    """The readers' demo output (READERS_DEMO_ARGS), and every test on it runs on both of its builds:
    the pipeline's steps without Ray (fast tier) and the CLI through Ray (slow). A slow test checks
    that the two are the same output (tests/readers/test_ray_free_run.py)."""
    return request.getfixturevalue(f"demo_output_{request.param.replace('-', '_')}")


@pytest.fixture(scope="session")
def demo_output_cli(tmp_path_factory, tiny_model_dir, demo_root):
    """A demo run for the readers: enough tokens to make words, two shards (one partial)."""
    out = tmp_path_factory.mktemp("readers") / "demo"
    proc = run_cli(["extract", *READERS_DEMO_ARGS, "--out", str(out)])
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


@pytest.fixture(scope="session")
def demo_output_ray_free(tmp_path_factory, tiny_model_dir, demo_root):
    """The same output, built by tests/ray_free_run.py (seconds, not a minute: no Ray to start)."""
    from tests.ray_free_run import build

    return build(tmp_path_factory.mktemp("readers-ray-free") / "demo")


@pytest.fixture(scope="session")
def eos_model_dir(tmp_path_factory, tiny_model_dir, demo_output_ray_free):
    """tiny-random whose EOS is the token it generates third for demo image 0, so some demo
    descriptions end with EOS (random weights never emit the real one) and others do not."""
    import json
    import shutil

    import zarr

    eos = int(zarr.open_group(demo_output_ray_free / "features.zarr", mode="r")["token_ids"][0, 2])
    model = tmp_path_factory.mktemp("eos-model") / "tiny-random-eos"
    shutil.copytree(tiny_model_dir, model)
    config = json.loads((model / "generation_config.json").read_text())
    (model / "generation_config.json").write_text(json.dumps({**config, "eos_token_id": eos}))
    return model


@pytest.fixture(scope="session")
def demo_output_eos(tmp_path_factory, eos_model_dir):
    """The readers' demo output made with ``eos_model_dir``, without Ray."""
    from tests.ray_free_run import build

    return build(tmp_path_factory.mktemp("readers-eos") / "demo", model=str(eos_model_dir))


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


@pytest.fixture(scope="session")
def s3_server():
    """A local S3 server (moto, server mode) for the session; the AWS variables point at it."""
    from tests.s3_server import S3Server, restore_environment, set_environment

    server = S3Server()
    server.start()
    before = set_environment(server.endpoint)
    try:
        yield server
    finally:
        restore_environment(before)
        server.stop()


@pytest.fixture
def s3_out(s3_server):
    """``s3://<a new bucket>/out``: an output URL no other test uses."""
    return f"s3://{s3_server.new_bucket()}/out"


@pytest.fixture(scope="session")
def s3_demo(s3_server, tiny_model_dir, demo_root):
    """The readers' demo output built without Ray into ``s3://<bucket>/demo`` (about 16 s)."""
    from tests.ray_free_run import build

    return build(f"s3://{s3_server.new_bucket()}/demo")
