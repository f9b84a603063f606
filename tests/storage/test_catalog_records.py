"""Catalog files are read only when they are what their commit records say.

A committed catalog file rewritten after its commit (same schema, other values), deleted or
renamed is refused by every reader with one line naming the file and ``saldata verify``: the
tables of ``saldata.open``, its SQL and selections, and the same on an object store. The CLI's
side is tests/cli/test_tampered_catalog.py.
"""

from __future__ import annotations

import secrets
import shutil

import fsspec
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

import saldata
from saldata.errors import DamageError, StoreError
from saldata.storage.catalog import read_table
from saldata.storage.sql import query
from tests.helpers import TAMPERED, commit_rewrite, rewrite_catalog_file


@pytest.fixture
def out(demo_output_ray_free, tmp_path):
    """A private copy of the readers' demo (two committed shards, with their records)."""
    copy = tmp_path / "out"
    shutil.copytree(demo_output_ray_free, copy)
    return copy


READERS = {
    "images": lambda o: o.images,
    "sql": lambda o: o.sql("SELECT count(*) FROM images"),
    "select": lambda o: o.select(split="val"),
    "row": lambda o: o.row("COCO_val2014_000000000003"),
    "word_maps": lambda o: o.word_maps(2, layer=0),
    "to_xarray": lambda o: o.to_xarray(),
}


def assert_one_line_naming(exc: BaseException, path, what: str) -> None:
    message = str(exc)
    assert "\n" not in message, message
    assert str(path) in message and what in message and "saldata verify" in message, message


@pytest.mark.parametrize("reader", READERS)
def test_a_rewritten_images_file_is_refused_by_every_reader(out, reader):
    before = pq.read_table(out / TAMPERED)
    rewrite_catalog_file(out / TAMPERED, "images")
    after = pq.read_table(out / TAMPERED)
    assert after.schema.equals(before.schema) and not after.equals(before)  # a quiet change
    with pytest.raises(DamageError) as err:
        READERS[reader](saldata.open(out))
    assert_one_line_naming(err.value, out / TAMPERED, "does not match its commit record")
    assert "commits/shard-00000.json" in str(err.value)


@pytest.mark.parametrize("table", ["images", "tokens", "words", "fixations"])
def test_every_table_is_checked(out, table):
    path = out / "catalog" / table / "shard-00001.parquet"
    rewrite_catalog_file(path, table)
    with pytest.raises(DamageError) as err:
        read_table(out, table)
    assert_one_line_naming(err.value, path, "does not match its commit record")
    with pytest.raises(DamageError) as err:
        query(out, f"SELECT count(*) FROM {table}")
    assert_one_line_naming(err.value, path, "does not match its commit record")


def test_a_file_of_another_size_is_refused_as_well(out):
    path = out / TAMPERED
    path.write_bytes(path.read_bytes() + b"\0")  # another size: refused before any parsing
    with pytest.raises(DamageError) as err:
        saldata.open(out).sql("SELECT 1 FROM images")
    assert_one_line_naming(err.value, path, "does not match its commit record")


def test_the_damage_class_is_a_store_error(out):
    rewrite_catalog_file(out / TAMPERED, "images")
    with pytest.raises(StoreError):
        saldata.open(out).images  # noqa: B018 - reading is the test


MOVES = {
    "deleted": lambda path: path.unlink(),
    "renamed": lambda path: path.rename(path.with_name("shard-00007.parquet")),
    "catalog folder deleted": lambda path: shutil.rmtree(path.parents[1]),
}


@pytest.mark.parametrize("move", MOVES)
@pytest.mark.parametrize("reader", ["images", "sql", "select"])
def test_a_deleted_or_renamed_file_is_one_line(out, move, reader):
    MOVES[move](out / TAMPERED)
    with pytest.raises(DamageError) as err:
        READERS[reader](saldata.open(out))
    assert_one_line_naming(err.value, out / TAMPERED, "is missing although its shard is committed")


