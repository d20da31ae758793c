"""The report in a real browser: headless Chromium (Debian's `chromium`) driven by Playwright.

The page of the finished pipeline (the session's `pipeline_repo`) must load with no console
error and no request but its own file, filter to one category's rows, sort by a metric, open a
query's top-k, and draw something (a screenshot with pixel variance). What the page shows is
checked against `runs/validate/per_query.tsv`, the file it was built from.

Chromium is found on PATH (or `REPROKIT_CHROMIUM`); outside CI a missing one skips these tests
with the reason, under CI (`CI` set, as `.ci/run` does) it fails them. `REPROKIT_WRITE_SCREENSHOT=1`
also writes the README's pictures, `docs/report.png` and `docs/report-queries.png`;
`REPROKIT_REPORT_HTML=path/to/runs/report/index.html` points the tests at another finished run's
page (e.g. the default pipeline's, for those pictures) instead of the session's.
"""

from __future__ import annotations

import io
import json
import os
import shutil
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image, ImageStat

from tests.projects import PROJECT_ROOT

pytestmark = pytest.mark.slow

SCREENSHOT_ENV, PAGE_ENV, CHROMIUM_ENV = "REPROKIT_WRITE_SCREENSHOT", "REPROKIT_REPORT_HTML", "REPROKIT_CHROMIUM"
ALLOWED_SCHEMES = ("file://", "data:")
MIN_STDDEV = 12.0  # grey levels: a blank or one-colour picture is ~0; this page is ~60-90


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; CI must run the report's browser test (the Makefile's `browser` target installs it)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("playwright is not installed (pip install -e '.[dev]')")
    executable = os.environ.get(CHROMIUM_ENV) or shutil.which("chromium")
    if not executable:
        _unavailable("no `chromium` on PATH (Debian: apt-get install chromium; or set REPROKIT_CHROMIUM)")
    with sync_playwright() as pw:
        # --no-sandbox: Chromium's sandbox refuses to start as root (containers, CI).
        chromium = pw.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def report_page(request) -> Path:
    if os.environ.get(PAGE_ENV):
        return Path(os.environ[PAGE_ENV]).resolve()
    return request.getfixturevalue("pipeline_repo") / "runs" / "report" / "index.html"


@pytest.fixture(scope="module")
def per_query(report_page) -> pd.DataFrame:
    pq = pd.read_csv(report_page.parents[1] / "validate" / "per_query.tsv", sep="\t", dtype={"category": str})
    return pq.set_index("item", drop=False)


@pytest.fixture
def page(browser, report_page):
    """The report opened in a fresh page; every request, console error and page error recorded."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, device_scale_factor=1)
    tab = context.new_page()
    tab.requests, tab.errors = [], []
    tab.on("request", lambda r: tab.requests.append(r.url))
    tab.on("console", lambda m: tab.errors.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    tab.on("pageerror", lambda e: tab.errors.append(f"page error: {e}"))
    tab.goto(report_page.as_uri(), wait_until="load")
    yield tab
    context.close()


def _rows(page) -> list[dict]:
    return page.eval_on_selector_all(
        "#queries-table tbody tr.q",
        """rows => rows.map(r => ({item: +r.dataset.item, category: r.dataset.category, failed: r.dataset.failed,
             values: Object.fromEntries([...r.querySelectorAll('td.metric')].map(c => [c.dataset.metric, c.dataset.value]))}))""",
    )


def _stddev(png: bytes) -> float:
    with Image.open(io.BytesIO(png)) as img:
        return ImageStat.Stat(img.convert("L")).stddev[0]


def _save_for_docs(img: Image.Image, path: Path) -> None:
    """A 256-colour PNG: a page's flat colours lose nothing visible, the file a third of the size."""
    img.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(
        path, optimize=True
    )


def test_page_loads_with_no_console_error_and_no_request_but_itself(page, report_page, per_query):
    page.click("#queries-table tbody tr.q")  # the script's interactive path runs too
    page.wait_for_selector("tr.detail")
    assert page.errors == []
    assert page.requests and page.requests[0] == report_page.as_uri()
    outside = [u for u in page.requests if not u.startswith(ALLOWED_SCHEMES)]
    assert outside == [], outside
    # The page names the run as the logger does (the mirror ran after the report).
    mirrored = json.loads((report_page.parents[1] / "mirror" / "report.json").read_text())
    assert page.inner_text("#run-name") == mirrored["run_name"]
    # The table knows every query, and says so.
    assert f"of {len(per_query)} matching queries" in page.inner_text("#queries-count")


