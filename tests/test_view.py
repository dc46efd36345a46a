"""``dit-lens view`` in a real browser: headless Chromium (Debian's ``chromium``) driven by Playwright over a full
store, a stats-only store and a recipe report of the embedded model; a corrupt chunk shows its error in the page.

Without a Chromium executable the browser tests skip, saying so; ``.ci/run`` installs Debian's and sets
``DIT_LENS_REQUIRE_BROWSER=1``, which turns that skip into a failure."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from dit_lens import Lens, open_store, record
from dit_lens.view import serve, standalone_html

PROMPTS = ["a red circle on a blue background", "a green square on a white background"]
NAME = "single.3.img.resid_post"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    root = tmp_path_factory.mktemp("view")
    lens = Lens("tiny")
    full = record(lens, str(root / "full.zarr"), PROMPTS, names="*.*.img.resid_post", num_inference_steps=3,
                  progress=False)
    stats = record(lens, str(root / "stats.zarr"), PROMPTS[:1], names="*.*.img.resid_post", num_inference_steps=3,
                   stats_only=True, progress=False)
    from dit_lens.recipes import run_file

    recipe = root / "detect.toml"
    recipe.write_text(f'recipe = "detect"\nstore = "{full}"\nnames = "*.*.img.resid_post"\nk = 4\n')
    run_file(recipe, root / "report", progress=False)
    return dict(full=full, stats=stats, report=str(root / "report"), root=root)


def _get(url):
    try:
        with urllib.request.urlopen(url) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_the_api_reads_units_and_says_what_is_wrong(stores):
    s = serve(stores["full"])
    try:
        status, info = _get(s.url + "api/info")
        assert status == 200 and info["mode"] == "full" and info["grid"] == [16, 16] and len(info["samples"]) == 2
        assert info["samples"][0]["steps"] == [1, 1, 1]
        status, heat = _get(s.url + f"api/heatmap?name={NAME}&step=1&sample=1&channel=5")
        x = open_store(stores["full"]).dit.sel(NAME).isel(step=1, sample=1).values
        assert status == 200 and np.allclose(heat["values"], np.abs(x[:, 5]), atol=1e-4)
        status, prof = _get(s.url + f"api/profile?name={NAME}&step=1&sample=1&k=4")
        assert prof["top"] == np.argsort(-np.abs(x).mean(0))[:4].tolist()
        status, clu = _get(s.url + f"api/clusters?name={NAME}&step=2&sample=0&k=4")
        assert status == 200 and 0 <= clu["iou"] <= 1 and set(clu["subject"]) <= {0, 1}  # the evaluator's mask
        status, con = _get(s.url + f"api/consistency?name={NAME}&k=4")
        assert status == 200 and con["units"] == 6 and len(con["per_step"]) == 3
        assert _get(s.url + "api/heatmap?name=nope.0.img.resid_post&step=0&sample=0")[0] == 400
        status, err = _get(s.url + f"api/heatmap?name={NAME}&step=7&sample=0")
        assert status == 400 and "step=7 out of range 0..2" in err["error"]
    finally:
        s.close()


def test_a_bad_path_fails_before_serving(tmp_path):
    from dit_lens.errors import StoreError

    with pytest.raises(StoreError, match="no such store"):
        serve(str(tmp_path / "missing.zarr"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(StoreError, match="neither a recipe's report.json"):
        serve(str(tmp_path / "empty"))


def test_the_demo_page_is_standalone(stores, tmp_path):
    (tmp_path / "report.md").write_text("# r\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n![f](f.png)\n")
    shutil.copy(next(Path(stores["report"]).glob("*.png")), tmp_path / "f.png")
    page = standalone_html(tmp_path).read_text()
    assert "<table>" in page and 'src="data:image/png;base64,' in page and "f.png" not in page.split("alt=")[-1][5:]


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None:
        if os.environ.get("DIT_LENS_REQUIRE_BROWSER"):
            pytest.fail("no chromium executable, and DIT_LENS_REQUIRE_BROWSER is set (apt-get install chromium)")
        pytest.skip("no chromium executable: apt-get install chromium (Debian) to run the browser tests")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        b.close()


@contextlib.contextmanager
def _page(browser, store: str):
    """The store served on 127.0.0.1 and its page loaded: (page, server URL, every URL the page requested)."""
    s = serve(store)
    try:
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        requests = []
        page.on("request", lambda r: requests.append(r.url))
        page.goto(s.url)
        page.wait_for_function("document.body.dataset.updated || document.getElementById('error').textContent")
        try:
            yield page, s.url, requests
        finally:
            page.close()
    finally:
        s.close()


def _changed(page, what, old):
    page.wait_for_function(f"document.getElementById('heatmap').dataset.{what} !== {json.dumps(old)}")
    return page.eval_on_selector("#heatmap", f"c => c.dataset.{what}")


def test_the_page_follows_name_step_and_channel_over_a_full_store(stores, browser):
    with _page(browser, stores["full"]) as (page, url, requests):
        assert page.inner_text("#error") == ""
        key = page.eval_on_selector("#heatmap", "c => c.dataset.key")
        total = page.eval_on_selector("#heatmap", "c => c.dataset.sum")
        assert key == "double.0.img.resid_post/0/0/mean"
        page.fill("#channel", "7")
        page.dispatch_event("#channel", "change")
        assert _changed(page, "key", key) == "double.0.img.resid_post/0/0/7"
        assert page.eval_on_selector("#heatmap", "c => c.dataset.sum") != total
        page.select_option("#name", NAME)
        assert _changed(page, "key", "double.0.img.resid_post/0/0/7") == f"{NAME}/0/0/7"
        page.select_option("#step", "2")
        assert _changed(page, "key", f"{NAME}/0/0/7") == f"{NAME}/2/0/7"
        page.wait_for_function("document.getElementById('clunote').textContent.includes('IoU')")
        assert "top-k" in page.inner_text("#profnote") and "step 2" in page.inner_text("#consistency")
        shot = page.locator("#heatmap").screenshot()
        assert len(shot) > 2000  # a drawn canvas, not a blank one
        assert all(u.startswith(url) for u in requests), "the page fetched something from elsewhere"


def test_a_stats_only_store_shows_its_statistics(stores, browser):
    with _page(browser, stores["stats"]) as (page, _, _):
        assert page.inner_text("#error") == "" and page.is_hidden("#heatpanel")
        top = page.eval_on_selector("#profile", "c => c.dataset.top")
        page.select_option("#stat", "max_abs")
        page.wait_for_function("document.getElementById('profnote').textContent.startsWith('max_abs')")
        assert top and len(page.locator("#profile").screenshot()) > 1000


def test_a_recipe_report_renders_as_tables_and_figures(stores, browser):
    with _page(browser, stores["report"]) as (page, _, _):
        assert page.inner_text("#error") == ""
        assert page.locator("#report table").count() > 0 and page.locator("#report img").count() > 0
        page.wait_for_function("[...document.querySelectorAll('#report img')].every(i => i.naturalWidth > 0)")


def test_a_corrupt_chunk_is_named_in_the_page(stores, browser, tmp_path):
    bad = tmp_path / "bad.zarr"
    shutil.copytree(stores["full"], bad)
    chunks = sorted((bad / "img.resid_post" / "c").rglob("*"))
    victim = [c for c in chunks if c.is_file()][0]
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF
    victim.write_bytes(bytes(data))
    with _page(browser, str(bad)) as (page, _, _):
        page.wait_for_function("document.getElementById('error').textContent.length > 0")
        text = page.inner_text("#error")
        assert "chunk" in text.lower() and page.is_visible("#error")


def test_a_store_on_s3_is_served_with_its_storage_options():
    from dit_lens.testing import s3_server

    with s3_server() as (_, options):
        url = record(Lens("tiny"), "s3://acts/view.zarr", PROMPTS[:1], names=NAME, num_inference_steps=2,
                     progress=False, storage_options=options)
        s = serve(url, storage_options=options)
        try:
            status, heat = _get(s.url + f"api/heatmap?name={NAME}&step=1&sample=0&channel=3")
            assert status == 200 and heat["rows"] == 16 and len(heat["values"]) == 256
        finally:
            s.close()


def test_an_incomplete_sample_is_marked_and_says_so(browser, tmp_path):
    url = record(Lens("tiny"), str(tmp_path / "part.zarr"), PROMPTS, names=NAME, num_inference_steps=2,
                 samples=[0], progress=False)  # sample 1 never recorded
    with _page(browser, url) as (page, _, _):
        assert page.inner_text("#error") == ""
        page.select_option("#sample", "1")
        page.wait_for_function("document.getElementById('error').textContent.includes('not complete')")
        assert "not complete" in page.inner_text("#step") and "0/2 steps complete" in page.inner_text("#sample")