def in_memory_store(folder) -> str:
    url = f"memory://tampered-{secrets.token_hex(4)}"
    fsspec.filesystem("memory").put(f"{folder}/", url.removeprefix("memory://"), recursive=True)
    return url


@pytest.mark.parametrize("reader", ["images", "sql"])
def test_an_object_store_says_the_same(out, reader):
    """The same damage in an object store: the same line, the URL for the folder."""
    intact = in_memory_store(out)
    rewrite_catalog_file(out / TAMPERED, "images")
    url = in_memory_store(out)
    READERS[reader](saldata.open(intact))  # the copy itself reads
    with pytest.raises(DamageError) as remote:
        READERS[reader](saldata.open(url))
    with pytest.raises(DamageError) as local:
        READERS[reader](saldata.open(out))
    assert str(remote.value).replace(url, "OUT") == str(local.value).replace(str(out), "OUT")
    fsspec.filesystem("memory").rm_file(f"{url.removeprefix('memory://')}/{TAMPERED}")
    with pytest.raises(DamageError) as remote:
        READERS[reader](saldata.open(url))
    (out / TAMPERED).unlink()
    with pytest.raises(DamageError) as local:
        READERS[reader](saldata.open(out))
    assert str(remote.value).replace(url, "OUT") == str(local.value).replace(str(out), "OUT")
    assert "is missing although its shard is committed" in str(local.value)


def test_a_file_is_checked_again_once_it_changes(out):
    """The check is remembered per file while the file stays as it was, and not beyond."""
    output = saldata.open(out)
    assert output.sql("SELECT count(*) AS n FROM images").column("n").to_pylist() == [6]
    rewrite_catalog_file(out / TAMPERED, "images")
    with pytest.raises(DamageError):
        output.sql("SELECT count(*) AS n FROM images")


def test_an_intact_output_reads_as_before(out):
    output = saldata.open(out)
    assert output.images.num_rows == 6
    assert pc.all(pc.equal(output.sql("SELECT idx FROM images ORDER BY idx")["idx"], output.images["idx"])).as_py()


def test_a_resume_reads_past_the_damage_it_redoes(out):
    """``extract --retry-failed`` reads the failed rows of intact shards only: a shard verify found
    damaged is redone whole, so its changed file must not stop the run."""
    from saldata.pipelines.extract import plan_run
    from saldata.pipelines.resume import prepare_output, select_work
    from saldata.storage.lock import output_lock
    from tests.ray_free_run import readers_demo_config

    rewrite_catalog_file(out / TAMPERED, "images")
    plan = plan_run(readers_demo_config(out))
    with output_lock(out, "test"):
        state = prepare_output(plan, overwrite=False)
    assert list(state.damaged) == [0] and state.committed == {1}
    work = select_work(plan.shards, state, out, retry_failed=True)
    assert [(w.shard.index, w.retry) for w in work] == [(0, ())]


def recommit(out, rel: str) -> None:
    """What a ``--retry-failed`` commit of the file's shard leaves: a new file, and a record naming it."""
    rewrite_catalog_file(out / rel, rel.split("/")[1])
    commit_rewrite(out, out / rel)


@pytest.mark.parametrize("reader", ["images", "sql"])
def test_a_commit_landing_between_the_records_and_the_file_is_not_damage(out, monkeypatch, reader):
    """A reader that read the records just before a commit of the shard, and the file just after,
    finds the file other than the record it holds: it reads the records again, not refuses."""
    from saldata.storage import catalog, commits

    landed = []

    def after_the_records(*args, **kwargs):  # the commit lands right after the reader read the records
        if not landed:
            landed.append(True)
            recommit(out, TAMPERED)
        return real(*args, **kwargs)

    if reader == "images":
        real = catalog.read_many
        monkeypatch.setattr(catalog, "read_many", after_the_records)
    else:
        real = commits.digest_file
        monkeypatch.setattr(commits, "digest_file", after_the_records)
    output = saldata.open(out)
    text = READERS[reader](output) if reader == "images" else output.sql("SELECT text FROM images ORDER BY idx")
    assert landed and text["text"][0].as_py().startswith("FORGED ")
