"""End to end: the real server and Debian's Chromium (driven by Playwright) on the compose page.

Playwright drives the system browser at /usr/bin/chromium (`scripts/test.sh` installs it); its own
browser downloads are never used. The screenshot lands in test-artifacts/compose.png.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from hashrec import api
from hashrec.models import MODELS, create
from hashrec.server import create_app, running

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
MODEL = "nb" if "nb" in MODELS else "popularity"  # nb reads the text; popularity is the fallback

pytestmark = pytest.mark.skipif(
    shutil.which(CHROMIUM) is None, reason=f"{CHROMIUM} not installed (scripts/test.sh installs Debian's chromium)"
)


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield browser
        browser.close()


def _open(browser, url):
    page = browser.new_page(viewport={"width": 900, "height": 640}, device_scale_factor=1)
    page.goto(url)
    return page


def _type(page, text, chips=True):
    """Type like a person, then let the debounced request and its answer settle."""
    page.get_by_label("Your post").press_sequentially(text, delay=20)
    page.wait_for_load_state("networkidle")  # 500 ms without traffic: longer than the 250 ms debounce
    if chips:
        page.locator("button.chip").first.wait_for()


@pytest.fixture(scope="module")
def model(small_split):
    return api.train(MODEL, small_split)  # with small_split's dev posts: calibrated


@pytest.fixture(scope="module")
def url(model):
    with running(create_app(model)) as base:
        yield base


@pytest.fixture
def page(browser, url):
    page = _open(browser, url)
    yield page
    page.close()


def test_chip_click_adds_weibo_hashtag(page):
    _type(page, "钟南山院士说疫情拐点还没有到来，武汉加油")
    first = page.locator("button.chip").first
    tag = first.get_attribute("data-hashtag")
    shown = page.locator("button.chip .score").all_inner_texts()  # the calibrated confidence, "62%"
    assert shown and all(re.fullmatch(r"(\d{1,3}|<1)%", s) for s in shown), shown
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "compose.png"), full_page=True)
    first.click()
    assert page.get_by_label("Your post").input_value().endswith(f"#{tag}# ")
    assert page.locator(f'button.chip[data-hashtag="{tag}"]').count() == 0
    page.screenshot(path=str(ARTIFACTS / "compose-after-click.png"), full_page=True)


def test_chips_are_keyboard_operable(page):
    box = page.get_by_label("Your post")
    _type(page, "Wuhan stay strong, thanks to all doctors and nurses")
    box.focus()
    page.keyboard.press("Tab")
    focused = page.evaluate("document.activeElement.dataset.hashtag")
    assert focused
    page.keyboard.press("Enter")
    assert f"#{focused}" in box.input_value()
    after = page.evaluate("document.activeElement.dataset.hashtag")  # focus stays in the chip list
    assert after and after != focused


def test_english_post_gets_twitter_form(browser, tweeteval_sample):
    english = create("popularity").fit(tweeteval_sample["train"][:2000])
    with running(create_app(english)) as base:
        page = _open(browser, base)
        _type(page, "What a sunset at the beach tonight")
        first = page.locator("button.chip").first
        tag = first.get_attribute("data-hashtag")
        # fitted without dev posts: no calibrated confidence, so no number, and the page says why
        assert page.locator("button.chip .score").all_inner_texts() == [""] * page.locator("button.chip").count()
        assert "no calibrated confidence" in page.locator("#model").inner_text()
        first.click()
        assert page.get_by_label("Your post").input_value() == f"What a sunset at the beach tonight #{tag} "


def test_nothing_fits_below_the_servers_threshold(browser, model):
    with running(create_app(model, min_confidence=0.5)) as base:  # `hashrec serve --min-confidence 0.5`
        page = _open(browser, base)
        _type(page, "What a sunset at the beach tonight", chips=False)  # English on a Chinese model
        page.get_by_text("no hashtag fits this post").wait_for()
        assert page.locator("button.chip").count() == 0
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "compose-nothing-fits.png"), full_page=True)


@pytest.mark.slow  # fitting even a tiny acnn takes 15-50 s on the shared machine
def test_trigger_words_are_highlighted_with_an_attention_model(browser, weibo_sample):
    acnn = create("acnn", dim=16, n_maps=16, local_dim=16, hidden=32, epochs=1, embeddings="random").fit(
        weibo_sample["train"][:2000]
    )  # seconds to fit
    with running(create_app(acnn)) as base:
        page = _open(browser, base)
        page.get_by_text("explains").wait_for()  # /model said it can explain
        _type(page, "钟南山院士说疫情拐点还没有到来")
        marks = page.locator("#mirror mark")
        marks.first.wait_for()
        assert all(m in "钟南山院士说疫情拐点还没有到来" for m in marks.all_inner_texts())
        page.screenshot(path=str(ARTIFACTS / "compose-explain.png"), full_page=True)


def test_model_details_are_a_table_not_raw_json(page):
    page.get_by_text("model details").click()
    table = page.locator("#model-table")
    table.locator("tr").first.wait_for()
    rows = dict(zip(table.locator("th").all_inner_texts(), table.locator("td").all_inner_texts()))
    assert rows["name"] == MODEL and int(rows["labels"]) > 0 and "limits.max_k" in rows
    assert "{" not in table.inner_text()


def test_trending_hashtags_and_the_index_size_show_beside_the_compose_box(browser, small_split, tmp_path):
    from hashrec.data import Post
    from hashrec.postlog import PostLog

    log = PostLog(tmp_path / "state")
    log.append([Post(f"第{i}条新闻", ("新冠疫苗",), 1584489600.0) for i in range(3)], arrival=0.0)
    log.close()
    with running(create_app(api.train("popularity", small_split), state=tmp_path / "state")) as base:
        page = _open(browser, base)
        page.locator("#trends li").first.wait_for()
        assert page.locator("#trends li").first.get_attribute("data-hashtag") == "新冠疫苗"
        assert "3 posts" in page.locator("#trends li").first.inner_text()
        assert "index: 2,003 posts" in page.locator("#index").inner_text()
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "compose-trending.png"), full_page=True)
