"""The built book as a reader sees it: headless Chromium against the site served on localhost.

Needs the built site ``_build/html`` (``make book``; ``make test`` builds it before running
these) and Debian's ``/usr/bin/chromium`` (``make test`` installs it). Chromium is driven
through the Chrome DevTools protocol over ``--remote-debugging-pipe`` (JSON messages on file
descriptors 3 and 4), so no websocket library or driver binary is needed. For each page the
test records every network request the page makes, waits for the load event and for MathJax
to finish, then asks the page itself what it shows. A screenshot of each page is written to
``_build/browser/`` for a person to look at.

The static checks at the end (no external resource referenced by any built file, MathJax
served from ``_static``) need only the built site, not the browser; they carry the ``browser``
mark too, so that ``make test`` runs every check of the built site after building it.
"""

from __future__ import annotations

import base64
import html.parser
import json
import os
import re
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ncf_vs_mf.chapters import REPO_ROOT, resolve_chapter, toc_files

SITE = REPO_ROOT / "_build" / "html"
SCREENSHOTS = REPO_ROOT / "_build" / "browser"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--hide-scrollbars", "--window-size=1280,2000",
]
BOOK_TITLE = "NCF vs. MF, revisited: a companion"
PAGE_TIMEOUT = 60.0

pytestmark = pytest.mark.browser


def _site() -> Path:
    if not (SITE / "index.html").is_file():
        pytest.skip(f"the book is not built ({SITE}/index.html missing): run `make book` "
                    "(`make test` builds it before the browser tests)")
    return SITE


