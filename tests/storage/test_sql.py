"""Read-only SQL over a real demo catalog: what queries see, and what they may not do.

Refused statements must fail with one line and leave every file as it was; reads outside the
views are checked to work on a plain DuckDB connection first, so their refusal is the lock's.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import time
from pathlib import Path

import duckdb
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest

import saldata
from saldata.errors import ConfigError, QueryTimeout
from saldata.storage.sql import MEMORY_SHARE, connect, query, readonly_statements


@pytest.fixture
def out(demo_output, tmp_path):
    """A private copy of the demo catalog (these tests try to change it)."""
    copy = tmp_path / "out"
    shutil.copytree(demo_output / "catalog", copy / "catalog")
    return copy


def snapshot(folder):
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*") if p.is_file()
    }


def committed_shard(out, table="images", shard=1):
    return out / "catalog" / table / f"shard-{shard:05d}.parquet"


FORGE = "COPY (SELECT 'FORGED' AS text) TO '{target}' (FORMAT parquet, USE_TMP_FILE false)"

# (statement template, the kind the message names). {target}: a committed shard; {new}: a file
# that would become a new commit marker; {elsewhere}: a path outside the output.
REFUSED = [
    (FORGE, "COPY"),
    ("COPY (SELECT * FROM images) TO '{new}' (FORMAT parquet)", "COPY"),
    ("COPY images TO '{elsewhere}/images.csv'", "COPY"),
    ("EXPORT DATABASE '{elsewhere}/export'", "EXPORT"),
    ("ATTACH '{elsewhere}/other.duckdb' AS other", "ATTACH"),
    ("INSTALL httpfs", "INSTALL"),
    ("LOAD parquet", "LOAD"),
    ("SET enable_external_access = true", "SET"),
    ("RESET lock_configuration", "RESET"),
    ("PRAGMA enable_profiling", "PRAGMA"),
    ("PRAGMA show_tables", "PRAGMA"),
    ("CALL pragma_table_info('images')", "CALL"),
    ("CREATE TEMP TABLE t AS SELECT * FROM images", "CREATE"),
    ("CREATE MACRO double(x) AS x * 2", "CREATE"),
    ("CREATE OR REPLACE VIEW images AS SELECT 'FORGED' AS image_id", "CREATE"),
    ("DROP VIEW images", "DROP"),
    ("WITH forged AS (SELECT 1) INSERT INTO images SELECT * FROM images", "INSERT"),
    ("EXPLAIN ANALYZE " + FORGE, "EXPLAIN"),
    ("PIVOT tokens ON position USING count(*)", "PIVOT"),
    ("SELECT count(*) FROM images; " + FORGE, "COPY"),  # every statement is checked, not the first
    ("-- a comment first\n/* and another */ " + FORGE, "COPY"),
]


@pytest.mark.parametrize(("template", "kind"), REFUSED, ids=[k + str(i) for i, (_, k) in enumerate(REFUSED)])
def test_refused_statements_change_nothing(out, tmp_path, template, kind):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    sql = template.format(target=committed_shard(out), new=committed_shard(out, shard=7), elsewhere=elsewhere)
    before = snapshot(out)
    with pytest.raises(ConfigError) as err:
        query(out, sql)
    message = str(err.value)
    assert "\n" not in message and f"(got {kind})" in message and "only SELECT" in message
    assert snapshot(out) == before
    assert list(elsewhere.iterdir()) == []


def test_the_forged_copy_is_real_without_the_lock(out):
    """The statement the lock refuses does rewrite a committed shard on a plain connection."""
    target = committed_shard(out)
    duckdb.connect().execute(FORGE.format(target=target))
    assert pq.read_table(target).column_names == ["text"]


@pytest.fixture
def secret(tmp_path):
    path = tmp_path / "secret.csv"
    path.write_text("line\nTOP-SECRET-VALUE\n")
    return path


READS = [
    "SELECT * FROM read_csv('{secret}')",
    "SELECT * FROM read_csv_auto('{secret}')",
    "SELECT content FROM read_text('{secret}')",
    "SELECT content FROM read_blob('{secret}')",
    "SELECT * FROM sniff_csv('{secret}')",
    "SELECT * FROM glob('{secret_dir}/*')",
    "SELECT * FROM '{secret}'",
    "SELECT * FROM read_parquet('{uncommitted}')",
    "SELECT * FROM read_parquet('{catalog}/tokens/*.parquet')",
    "SELECT * FROM parquet_metadata('{uncommitted}')",
]


@pytest.mark.parametrize("template", READS)
def test_files_outside_the_views_are_unreadable(out, secret, template):
    committed_shard(out).unlink()  # shard 1 uncommitted: its tokens file stays on disk
    uncommitted = committed_shard(out, "tokens")
    sql = template.format(secret=secret, secret_dir=secret.parent, uncommitted=uncommitted, catalog=out / "catalog")
    plain = duckdb.connect().sql(sql).fetchall()  # the query itself works on a plain connection
    assert plain
    with pytest.raises((ConfigError, duckdb.Error)) as err:
        query(out, sql)
    assert "TOP-SECRET" not in str(err.value)


def test_a_refused_read_is_one_line(out, secret):
    with pytest.raises(ConfigError) as err:
        query(out, f"SELECT * FROM read_csv('{secret}')")
    assert str(err.value).count("\n") == 0 and "images, tokens, words" in str(err.value)


def test_select_forms_see_the_views(out):
    tokens = pads.dataset(out / "catalog" / "tokens", format="parquet").to_table()
    assert query(out, "SELECT count(*) AS n FROM tokens").column("n").to_pylist() == [tokens.num_rows]
    assert query(out, "FROM images SELECT idx ORDER BY idx").column("idx").to_pylist() == list(range(6))
    described = query(out, "DESCRIBE words").column("column_name").to_pylist()
    assert described[:3] == ["idx", "word_index", "word"]
    assert query(out, "SUMMARIZE images").num_rows == len(pq.read_schema(committed_shard(out)).names)
    cte = query(out, "WITH w AS (SELECT idx FROM words) SELECT count(DISTINCT idx) AS n FROM w")
    assert cte.column("n").to_pylist()[0] > 0
    # several statements: refused, rather than silently keeping the last one's rows
    with pytest.raises(ConfigError, match=r"one statement at a time \(got 2\)"):
        query(out, "SELECT 1 AS a; SELECT 2 AS b")
    # a committed file is part of the views, so reading it directly is allowed
    direct = query(out, f"SELECT count(*) AS n FROM read_parquet('{committed_shard(out, 'tokens', 0)}')")
    assert direct.column("n").to_pylist() == [pq.read_metadata(committed_shard(out, "tokens", 0)).num_rows]


def test_bad_sql_is_duckdbs_error(out):
    with pytest.raises(duckdb.BinderException):
        query(out, "SELECT nope FROM images")
    with pytest.raises(duckdb.ParserException):
        query(out, "SELEC 1")
    with pytest.raises(ConfigError, match="no SQL statement"):
        query(out, "  ;  ")


def test_no_committed_shard_gives_empty_views_still_locked(out, secret):
    for marker in (out / "catalog" / "images").glob("shard-*.parquet"):
        marker.unlink()
    assert query(out, "SELECT count(*) AS n FROM tokens").column("n").to_pylist() == [0]
    with pytest.raises(ConfigError):
        query(out, f"SELECT * FROM read_csv('{secret}')")
    with pytest.raises(ConfigError):
        query(out, FORGE.format(target=committed_shard(out, "tokens")))


def test_relative_output_path(out, monkeypatch):
    monkeypatch.chdir(out.parent)
    assert query(out.name, "SELECT count(*) AS n FROM images").column("n").to_pylist() == [6]


def test_the_connection_runs_only_selects(out):
    before = snapshot(out)
    with connect(out) as con:
        assert con.sql("SELECT count(*) FROM words").fetchall()[0][0] > 0
        with pytest.raises(ConfigError):
            con.sql(FORGE.format(target=committed_shard(out)))
        assert not hasattr(con, "execute")  # no way around the check
    assert snapshot(out) == before


def test_readonly_statements_parses_each_statement():
    assert len(readonly_statements("SELECT 1; FROM images; DESCRIBE tokens")) == 3
    with pytest.raises(ConfigError, match=r"\(got ATTACH\)"):
        readonly_statements("SELECT 1; ATTACH 'x.db'")


def test_output_sql_is_read_only(demo_output, tmp_path):
    copy = tmp_path / "out"
    shutil.copytree(demo_output, copy)
    before = snapshot(copy)
    output = saldata.open(copy)
    with pytest.raises(ConfigError):
        output.sql(FORGE.format(target=committed_shard(copy)))
    smuggled = f"true) ORDER BY idx; {FORGE.format(target=committed_shard(copy))}; SELECT * FROM images WHERE (true"
    with pytest.raises(ConfigError, match=r"\(got COPY\)"):  # a condition cannot add a statement
        output.select(where=smuggled)
    assert snapshot(copy) == before
    assert len(output.select(where="idx >= 2")) == 4


def test_queries_are_bounded_on_purpose(out, tmp_path, monkeypatch):
    """Memory: a share of this machine; spill files: the system's temp folder, never the working folder."""
    import psutil

    monkeypatch.chdir(tmp_path)
    with connect(out) as con:
        settings = con.sql("SELECT current_setting('memory_limit'), current_setting('temp_directory')").fetchall()
    memory, spill = settings[0]
    assert Path(spill).parent == Path(tempfile.gettempdir()) and Path(spill).name.startswith("saldata-sql-")
    number, unit = memory.split()
    limit = float(number) * {"KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40}[unit]
    assert limit == pytest.approx(MEMORY_SHARE * psutil.virtual_memory().total, rel=0.01)
    assert query(out, "SELECT count(*) AS n FROM images").column("n").to_pylist() == [6]
    assert not (tmp_path / ".tmp").exists() and not Path(spill).exists()  # nothing left behind


def test_a_query_past_its_timeout_is_interrupted(out):
    started = time.monotonic()
    with pytest.raises(QueryTimeout, match=r"ran past --timeout 1 s"):
        query(out, "SELECT count(*) FROM range(100000000000000)", timeout=1)
    assert time.monotonic() - started < 30
