"""The comparison helpers themselves: what the disturbed-run tests rely on to tell outputs apart."""

from __future__ import annotations

import shutil

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.helpers import assert_same_bytes, assert_same_output


def test_bytes_comparison_tells_negative_zero_from_zero():
    want = np.zeros((2, 3), np.float16)
    got = want.copy()
    got[1, 2] = -0.0
    np.testing.assert_array_equal(got, want)  # what a value comparison accepts
    with pytest.raises(AssertionError, match=r"1 of 6 values differ in their bytes; first at \(1, 2\)"):
        assert_same_bytes(got, want, "hidden")
    with pytest.raises(AssertionError, match="float32"):
        assert_same_bytes(want.astype(np.float32), want, "hidden")
    assert_same_bytes(want.copy(), want, "hidden")


@pytest.mark.slow
def test_same_output_compares_the_words_table(tmp_path, reference_run):
    out = tmp_path / "out"
    shutil.copytree(reference_run, out)
    assert_same_output(out, reference_run)
    path = next(p for p in sorted((out / "catalog" / "words").glob("*.parquet")) if pq.read_metadata(p).num_rows)
    table = pq.read_table(path)
    words = table.column("word").to_pylist()
    words[0] += "x"
    column = table.schema.get_field_index("word")
    pq.write_table(table.set_column(column, table.schema.field(column), pa.array(words, pa.string())), path)
    with pytest.raises(AssertionError, match="words"):
        assert_same_output(out, reference_run)


def test_plural_and_agree():
    from saldata.words import agree, plural

    assert [plural(n, "shard") for n in (0, 1, 2)] == ["0 shards", "1 shard", "2 shards"]
    assert plural(1, "failed image") == "1 failed image" and plural(3, "entry", "entries") == "3 entries"
    assert (agree(1, "is", "are"), agree(2, "is", "are")) == ("is", "are")
