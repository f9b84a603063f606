"""``saldata report`` on the demo output: the pages' numbers against the catalog and metrics.parquet
(read here with duckdb), every link and picture present, the overlays ``show``'s own drawing, the
limits, reruns and refusals. The browser's view of the same pages: test_report_browser.py."""

from __future__ import annotations

import re
import shutil

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from tests.helpers import commit_rewrite
from tests.report.conftest import catalog, invoke, metric_rows

pytestmark = pytest.mark.filterwarnings("ignore:.*nanobind.*")


def test_overview_counts_equal_the_catalog(reported):
    out, report, text = reported
    page = (report / "index.html").read_text()
    ((done, failed),) = catalog(
        out,
        "SELECT count(*) FILTER (status = 'done'), count(*) FILTER (status = 'failed') "
        "FROM '{out}/catalog/images/*.parquet'",
    )
    assert re.search(rf'data-count="done">{done}<', page) and re.search(rf'data-count="failed">{failed}<', page)
    assert done == 6 and "6 images, 1 gallery page" in text
    size = sum(p.stat().st_size for p in report.rglob("*") if p.is_file())
    assert re.search(r"overlays, [\d.]+ [KM]iB", text) and size < 3_000_000, text
    words = catalog(out, "SELECT lower(word), count(*) FROM '{out}/catalog/words/*.parquet' GROUP BY 1 ORDER BY 2 DESC")
    most = words[0]
    assert f'<td>{most[0]}</td><td class="num">{most[1]}</td>' in page
    assert "model" in page and "tiny-random" in page  # saldata info's record


def test_evaluation_table_equals_metrics_parquet(reported):
    out, report, _ = reported
    page = (report / "index.html").read_text()
    rows = catalog(
        out,
        "SELECT layer, avg(nss), stddev_samp(nss) / sqrt(count(nss)), count(*) FROM '{out}/eval/metrics.parquet' "
        "WHERE head = -1 AND unit IN ('description', 'centre_bias') GROUP BY layer ORDER BY layer",
    )
    assert len(rows) == 3  # the centre bias (-1), layers 0 and 1
    for layer, mean, stderr, _ in rows:
        label = "centre bias" if layer == -1 else str(layer)
        assert f'data-layer="{label}" data-metric="nss">{mean:.3f} ± {stderr:.3f}<' in page
    assert (report / "assets" / "eval-layers.png").read_bytes() == (out / "eval" / "layers.png").read_bytes()
    assert 'src="assets/eval-layers.png"' in page and "grid highres" in page and "rows research" in page


def test_gallery_cards_link_to_image_pages_with_their_nss(reported):
    out, report, _ = reported
    page = (report / "gallery-1.html").read_text()
    ids = catalog(out, "SELECT idx, image_id FROM '{out}/catalog/images/*.parquet' WHERE status = 'done' ORDER BY idx")
    assert [int(i) for i in re.findall(r'class="card" data-idx="(\d+)"', page)] == [i for i, _ in ids]
    description = metric_rows(out, "unit = 'description' AND head = -1")
    by_layer: dict[int, list[float]] = {}
    for _, layer, nss in description:
        by_layer.setdefault(layer, []).append(nss)
    best = max(by_layer, key=lambda layer: np.mean(by_layer[layer]))
    assert f"NSS (layer {best})" in page
    shown = {int(i): float(v) for i, v in re.findall(r'data-idx="(\d+)".*?data-nss="([^"]+)"', page)}
    assert shown == {idx: nss for idx, layer, nss in description if layer == best}
    for idx, image_id in ids:
        assert f'href="images/{idx}.html"' in page and image_id in page
        assert (report / "images" / f"{idx}.html").is_file()
        with Image.open(report / "images" / str(idx) / "thumb.jpg") as thumb:
            assert max(thumb.size) == 160


def test_image_page_has_each_word_and_every_overlay_it_can_ask_for(reported):
    out, report, _ = reported
    for (idx,) in catalog(out, "SELECT idx FROM '{out}/catalog/images/*.parquet' WHERE status = 'done'"):
        page = (report / "images" / f"{idx}.html").read_text()
        (text,) = catalog(out, f"SELECT text FROM '{{out}}/catalog/images/*.parquet' WHERE idx = {idx}")[0]
        words = catalog(
            out,
            f"SELECT word_index, char_start, char_end FROM '{{out}}/catalog/words/*.parquet' WHERE idx = {idx} "
            "ORDER BY word_index",
        )
        buttons = re.findall(r'<button type="button" data-word-index="(\d+)">', page)
        assert [int(b) for b in buttons] == [w for w, _, _ in words]
        for word_index, *_ in words:
            for view in ["L0-Hm", "L1-Hm", *(f"L1-H{h}" for h in range(4))]:  # heads at the last layer only
                assert (report / "images" / str(idx) / f"{view}-W{word_index}.jpg").is_file()
            assert not (report / "images" / str(idx) / f"L0-H0-W{word_index}.jpg").exists()
        nss = dict(
            catalog(
                out,
                f"SELECT layer, nss FROM '{{out}}/eval/metrics.parquet' WHERE idx = {idx} AND unit = 'description' "
                "AND head = -1",
            )
        )
        for layer, value in nss.items():
            assert f'data-layer="{layer}" data-nss={value!r}>{value:.3f}<' in page
        assert "http://" not in page and "https://" not in page  # nothing fetched from the network


