"""OUT as a URL: the location layer and the object-store lock, against a real local S3 server (moto)."""

from __future__ import annotations

import json
import pickle
import socket
import time

import pytest

from saldata.errors import ConfigError, StoreError
from saldata.storage.location import ObjectPath, as_out, parse_storage_options
from saldata.storage.lock import LOCK_FILE, is_stale, output_lock, read_lock
from saldata.storage.object_lock import ObjectLock


def test_storage_options_are_typed_and_nested():
    options = parse_storage_options(
        ["endpoint_url=http://h:9000", "anon=false", "retries=3", "client_kwargs.region_name=eu-west-1"]
    )
    assert options == {
        "endpoint_url": "http://h:9000",
        "anon": False,
        "retries": 3,
        "client_kwargs": {"region_name": "eu-west-1"},
    }
    with pytest.raises(ConfigError, match="is not KEY=VALUE"):
        parse_storage_options(["endpoint_url"])
    with pytest.raises(ConfigError, match="applies to URLs"):
        as_out("runs/demo", {"anon": True})
    with pytest.raises(ConfigError, match="names no bucket"):
        as_out("s3://")


def test_object_paths_read_write_list_and_pickle(s3_out):
    out = as_out(s3_out)
    assert isinstance(out, ObjectPath) and str(out) == s3_out
    assert not out.exists()
    (out / "catalog" / "images" / "shard-00000.parquet").write_bytes(b"abc")
    (out / "catalog" / "images" / "shard-00001.parquet").write_bytes(b"de")
    (out / "catalog" / "images" / "notes.txt").write_text("x")
    assert out.is_dir() and (out / "catalog").is_dir() and not (out / "catalog").is_file()
    shards = list((out / "catalog" / "images").glob("shard-*.parquet"))
    assert [p.name for p in shards] == ["shard-00000.parquet", "shard-00001.parquet"]
    assert str(shards[1].relative_to(out)) == "catalog/images/shard-00001.parquet"
    assert shards[1].stat().st_size == 2 and shards[1].read_bytes() == b"de"
    copy = pickle.loads(pickle.dumps(out / "catalog"))  # what Ray ships to a worker
    assert copy == out / "catalog" and copy.is_dir()
    shards[0].unlink()
    shards[0].unlink(missing_ok=True)
    with pytest.raises(FileNotFoundError):
        shards[0].read_bytes()


def _fake_lock(out, host: str, pid: int, age_s: float) -> None:
    record = {"host": host, "pid": pid, "run_id": "old-run", "started": time.time() - age_s, "token": "t",
              "beat": time.time() - age_s}  # fmt: skip
    (out / LOCK_FILE).write_bytes(json.dumps(record).encode())


def test_a_second_run_is_refused_while_the_first_holds_the_lock(s3_out):
    out = as_out(s3_out)
    with output_lock(out, "first") as first:
        assert isinstance(first, ObjectLock)
        info = read_lock(out)
        assert info["run_id"] == "first" and info["heartbeat_age_s"] < 5 and not is_stale(info)
        with pytest.raises(StoreError, match=r"is in use by run first .* heartbeat \d+ s ago"):
            output_lock(out, "second").__enter__()
        first.check()
    assert read_lock(out) is None  # released: the owner deleted its own version


def test_the_heartbeat_keeps_a_live_lock_fresh(s3_out):
    out = as_out(s3_out)
    with output_lock(out, "live", stale_after=1.2, heartbeat_s=0.2) as lock:
        time.sleep(2.0)  # longer than stale_after: only the heartbeat keeps it live
        assert read_lock(out)["heartbeat_age_s"] < 1.0
        with pytest.raises(StoreError, match="is in use by run live"):
            output_lock(out, "second", stale_after=1.2, heartbeat_s=0.2).__enter__()
        lock.check()


def test_a_stale_lock_is_taken_over_and_its_owner_stops(s3_out):
    out = as_out(s3_out)
    _fake_lock(out, "another-node", 12345, age_s=120)  # a driver on a node that died two minutes ago
    with output_lock(out, "taker") as taker:
        assert taker.took_over["run_id"] == "old-run" and taker.took_over["host"] == "another-node"
        assert read_lock(out)["run_id"] == "taker"
    # A dead pid on this host is stale at once, whatever its heartbeat.
    _fake_lock(out, socket.gethostname(), 2**31 - 2, age_s=0)
    with output_lock(out, "second-taker") as taker:
        assert taker.took_over["pid"] == 2**31 - 2


def test_a_run_whose_lock_was_taken_stops_at_its_next_check_and_leaves_the_new_lock(s3_out):
    out = as_out(s3_out)
    lock = output_lock(out, "slow", heartbeat_s=30).__enter__()
    try:
        _fake_lock(out, "another-node", 1, age_s=0)  # another run took it (as after a long stall)
        with pytest.raises(StoreError, match="was taken by run old-run"):
            lock.check()
        assert lock.lost
    finally:
        lock.__exit__(None, None, None)
    assert read_lock(out)["run_id"] == "old-run"  # release deletes only its own version