def test_filtering_by_a_category_leaves_only_its_rows(page, per_query):
    categories = sorted(per_query["category"].dropna().unique())
    assert len(categories) > 1
    category = categories[1]
    page.select_option("#filter-category", category)
    rows = _rows(page)
    assert rows and {r["category"] for r in rows} == {category}
    expected = int((per_query["category"] == category).sum())
    assert f"of {expected} matching queries" in page.inner_text("#queries-count")
    assert {r["item"] for r in rows} <= set(per_query.index[per_query["category"] == category])
    # "failed at 1" on top: only this category's queries whose nearest item is wrong.
    page.check("#filter-failed")
    failed = _rows(page)
    expected_failed = set(per_query.index[(per_query["category"] == category) & (per_query["cmc@1"] == 0)])
    assert f"of {len(expected_failed)} matching queries" in page.inner_text("#queries-count")
    assert {r["item"] for r in failed} <= expected_failed and len(failed) == min(len(expected_failed), 100)
    assert all(r["failed"] == "1" for r in failed)


@pytest.mark.parametrize("metric", ["map@5", "cmc@5"])
def test_sorting_by_a_metric_orders_the_rows(page, per_query, metric):
    header = page.locator(f'#queries-table th[data-sort="m:{metric}"]')
    header.click()
    if header.get_attribute("aria-sort") != "ascending":  # the page may open sorted by this metric already
        header.click()
    assert header.get_attribute("aria-sort") == "ascending"
    ascending = [float(r["values"][metric]) for r in _rows(page) if r["values"][metric] != ""]
    assert ascending == sorted(ascending) and ascending[0] == pytest.approx(per_query[metric].min())
    header.click()
    assert header.get_attribute("aria-sort") == "descending"
    descending = [float(r["values"][metric]) for r in _rows(page) if r["values"][metric] != ""]
    assert descending == sorted(descending, reverse=True) and descending[0] == pytest.approx(per_query[metric].max())


def test_clicking_a_query_shows_its_top_k_with_distances_and_its_ground_truth(page, per_query):
    row = page.locator("#queries-table tbody tr.q").nth(2)
    item = int(row.get_attribute("data-item"))
    row.click()
    detail = page.locator("tr.detail")
    detail.wait_for()
    expected = per_query.loc[item]
    retrieved = str(expected["retrieved"]).split()
    distances = [float(d) for d in str(expected["distances"]).split()]
    tiles = detail.locator("figure.tile.hit, figure.tile.miss")
    assert tiles.count() == len(retrieved) > 0
    captions = tiles.locator("figcaption").all_inner_texts()
    shown = [float(c.split("d=")[1]) for c in captions]
    assert shown == pytest.approx(distances, abs=5.1e-4)  # 3 decimals, rounded once
    assert detail.locator("figure.tile.truth").count() == min(int(expected["n_gt"]), 8)
    assert detail.locator("figure.tile.query").count() == 1
    # Relevant (green) exactly where the retrieved item's label is the query's.
    labels = dict(zip(per_query["item"], per_query["label"]))
    hits = [labels[int(i)] == expected["label"] for i in retrieved]
    assert [t.get_attribute("class").split()[-1] == "hit" for t in tiles.all()] == hits
    # The thumbnails are real pixels, not empty boxes.
    assert _stddev(detail.screenshot()) > MIN_STDDEV
    row.click()  # a second click closes it
    assert page.locator("tr.detail").count() == 0


def test_screenshot_is_not_blank(page):
    shot = page.screenshot(full_page=False)
    assert _stddev(shot) > MIN_STDDEV
    if os.environ.get(SCREENSHOT_ENV, "") not in ("", "0"):
        docs = PROJECT_ROOT / "docs"
        docs.mkdir(exist_ok=True)
        page.set_viewport_size({"width": 1280, "height": 1560})
        _save_for_docs(Image.open(io.BytesIO(page.screenshot())), docs / "report.png")
        # The per-query table in item order, one query found at 1 opened: the interactive part.
        page.locator('#queries-table th[data-sort="item"]').click()
        page.locator('#queries-table tbody tr.q[data-failed="0"]').first.click()
        page.locator("tr.detail").wait_for()
        page.mouse.move(0, 0)  # no hover highlight in the picture
        with Image.open(io.BytesIO(page.locator("#queries").screenshot())) as card:
            top = card.crop((0, 0, card.width, min(card.height, 820)))  # the controls, the opened query, a few rows
        _save_for_docs(top, docs / "report-queries.png")
        assert ImageStat.Stat(top.convert("L")).stddev[0] > MIN_STDDEV