# --------------------------------------------------------------------------------------------
# A static file server on a free localhost port, in a subprocess


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server():
    site = _site()
    for _ in range(5):
        port = _free_port()
        proc = subprocess.Popen(
            [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1",
             "--directory", str(site)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                time.sleep(0.1)
        if proc.poll() is None:
            break
    else:
        pytest.fail("could not start python -m http.server on a free port")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# --------------------------------------------------------------------------------------------
# Chromium over the DevTools protocol (pipe transport)


class Chromium:
    """A headless Chromium and a minimal DevTools protocol client over its debugging pipe."""

    def __init__(self, executable: str = CHROMIUM):
        self.profile = tempfile.mkdtemp(prefix="ncf-vs-mf-chromium-")
        self.log = open(Path(self.profile) / "chromium.log", "w")
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()

        def wire_pipe() -> None:  # in the child: the protocol uses fds 3 (in) and 4 (out)
            read_end, write_end = os.dup(to_browser_r), os.dup(from_browser_w)
            os.dup2(read_end, 3)
            os.dup2(write_end, 4)
            os.set_inheritable(3, True)
            os.set_inheritable(4, True)

        self.proc = subprocess.Popen(
            [executable, *CHROMIUM_FLAGS, f"--user-data-dir={self.profile}",
             "--remote-debugging-pipe", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log,
            close_fds=False, preexec_fn=wire_pipe)
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict] = []

    def _read_message(self, deadline: float) -> dict:
        while b"\0" not in self._buffer:
            remaining = deadline - time.monotonic()
            ready, _, _ = select.select([self._from_browser], [], [], max(0.0, remaining))
            if not ready:
                raise TimeoutError("no answer from Chromium")
            chunk = os.read(self._from_browser, 1 << 20)
            if not chunk:
                raise EOFError(f"Chromium closed its debugging pipe (log: {self.log.name})")
            self._buffer += chunk
        message, _, self._buffer = self._buffer.partition(b"\0")
        return json.loads(message)

    def send(self, method: str, params: dict | None = None, session: str | None = None,
             timeout: float = PAGE_TIMEOUT) -> dict:
        """Call a protocol method and return its result; events that arrive meanwhile are
        kept in :attr:`events`."""
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            reply = self._read_message(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            if "method" in reply:
                self.events.append(reply)

    def wait_for(self, method: str, session: str, timeout: float = PAGE_TIMEOUT,
                 nth: int = 1) -> dict:
        """The ``nth`` event ``method`` of ``session`` (waiting for it if need be)."""
        deadline = time.monotonic() + timeout
        while True:
            seen = [e for e in self.events
                    if e["method"] == method and e.get("sessionId") == session]
            if len(seen) >= nth:
                return seen[nth - 1]
            reply = self._read_message(deadline)
            if "method" in reply:
                self.events.append(reply)

    def close(self) -> None:
        try:
            self.send("Browser.close", timeout=10)
        except Exception:  # noqa: BLE001 - it is going away anyway
            pass
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._to_browser)
        os.close(self._from_browser)
        self.log.close()
        shutil.rmtree(self.profile, ignore_errors=True)


# What the page reports about itself once MathJax is done.
PAGE_PROBE = r"""
(() => {
  const main = document.querySelector('main') || document.body;
  const images = [...main.querySelectorAll('img')].map(img => ({
    src: img.currentSrc || img.src, complete: img.complete,
    width: img.naturalWidth, height: img.naturalHeight}));
  const rawMath = [...document.querySelectorAll('.math')].filter(el =>
    [...el.childNodes].some(n => n.nodeType === Node.TEXT_NODE &&
                                 /\\\(|\\\[|\$\$/.test(n.textContent)))
    .map(el => el.textContent.slice(0, 80));
  const h1 = main.querySelector('h1');
  return {
    title: document.title,
    h1: h1 ? h1.textContent.replace(/[#¶]\s*$/, '').trim() : null,
    images: images,
    mathElements: document.querySelectorAll('.math').length,
    mjxContainers: document.querySelectorAll('mjx-container').length,
    mathjaxErrors: document.querySelectorAll('mjx-merror').length,
    rawMath: rawMath,
    textLength: main.innerText.length,
  };
})()
"""

WAIT_FOR_MATHJAX = """
new Promise((resolve) => {
  const done = () => (window.MathJax && MathJax.startup && MathJax.startup.promise)
      ? MathJax.startup.promise.then(() => resolve('typeset'))
      : resolve(document.querySelector('.math') ? 'no-mathjax' : 'no-math');
  if (document.readyState === 'complete') { done(); }
  else { window.addEventListener('load', done); }
})
"""


@dataclass
class PageReport:
    url: str
    info: dict
    requests: list[str] = field(default_factory=list)
    responses: dict[str, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    exceptions: list[str] = field(default_factory=list)
    screenshot: Path | None = None


def load_page(browser: Chromium, url: str, screenshot: Path | None = None,
              loads: int = 1) -> PageReport:
    """Open ``url`` in a new tab and report what it loaded; ``loads`` > 1 follows redirects
    (the site's index.html is a meta refresh to the first chapter: two page loads)."""
    target = browser.send("Target.createTarget", {"url": "about:blank"})["targetId"]
    session = browser.send("Target.attachToTarget",
                           {"targetId": target, "flatten": True})["sessionId"]
    for domain in ("Page", "Network", "Runtime"):
        browser.send(f"{domain}.enable", session=session)
    first_event = len(browser.events)
    browser.send("Page.navigate", {"url": url}, session=session)
    browser.wait_for("Page.loadEventFired", session, nth=loads)
    state = browser.send("Runtime.evaluate", {"expression": WAIT_FOR_MATHJAX,
                                              "awaitPromise": True}, session=session)
    info = browser.send("Runtime.evaluate", {"expression": PAGE_PROBE, "returnByValue": True},
                        session=session)["result"]["value"]
    info["mathjax"] = state["result"].get("value")
    report = PageReport(url, info)
    if screenshot is not None:
        shot = browser.send("Page.captureScreenshot", {"format": "png"}, session=session)
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        screenshot.write_bytes(base64.b64decode(shot["data"]))
        report.screenshot = screenshot
    browser.send("Target.closeTarget", {"targetId": target})
    for event in browser.events[first_event:]:
        if event.get("sessionId") != session:
            continue
        params = event.get("params", {})
        if event["method"] == "Network.requestWillBeSent":
            report.requests.append(params["request"]["url"])
        elif event["method"] == "Network.responseReceived":
            report.responses[params["response"]["url"]] = params["response"]["status"]
        elif event["method"] == "Network.loadingFailed":
            report.failures.append(f"{params.get('errorText')} ({params.get('type')})")
        elif event["method"] == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            report.exceptions.append(details.get("exception", {}).get("description")
                                     or details.get("text", "?"))
    return report


@pytest.fixture(scope="module")
def browser():
    _site()
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"{CHROMIUM} not found: install Debian's chromium "
                    "(apt-get install chromium; `make test` does)")
    chromium = Chromium()
    try:
        yield chromium
    finally:
        chromium.close()


def _page_path(doc: str) -> str:
    return f"{doc}.html"


def _toc_docs() -> list[str]:
    return toc_files(REPO_ROOT / "_toc.yml")


# --------------------------------------------------------------------------------------------
# Tests in the browser


@pytest.mark.parametrize("doc", ["index", *_toc_docs()])
def test_page_loads_only_from_the_site_without_errors(browser, server, doc):
    """Every page of the book: nothing from another host, no failed load, no JS exception."""
    redirects = 'http-equiv="Refresh"' in (_site() / _page_path(doc)).read_text(encoding="utf-8")
    report = load_page(browser, f"{server}/{_page_path(doc)}",
                       screenshot=SCREENSHOTS / f"{doc.replace('/', '_')}.png",
                       loads=2 if redirects else 1)
    external = [u for u in report.requests
                if not (u.startswith(server + "/") or u.startswith(("data:", "blob:")))]
    assert not external, f"{doc}: requests to other hosts: {external}"
    bad = {u: s for u, s in report.responses.items()
           if s >= 400 and not u.endswith("/favicon.ico")}
    assert not bad, f"{doc}: failed responses: {bad}"
    assert not report.failures, f"{doc}: failed loads: {report.failures}"
    assert not report.exceptions, f"{doc}: JavaScript exceptions: {report.exceptions}"
    assert report.info["textLength"] > 200, f"{doc}: the page looks empty: {report.info}"


def test_definitions_page_shows_title_figures_and_typeset_math(browser, server):
    chapter = resolve_chapter("definitions")
    report = load_page(browser, f"{server}/book/definitions.html",
                       screenshot=SCREENSHOTS / "definitions-check.png")
    info = report.info
    # the title a reader sees in the tab and at the top of the page
    assert info["title"].startswith(chapter.title), info["title"]
    assert BOOK_TITLE in info["title"]
    assert info["h1"] == chapter.title
    # figures: the browser fetched them from the site and decoded them
    figures = [img for img in info["images"] if "/_images/" in img["src"]]
    assert figures, f"no figure on the Definitions page: {info['images']}"
    for img in figures:
        assert img["complete"] and img["width"] > 0 and img["height"] > 0, img
        assert report.responses.get(img["src"]) == 200, (img["src"], report.responses)
        with urllib.request.urlopen(img["src"], timeout=10) as response:
            body = response.read()
        assert body[:8] == b"\x89PNG\r\n\x1a\n" or body.lstrip().startswith((b"<svg", b"<?xml"))
    # math: MathJax (served from the site) typeset every formula, none is left as raw TeX
    mathjax = [u for u in report.requests
               if u.split("?")[0].endswith("/_static/mathjax/tex-chtml.js")]
    assert mathjax and report.responses.get(mathjax[0]) == 200, report.requests
    assert info["mathjax"] == "typeset"
    assert info["mathElements"] > 0
    assert info["mjxContainers"] >= info["mathElements"], info
    assert info["mathjaxErrors"] == 0
    assert not info["rawMath"], f"math left untypeset: {info['rawMath'][:5]}"


def test_screenshot_is_not_blank(browser, server):
    from PIL import Image

    report = load_page(browser, f"{server}/book/definitions.html",
                       screenshot=SCREENSHOTS / "definitions-shot.png")
    with Image.open(report.screenshot) as image:
        colors = image.convert("L").getcolors(maxcolors=1 << 16)
    assert colors is None or len(colors) > 16, "the screenshot is (nearly) one colour"


# --------------------------------------------------------------------------------------------
# Static checks of the built files


class _ResourceFinder(html.parser.HTMLParser):
    """URLs a browser loads by itself from a page: scripts, styles, images, frames, fonts."""

    LOADING_LINKS = {"stylesheet", "preload", "modulepreload", "icon", "shortcut",
                     "apple-touch-icon", "manifest", "prefetch", "dns-prefetch",
                     "preconnect"}

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag in ("script", "img", "iframe", "source", "video", "audio", "embed", "track",
                   "input") and attrs.get("src"):
            self.urls.append(attrs["src"])
        if tag == "img" and attrs.get("srcset"):
            self.urls.extend(part.split()[0] for part in attrs["srcset"].split(","))
        if tag == "link" and attrs.get("href"):
            if set((attrs.get("rel") or "").lower().split()) & self.LOADING_LINKS:
                self.urls.append(attrs["href"])
        if tag == "object" and attrs.get("data"):
            self.urls.append(attrs["data"])
        if attrs.get("style"):
            self.urls.extend(re.findall(r"url\(\s*['\"]?([^'\")]+)", attrs["style"]))


def _is_external(url: str) -> bool:
    return bool(re.match(r"^(https?:)?//", url.strip(), flags=re.IGNORECASE))


def test_built_pages_reference_no_external_resources():
    site = _site()
    problems = []
    for page in sorted(site.rglob("*.html")):
        finder = _ResourceFinder()
        finder.feed(page.read_text(encoding="utf-8"))
        problems += [f"{page.relative_to(site)}: {u}" for u in finder.urls if _is_external(u)]
    for sheet in sorted(site.rglob("*.css")):
        text = sheet.read_text(encoding="utf-8", errors="replace")
        for url in re.findall(r"(?:url\(\s*['\"]?|@import\s+['\"])([^'\")]+)", text):
            if _is_external(url):
                problems.append(f"{sheet.relative_to(site)}: {url}")
    assert not problems, "resources loaded from other hosts:\n" + "\n".join(problems)


def test_mathjax_is_bundled_with_the_site():
    site = _site()
    page = (site / "book" / "definitions.html").read_text(encoding="utf-8")
    scripts = re.findall(r"<script[^>]*\bsrc=\"([^\"]*mathjax[^\"]*)\"", page, flags=re.I)
    assert [s.split("?")[0] for s in scripts] == ["../_static/mathjax/tex-chtml.js"], scripts
    assert (site / "_static" / "mathjax" / "tex-chtml.js").is_file()
    fonts = list((site / "_static" / "mathjax" / "output" / "chtml" / "fonts").rglob("*.woff*"))
    assert fonts, "MathJax's CHTML fonts are not bundled"