def test_a_heartbeat_that_finds_its_lock_gone_never_writes_it_back(s3_out):
    out = as_out(s3_out)
    with output_lock(out, "beating", stale_after=2, heartbeat_s=0.1) as lock:
        (out / LOCK_FILE).unlink()
        time.sleep(0.5)
        assert lock.lost and read_lock(out) is None
        with pytest.raises(StoreError, match="was removed while this run held it"):
            lock.check()


def test_an_unreadable_lock_counts_as_in_use_until_old(s3_out):
    out = as_out(s3_out)
    (out / LOCK_FILE).write_bytes(b"{cut sh")
    with pytest.raises(StoreError, match=r"unreadable \(not JSON"):
        output_lock(out, "next").__enter__()


def test_stores_without_conditional_writes_are_refused_in_one_line():
    with pytest.raises(ConfigError, match="conditional writes"):
        output_lock(ObjectPath("gs", "bucket/out"), "run").__enter__()


def test_any_fsspec_url_reads_like_a_folder(demo_output_ray_free):
    """A copy of the readers' demo in ``memory://`` (fsspec's in-process store, no S3 code): the readers,
    verify and SQL give what they give on the folder."""
    import secrets

    import fsspec
    import numpy as np

    import saldata
    from saldata.pipelines.verify import verify_output

    url = f"memory://demo-{secrets.token_hex(4)}"
    fsspec.filesystem("memory").put(f"{demo_output_ray_free}/", url.removeprefix("memory://"), recursive=True)
    remote, local = saldata.open(url), saldata.open(demo_output_ray_free)
    assert remote.images.equals(local.images) and remote.fixations.equals(local.fixations)
    idx = local.images["idx"][-1].as_py()
    words, maps = remote.word_maps(idx, layer=0)
    assert words == local.word_maps(idx, layer=0)[0] and np.array_equal(maps, local.word_maps(idx, layer=0)[1])
    sql = "SELECT idx, count(*) AS n FROM tokens GROUP BY idx ORDER BY idx"
    assert remote.sql(sql).equals(local.sql(sql))
    report = verify_output(url)
    assert report.intact and report.checked == 2
    fsspec.filesystem("memory").rm_file(f"{url.removeprefix('memory://')}/features.zarr/n_tokens/c/0")
    assert "features.zarr/n_tokens/c/0: missing" in str(verify_output(url).damaged[0])


def test_a_conditional_write_retried_after_it_landed_keeps_the_lock(s3_out):
    """The client retries a timed-out conditional PUT that had in fact landed: the retry is refused
    (the key changed), but the lock holds this run's token, so the run keeps it."""
    out = as_out(s3_out)
    with output_lock(out, "retried", stale_after=2, heartbeat_s=0.2) as lock:
        body = (out / LOCK_FILE).read_bytes()
        (out / LOCK_FILE).write_bytes(body + b" ")  # our record, under an etag this run never saw
        time.sleep(0.6)  # heartbeats since then
        lock.check()
        assert not lock.lost and read_lock(out)["run_id"] == "retried"
    assert read_lock(out) is None


def test_status_reads_a_lock_on_a_store_without_conditional_writes(demo_output_ray_free, tmp_path):
    """Reading needs no conditional writes: status works on memory://, and a lock is read plainly
    where conditional writes are not wired (fsspec's file:// through ObjectPath, here)."""
    import secrets

    import fsspec

    from saldata.pipelines.status import output_status
    from saldata.storage.object_lock import read_object_lock

    url = f"memory://status-{secrets.token_hex(4)}"
    fsspec.filesystem("memory").put(f"{demo_output_ray_free}/", url.removeprefix("memory://"), recursive=True)
    assert output_status(url).done == 6
    plain = ObjectPath("file", str(tmp_path))
    assert read_object_lock(plain) is None
    _fake_lock(plain, "elsewhere", 7, age_s=30)
    info = read_object_lock(plain)
    assert info["run_id"] == "old-run" and 25 < info["heartbeat_age_s"] < 60


def test_local_results_never_go_to_a_url_spelled_as_a_path():
    from pathlib import Path

    from saldata.storage.paths import refuse_inside, refuse_url

    with pytest.raises(ConfigError, match="looks like a URL"):
        refuse_url(Path("s3://bucket/export"), "DEST")  # what typer makes of it: s3:/bucket/export
    with pytest.raises(ConfigError, match="looks like a URL"):
        refuse_inside(Path("gs://b/q.parquet"), Path("runs/demo"), "--output", "queries")
    refuse_url(Path("C:/data/out"), "DEST")
    refuse_url(Path("runs/demo"), "DEST")
