"""The report in a real browser: the system's headless Chromium opens it from file://.

It loads with no console error and no failed or network request, every picture it shows is
there, the numbers it shows are the catalog's and metrics.parquet's, the gallery links to the
image pages, and choosing a word, a head or a layer swaps the overlay for that one.
"""

from __future__ import annotations

import pytest

from tests.report.browser import browser_page, chromium_path
from tests.report.conftest import catalog, metric_rows

pytestmark = [
    pytest.mark.slow,  # a browser start per test: seconds each
    pytest.mark.filterwarnings("ignore:.*nanobind.*"),
    pytest.mark.skipif(
        chromium_path() is None, reason="no chromium on PATH (apt-get install -y chromium; .ci/run installs it)"
    ),
]
pytest.importorskip("playwright", reason="playwright drives the browser: pip install -e '.[dev]'")

ALL_PICTURES_LOADED = "[...document.images].every(i => i.complete && i.naturalWidth > 0)"


def open_page(page, path):
    page.goto(path.resolve().as_uri())
    page.wait_for_load_state("load")
    page.wait_for_function(ALL_PICTURES_LOADED)


def test_overview_shows_the_catalogs_counts(reported):
    out, report, _ = reported
    ((done, failed),) = catalog(
        out,
        "SELECT count(*) FILTER (status = 'done'), count(*) FILTER (status = 'failed') "
        "FROM '{out}/catalog/images/*.parquet'",
    )
    with browser_page() as (page, problems):
        open_page(page, report / "index.html")
        assert page.locator('[data-count="done"]').inner_text() == str(done)
        assert page.locator('[data-count="failed"]').inner_text() == str(failed)
        assert page.locator("#evaluation tr").count() == 4  # header, layers 0 and 1, centre bias
        assert not problems, problems


def test_gallery_links_to_image_pages_and_shows_their_nss(reported):
    out, report, _ = reported
    description = metric_rows(out, "unit = 'description' AND head = -1")
    with browser_page() as (page, problems):
        open_page(page, report / "gallery-1.html")
        label = page.locator(".card").first.inner_text()
        best = int(label.split("NSS (layer ")[1].split(")")[0])
        nss = {idx: value for idx, layer, value in description if layer == best}
        for card in page.locator(".card").all():
            idx = int(card.get_attribute("data-idx"))
            assert card.locator(".nss").inner_text() == f"{nss[idx]:.3f}"
        page.locator(".card a.id").nth(2).click()
        page.wait_for_load_state("load")
        assert page.url.endswith("/images/2.html")
        page.wait_for_function(ALL_PICTURES_LOADED)
        for layer, value in ((la, v) for idx, la, v in description if idx == 2):
            assert page.locator(f'#image-nss [data-layer="{layer}"]').inner_text() == f"{value:.3f}"
        page.locator('a[rel="next"]').click()
        page.wait_for_load_state("load")
        assert page.url.endswith("/images/3.html")
        page.locator("header a", has_text="Gallery").click()
        page.wait_for_load_state("load")
        assert page.url.endswith("/gallery-1.html")
        assert not problems, problems


def test_choosing_a_word_head_and_layer_swaps_the_overlay(reported):
    out, report, _ = reported
    words = catalog(out, "SELECT word_index, word FROM '{out}/catalog/words/*.parquet' WHERE idx = 3 ORDER BY 1")
    assert len(words) >= 2
    with browser_page() as (page, problems):
        open_page(page, report / "images" / "3.html")
        overlay = page.locator("#overlay")

        def shown() -> str:
            page.wait_for_function(ALL_PICTURES_LOADED)  # the file the page asked for is there
            return overlay.get_attribute("src")

        assert shown() == f"3/L1-Hm-W{words[0][0]}.jpg"  # the first word, the last layer, heads averaged
        page.locator(".words button").nth(1).click()
        assert shown() == f"3/L1-Hm-W{words[1][0]}.jpg"
        assert page.locator("#overlay-label").inner_text().startswith(words[1][1])
        assert "token" in page.locator("#overlay-label").inner_text()  # show's label: token positions
        page.select_option("#head", "2")
        assert shown() == f"3/L1-H2-W{words[1][0]}.jpg"
        page.select_option("#layer", "0")  # heads drawn at the last layer only: back to their mean
        assert shown() == f"3/L0-Hm-W{words[1][0]}.jpg" and page.locator("#head").is_disabled()
        assert not problems, problems
