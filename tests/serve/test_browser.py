"""`scale serve` in a real browser: the process on a free loopback port, headless Chromium,
a query by clicking, result cards whose images loaded, a screenshot in the test's tmp dir.

Chromium is Debian's `chromium` package driven by Playwright for Python (`executable_path`);
.ci/run installs it. The test skips, saying why, only where no browser or no Playwright exists.
Set SCALE_SCREENSHOT_TO=docs/serve.png to copy the screenshot there (how the README's is made).
"""
from __future__ import annotations

import os
import queue
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync"]
ALL_IMAGES_LOADED = """() => {
  const imgs = [...document.querySelectorAll('#results .card img')];
  return imgs.length > 0 && imgs.every(i => i.complete && i.naturalWidth > 0);
}"""


def _answered(page, action, timeout=60_000) -> None:
    """Do `action` (a click, a selection), then wait for the page to draw the new answer, images loaded."""
    before = int(page.locator("#results").get_attribute("data-renders") or 0)
    action()
    page.wait_for_function(f"() => +(document.querySelector('#results').dataset.renders || 0) > {before}",
                           timeout=timeout)
    page.wait_for_function(ALL_IMAGES_LOADED, timeout=30_000)


def _chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    if Path("/usr/bin/chromium").exists():
        return "/usr/bin/chromium"
    pytest.skip("no Chromium here (apt-get install chromium; .ci/run does it where apt is available)")


@pytest.fixture
def server(video_index):
    """`scale serve --port 0` as a subprocess; yields its URL; stopped with SIGTERM afterwards."""
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen([sys.executable, "-m", "cli.main", "serve", "--index", str(video_index["index"]),
                             "--host", "127.0.0.1", "--port", "0"], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()
    try:
        url = None
        while url is None:
            try:
                line = lines.get(timeout=120)
            except queue.Empty:
                pytest.fail("scale serve printed no URL within 120 s")
            if "http://" in line:
                url = line[line.index("http://"):].split()[0]
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    err = proc.stderr.read()
    # SIGTERM stops the server like every scale command: status 143 and one line (or, when the signal
    # lands inside uvicorn's own handler, its graceful stop and the signal's own status)
    assert proc.returncode in (0, -15, 143) and "Traceback" not in err, err
    if proc.returncode == 143:
        assert err.strip().splitlines()[-1].startswith("scale: interrupted by SIGTERM: the server stopped"), err


def test_query_by_clicking_shows_cards_with_loaded_images(server, video_index, tmp_path):
    executable = _chromium()
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright for Python is not installed")
    ids, labels, names = video_index["ids"], video_index["labels"], video_index["class_names"]
    query = ids[2]
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 800})
            failed = []
            page.on("requestfailed", lambda r: failed.append(r.url))
            page.goto(server)
            assert page.locator("#n-videos").inner_text() == str(len(ids))
            page.fill("#video-id", query)
            _answered(page, lambda: page.click("#by-id button[type=submit]"))
            cards = page.locator("#results .card")
            assert cards.count() == len(ids) - 1  # the query itself (its group) is excluded by default
            assert query not in page.locator("#results").inner_text()
            hits = page.locator("#results .card.hit").count()
            assert hits == sum(1 for i, lab in enumerate(labels) if lab == labels[2] and ids[i] != query)
            assert page.locator("#results .card.miss").count() == cards.count() - hits
            assert page.locator("#precision").inner_text().startswith("P@")
            assert names[labels[2]] in page.locator("#query-summary").inner_text()
            shot = tmp_path / "serve.png"
            page.screenshot(path=str(shot), full_page=True)

            # hover plays the preview (an animated WebP), which loads too
            first = cards.first
            first.hover()
            page.wait_for_function("""() => { const i = document.querySelector('#results .card img');
                return i.src.endsWith('preview.webp') && i.complete && i.naturalWidth > 0; }""", timeout=15_000)

            # "more like this" on the second card queries that video
            other = cards.nth(1).get_attribute("data-video-id")
            _answered(page, lambda: cards.nth(1).locator("button.more").click())
            assert other in page.locator("#query-summary").inner_text()
            assert other not in [c.get_attribute("data-video-id") for c in page.locator("#results .card").all()]
            assert page.url.endswith("?id=" + other.replace("/", "%2F"))

            # a video file from the disk, embedded by the server (the same file in the gallery is excluded)
            page.set_input_files("#video-file", str(video_index["videos"] / ids[5]))
            _answered(page, lambda: page.click("#by-file button[type=submit]"), timeout=120_000)
            assert Path(ids[5]).name in page.locator("#query-summary").inner_text()
            assert page.locator("#results .card").count() == len(ids) - 1
            assert page.locator("#status").inner_text() == ""

            # a class filter keeps that class only
            _answered(page, lambda: page.select_option("#class-filter", names[0]))
            classes = page.locator("#results .card .cls").all_inner_texts()
            assert classes and set(classes) == {names[0]}
            _answered(page, lambda: page.select_option("#class-filter", ""))
            assert page.locator("#results .card").count() == len(ids) - 1
            assert page.locator("#pager").is_hidden()  # one page only
            assert not failed, failed
        finally:
            browser.close()
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000
    target = os.environ.get("SCALE_SCREENSHOT_TO")
    if target:  # for the README: 3/4 size, 64 colours keep the PNG small
        from PIL import Image

        img = Image.open(shot).convert("RGB")
        img = img.resize((img.width * 3 // 4, img.height * 3 // 4), Image.LANCZOS)
        img.quantize(64, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE).save(target, optimize=True)