def test_an_overlay_is_what_show_draws(reported):
    """The overlay file decodes (JPEG) to analysis.overlay.overlay of the word's map, as show draws it."""
    import saldata
    from saldata.analysis.overlay import overlay
    from saldata.report.render import display_size, source_pixels

    out, report, _ = reported
    data = saldata.open(out)
    row = data.row("COCO_val2014_000000000003")
    pixels, error = source_pixels(row, tuple(data.attrs["image_size"]))
    assert error is None
    size = display_size(tuple(data.attrs["image_size"]), 320)  # show's panels, 320 px wide
    assert size == (320, 240)
    small = np.asarray(Image.fromarray(pixels).resize(size, Image.Resampling.BILINEAR))
    words, maps = data.word_maps(row["idx"], layer=0)
    _, per_head = data.word_maps(row["idx"], layer=1, heads="all")
    for name, word_map in (("L0-Hm-W0.jpg", maps[0]), ("L1-H2-W1.jpg", per_head[1, 2])):
        with Image.open(report / "images" / str(row["idx"]) / name) as drawn:
            got = np.asarray(drawn.convert("RGB"), np.float64)
        want = overlay(small, word_map).astype(np.float64)
        assert got.shape == want.shape and np.abs(got - want).mean() < 4, name  # JPEG's loss only
        other = overlay(small, maps[-1] if name.startswith("L0") else per_head[1, 0]).astype(np.float64)
        assert np.abs(other - want).mean() > 2 * np.abs(got - want).mean()  # a different map draws differently


def test_limit_images_and_a_rerun_replace_the_report(reported, tmp_path):
    out, _, _ = reported
    target = tmp_path / "part"
    code, text = invoke("report", out, "-o", target, "--limit", "2", "--layers", "0", "--head-layers", "none")
    assert code == 0, text
    assert sorted(p.name for p in (target / "images").glob("*.html")) == ["0.html", "1.html"]
    assert not list((target / "images").glob("*/L1-*")) and not list((target / "images").glob("*/L0-H0-*"))
    assert "holds 2 of the 6 done images" in (target / "index.html").read_text()
    code, text = invoke("report", out, "-o", target, "--images", "COCO_val2014_000000000005")
    assert code == 0, text
    assert sorted(p.name for p in (target / "images").glob("*.html")) == ["4.html"]  # the old pages are gone
    assert not (tmp_path / ".part.partial").exists() and not (tmp_path / ".part.old").exists()


def test_pages_of_a_long_gallery_link_to_each_other(reported, tmp_path):
    import saldata
    from saldata.report.build import ReportSettings, make_report

    out, _, _ = reported
    written = make_report(saldata.open(out), tmp_path / "r", ReportSettings(per_page=4, max_words=1), {})
    assert written.pages == 2
    first, second = ((tmp_path / "r" / f"gallery-{p}.html").read_text() for p in (1, 2))
    assert 'rel="next" href="gallery-2.html"' in first and 'rel="prev"' not in first
    assert 'rel="prev" href="gallery-1.html"' in second and len(re.findall('class="card"', second)) == 2
    assert 'href="../gallery-2.html">gallery page 2' in (tmp_path / "r" / "images" / "5.html").read_text()
    assert len(re.findall("<button", (tmp_path / "r" / "images" / "5.html").read_text())) == 1  # --max-words 1


@pytest.mark.parametrize(
    "args, says",
    [
        (["--images", "COCO_nope"], "no committed image with id COCO_nope"),
        (["--layers", "7"], "layer 7 is out of range"),
        (["--head-layers", "0", "--layers", "1"], "--head-layers 0: not among the drawn --layers"),
        (["--head-layers", "x"], "--head-layers 'x' is not last, none or a comma list"),
        (["--limit", "0"], "--limit must be 1 or more"),
    ],
)
def test_bad_options_are_one_line(reported, tmp_path, args, says):
    out, _, _ = reported
    code, text = invoke("report", out, "-o", tmp_path / "r", *args)
    assert code == 2 and says in text and len(text.strip().splitlines()) == 1, text
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("where", ["inside", "foreign", "file"])
def test_the_report_never_goes_into_out_or_over_other_files(reported, tmp_path, where):
    out, _, _ = reported
    target = {"inside": out / "report", "foreign": tmp_path / "mine", "file": tmp_path / "file"}[where]
    if where == "foreign":
        target.mkdir()
        (target / "thesis.tex").write_text("keep me")
    if where == "file":
        target.write_text("keep me")
    code, text = invoke("report", out, "-o", target)
    assert code == 2 and len(text.strip().splitlines()) == 1, text
    assert not (out / "report").exists()
    assert where != "foreign" or (target / "thesis.tex").read_text() == "keep me"


