"""The guard of the fast tier (tests/conftest.py): a test that uses a slow fixture must be marked slow.

Each case runs pytest on a small test file whose conftest carries the real guard; ``ray_local``
there is a cheap stand-in with a slow fixture's name (the guard goes by names).
"""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

CONFTEST = """
import pytest
from tests.conftest import pytest_collection_modifyitems, pytest_fixture_setup, pytest_runtest_protocol

@pytest.fixture(scope="session")
def ray_local():
    return "ray"

@pytest.fixture
def uses_ray(ray_local):
    return ray_local
"""

INI = "[pytest]\naddopts = --strict-markers\nmarkers =\n    slow: slow\n"


def run(suite, *args):
    # without the hypothesis plugin where it is installed: 1.5 s a run, and no test here uses it
    return suite.runpytest("-p", "no:hypothesispytest", "-p", "no:cacheprovider", *args)


@pytest.fixture
def suite(pytester):
    pytester.makeconftest(CONFTEST)
    pytester.makeini(INI)
    return pytester


def test_a_direct_use_without_the_mark_fails_the_collection(suite):
    suite.makepyfile(test_a="def test_fast():\n    pass\n\ndef test_sneaky(ray_local):\n    pass\n")
    for args in ([], ["-m", "not slow"], ["-k", "fast"]):
        result = run(suite, *args)
        assert result.ret == pytest.ExitCode.USAGE_ERROR, args
        result.stderr.fnmatch_lines(["*not marked @pytest.mark.slow*", "*test_a.py::test_sneaky (ray_local)*"])
        assert "test_fast" not in result.stderr.str()
        result.assert_outcomes()  # nothing ran


def test_a_use_through_another_fixture_without_the_mark_fails_the_collection(suite):
    suite.makepyfile(test_b="def test_indirect(uses_ray):\n    pass\n")
    result = run(suite)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*test_b.py::test_indirect (ray_local)*"])


def test_marked_uses_pass_and_leave_the_fast_tier(suite):
    suite.makepyfile(
        test_c="""
import pytest

@pytest.mark.slow
def test_function_mark(ray_local):
    pass

@pytest.mark.parametrize("n", [1, pytest.param(2, marks=pytest.mark.slow)])
def test_param_mark(n, request):
    if n == 2:
        request.getfixturevalue("ray_local")

def test_fast():
    pass
""",
        test_d="import pytest\n\npytestmark = pytest.mark.slow\n\ndef test_module_mark(uses_ray):\n    pass\n",
    )
    run(suite).assert_outcomes(passed=5)
    fast = run(suite, "-m", "not slow", "-v")
    fast.assert_outcomes(passed=2, deselected=3)
    fast.stdout.fnmatch_lines(["*test_param_mark?1? PASSED*", "*test_fast PASSED*"])


def test_a_slow_fixture_asked_for_while_an_unmarked_test_runs_fails_that_test(suite):
    suite.makepyfile(
        test_e="""
def test_dynamic(request):
    request.getfixturevalue("ray_local")

def test_fine():
    pass
"""
    )
    result = run(suite)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        ["*test_e.py::test_dynamic is not marked slow but asked for the slow fixture ray_local*"]
    )
