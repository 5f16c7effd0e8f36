"""`scale serve` in a real browser: the process on a free loopback port, headless Chromium,
the gallery it opens on, a query by clicking, result cards whose images loaded, an upload, a
phone-width page without sideways scrolling, a screenshot in the test's tmp dir; and another
web page (a second origin on 127.0.0.1) whose cross-site POSTs the server refuses.

Chromium is Debian's `chromium` package driven by Playwright for Python (`executable_path`);
.ci/run installs it. The test skips, saying why, only where no browser or no Playwright exists.
Set SCALE_SCREENSHOT_TO=docs/serve.png to copy the screenshot there (how the README's is made).
"""
from __future__ import annotations

import functools
import http.server
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
NO_SIDEWAYS_SCROLL = "() => document.documentElement.scrollWidth <= document.documentElement.clientWidth"
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


def _opened(page, url: str) -> None:
    """Open the page and wait until it drew its first answer (the gallery), images loaded."""
    page.goto(url)
    page.wait_for_function("() => +(document.querySelector('#results').dataset.renders || 0) > 0", timeout=60_000)
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


def _launch(p):
    return p.chromium.launch(executable_path=_chromium(), args=CHROMIUM_ARGS)


def test_query_by_clicking_shows_cards_with_loaded_images(server, video_index, tmp_path):
    _chromium()
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright for Python is not installed")
    ids, labels, names = video_index["ids"], video_index["labels"], video_index["class_names"]
    query = ids[2]
    with sync_api.sync_playwright() as p:
        browser = _launch(p)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 800})
            failed = []
            page.on("requestfailed", lambda r: failed.append(r.url))
            # the page opens on the gallery: every video, a pager with the total, images loaded
            _opened(page, server)
            assert page.locator("#n-videos").inner_text() == str(len(ids))
            assert page.locator("#results").get_attribute("data-mode") == "gallery"
            assert page.locator("#results .card").count() == len(ids)
            assert page.locator("#page-label").inner_text() == f"1–{len(ids)} of {len(ids)}"
            _answered(page, lambda: page.select_option("#limit", "12"))  # 12 per page: still one page of 12
            _answered(page, lambda: page.select_option("#class-filter", names[1]))
            in_class = [v for v, lab in zip(ids, labels) if lab == 1]
            assert [c.get_attribute("data-video-id") for c in page.locator("#results .card").all()] == in_class
            assert page.locator("#page-label").inner_text() == f"1–{len(in_class)} of {len(in_class)}"
            _answered(page, lambda: page.select_option("#class-filter", ""))
            _answered(page, lambda: page.select_option("#limit", "24"))

            # clicking a gallery card's image queries that video
            _answered(page, lambda: page.locator(f'#results .card[data-video-id="{query}"] .thumb').click())
            assert page.locator("#results").get_attribute("data-mode") == "query"
            cards = page.locator("#results .card")
            assert cards.count() == len(ids) - 1  # the query itself (its group) is excluded by default
            assert query not in page.locator("#results").inner_text()
            hits = page.locator("#results .card.hit").count()
            assert hits == sum(1 for i, lab in enumerate(labels) if lab == labels[2] and ids[i] != query)
            assert page.locator("#results .card.miss").count() == cards.count() - hits
            assert page.locator("#precision").inner_text().startswith("P@")
            assert names[labels[2]] in page.locator("#query-summary").inner_text()
            assert page.locator("#video-id").input_value() == query
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
            # under a class filter P@k says that it counts all classes
            assert "the class filter does not apply" not in page.locator("#precision").inner_text()
            _answered(page, lambda: page.select_option("#class-filter", names[0]))
            assert "the class filter does not apply" in page.locator("#precision").inner_text()
            _answered(page, lambda: page.select_option("#class-filter", ""))

            # a video file from the disk, embedded by the server (the same file in the gallery is excluded);
            # the query card shows the upload's own poster and the id box no longer shows the last id
            page.set_input_files("#video-file", str(video_index["videos"] / ids[5]))
            _answered(page, lambda: page.click("#by-file button[type=submit]"), timeout=120_000)
            assert Path(ids[5]).name in page.locator("#query-summary").inner_text()
            assert page.locator("#results .card").count() == len(ids) - 1
            assert page.locator("#status").inner_text() == ""
            assert page.locator("#video-id").input_value() == ""
            page.wait_for_function("""() => { const i = document.querySelector('#query-poster');
                return i && i.src.includes('/api/uploads/') && i.complete && i.naturalWidth === 240; }""", timeout=15_000)

            # a class filter keeps that class only; P@k says it counts all classes
            _answered(page, lambda: page.select_option("#class-filter", names[0]))
            classes = page.locator("#results .card .cls").all_inner_texts()
            assert classes and set(classes) == {names[0]}
            _answered(page, lambda: page.select_option("#class-filter", ""))
            assert page.locator("#results .card").count() == len(ids) - 1
            assert page.locator("#page-label").inner_text() == f"1–{len(ids) - 1} of {len(ids) - 1}"
            assert page.locator("#next").is_disabled() and page.locator("#prev").is_disabled()  # one page only

            # a broken file: the message is for a person (no errno, no C function names)
            bad = tmp_path / "broken.mp4"
            bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(4000))
            page.set_input_files("#video-file", str(bad))
            page.click("#by-file button[type=submit]")
            page.wait_for_function("() => document.querySelector('#status').classList.contains('error')", timeout=120_000)
            message = page.locator("#status").inner_text()
            assert "broken.mp4" in message and "Errno" not in message and "()" not in message, message
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