def test_failures_by_reason_and_an_output_never_evaluated(demo_output_ray_free, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(demo_output_ray_free, out)
    shutil.rmtree(out / "eval", ignore_errors=True)
    shard = out / "catalog" / "images" / "shard-00001.parquet"
    images = pq.read_table(shard)
    rows = images.to_pylist()
    for row, reason in zip(rows, ("cannot identify image file", "cannot identify image file")):
        row.update(status="failed", error=f"{row['source_path']}: {reason}", text=None)
    pq.write_table(pa.Table.from_pylist(rows, schema=images.schema), shard)
    commit_rewrite(out, shard)  # as an extraction whose images failed would have committed it
    code, text = invoke("report", out, "-o", tmp_path / "r")
    assert code == 0, text
    page = (tmp_path / "r" / "index.html").read_text()
    assert 'data-count="done">4<' in page and 'data-count="failed">2<' in page
    assert '<td>cannot identify image file</td><td class="num">2</td>' in page
    assert "saldata evaluate has not run" in page and "NSS" not in (tmp_path / "r" / "gallery-1.html").read_text()
    code, text = invoke("report", out, "-o", tmp_path / "r", "--images", rows[0]["image_id"])
    assert code == 2 and "failed during extraction" in text, text


@pytest.mark.slow
def test_a_report_of_an_s3_output_is_the_local_outputs(s3_demo, demo_output_ray_free, tmp_path):
    for source, target in ((s3_demo, tmp_path / "remote"), (demo_output_ray_free, tmp_path / "local")):
        code, text = invoke("report", source, "-o", target, "--limit", "3")
        assert code == 0, text
    local = sorted(p.relative_to(tmp_path / "local") for p in (tmp_path / "local").rglob("*.jpg"))
    assert len(local) > 3
    for rel in local:
        assert (tmp_path / "remote" / rel).read_bytes() == (tmp_path / "local" / rel).read_bytes(), rel
    assert (tmp_path / "remote" / "gallery-1.html").read_text() == (tmp_path / "local" / "gallery-1.html").read_text()


@pytest.mark.parametrize("damage", ["older layout", "not parquet"])
def test_a_metrics_file_it_cannot_summarise_is_said_in_one_line(reported, tmp_path, damage):
    out, _, _ = reported
    copy = tmp_path / "out"
    shutil.copytree(out, copy)
    metrics = copy / "eval" / "metrics.parquet"
    if damage == "older layout":  # what evaluate wrote before sauc: no such column, version 2
        table = pq.read_table(metrics).drop_columns(["sauc"])
        meta = {**table.schema.metadata, b"saldata.metrics_version": b"2"}
        pq.write_table(table.replace_schema_metadata(meta), metrics)
    else:
        metrics.write_bytes(b"not parquet")
    code, text = invoke("report", copy, "-o", tmp_path / "r")
    if damage == "older layout":
        assert code == 0, text
        page = (tmp_path / "r" / "index.html").read_text()
        assert "has the metrics layout of version 2, this saldata&#x27;s is 3; rerun saldata evaluate" in page
        assert "NSS" not in (tmp_path / "r" / "gallery-1.html").read_text()
    else:
        assert code == 1 and "metrics.parquet: cannot read it" in text and len(text.strip().splitlines()) == 1, text


def test_an_interrupt_stops_the_drawing_and_leaves_the_last_report(reported, tmp_path):
    import os
    import signal
    import time

    import saldata
    from saldata.pipelines.signals import Interrupted, catch_signals
    from saldata.report.build import ReportSettings, make_report

    out, report, _ = reported
    target = tmp_path / "r"
    shutil.copytree(report, target)
    before = sorted(p.relative_to(target) for p in target.rglob("*"))
    drawn = []

    def interrupt():  # after the first image, a Ctrl-C to the main thread, as a terminal sends it
        drawn.append(1)
        if len(drawn) == 1:
            os.kill(os.getpid(), signal.SIGINT)

    catch_signals()  # as the command does: SIGINT raises Interrupted in the main thread
    with pytest.raises(Interrupted):
        make_report(saldata.open(out), target, ReportSettings(), {}, on_image=interrupt)
    assert sorted(p.relative_to(target) for p in target.rglob("*")) == before  # the last report, whole
    time.sleep(3)  # time enough for the shards being drawn to finish, had they not stopped
    assert len(drawn) < 6  # the threads stopped at their next image
    code, text = invoke("report", out, "-o", target, "--limit", "1")  # a rerun clears what was left aside
    assert code == 0 and not (tmp_path / ".r.partial").exists(), text