def test_phone_width_needs_no_sideways_scrolling(server, video_index):
    """At 390 px (an iPhone 12-15) the gallery, a query with P@k and a class filter fit the width; at 360 px too."""
    _chromium()
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright for Python is not installed")
    with sync_api.sync_playwright() as p:
        browser = _launch(p)
        try:
            page = browser.new_page(viewport={"width": 390, "height": 800})
            _opened(page, server)
            assert page.evaluate(NO_SIDEWAYS_SCROLL), page.evaluate("document.documentElement.scrollWidth")
            tops = page.evaluate("[...document.querySelectorAll('#results .card')].slice(0, 2).map(c => c.offsetTop)")
            assert tops[0] == tops[1]  # two cards a row, not one long column
            _answered(page, lambda: page.locator("#results .card .thumb").first.click())
            _answered(page, lambda: page.select_option("#class-filter", video_index["class_names"][0]))
            assert page.locator("#precision").is_visible()
            assert page.evaluate(NO_SIDEWAYS_SCROLL), page.evaluate("document.documentElement.scrollWidth")
            box = page.locator("#checkpoint").bounding_box()
            assert box["x"] + box["width"] <= 390  # the checkpoint is shown whole, wrapped inside the width
            assert page.locator("#checkpoint").evaluate("e => e.scrollWidth <= e.clientWidth")
            page.set_viewport_size({"width": 360, "height": 740})  # the narrowest phones in use
            assert page.evaluate(NO_SIDEWAYS_SCROLL), page.evaluate("document.documentElement.scrollWidth")
        finally:
            browser.close()


class _QuietFiles(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


ATTACK_PAGE = """<!doctype html><html><body>
<form id="f" method="POST" enctype="multipart/form-data" action="{target}api/search">
  <input name="limit" value="5"><textarea name="file">not a file but a field</textarea></form>
<script>
window.fetchResult = "pending";
const body = new FormData();
body.append("file", new Blob(["RIFF0000AVI LIST"], {{type: "video/x-msvideo"}}), "evil.avi");
fetch("{target}api/search", {{method: "POST", mode: "no-cors", body}})
  .then(() => {{ window.fetchResult = "sent"; }}, () => {{ window.fetchResult = "failed"; }});
</script></body></html>"""


def test_another_origin_cannot_post_to_the_server(server, tmp_path):
    """A page on 127.0.0.1 at another port (another origin, same machine) tries a cross-site fetch
    and a cross-site form post; the server answers both 403 before reading them."""
    _chromium()
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright for Python is not installed")
    (tmp_path / "attack.html").write_text(ATTACK_PAGE.format(target=server))
    handler = functools.partial(_QuietFiles, directory=str(tmp_path))
    evil = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=evil.serve_forever, daemon=True).start()
    try:
        with sync_api.sync_playwright() as p:
            browser = _launch(p)
            try:
                page = browser.new_page()
                answers = []
                page.on("response", lambda r: answers.append((r.url, r.request.method, r.status)))
                page.goto(f"http://127.0.0.1:{evil.server_address[1]}/attack.html")
                page.wait_for_function("() => window.fetchResult !== 'pending'", timeout=30_000)
                with page.expect_navigation():
                    page.evaluate("document.getElementById('f').submit()")
                assert page.url == server + "api/search"
                refusal = page.locator("body").inner_text()
                posts = [status for url, method, status in answers if method == "POST" and url.startswith(server)]
                assert posts == [403, 403], answers  # the fetch and the form post
                assert "same-site request refused" in refusal, refusal  # another port is another origin, same site
                # the server's own page, same browser: its POSTs go through
                _opened(page, server)
                status = page.evaluate("""async () => (await fetch('/api/search', {method: 'POST',
                    headers: {'Content-Type': 'application/json'}, body: JSON.stringify({video_id: 'no/such'})})).status""")
                assert status == 404  # past the guard: the id is unknown, nothing was refused
            finally:
                browser.close()
    finally:
        evil.shutdown()
