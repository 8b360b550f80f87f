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

What a reader sees is checked on every page of ``_toc.yml`` (and ``index``), each page loaded
once in its own tab and probed by one script at each of two window widths (:data:`WIDTHS`: a
1280-px desktop window and a 390-px phone, emulated): nothing in the article column runs past
its right edge (scroll containers excepted), every image is a numbered figure with alt text
in words, no ``NaN`` or ``<NA>`` anywhere in the column, and every folded solution is hidden
until its toggle is clicked and shown after. Static checks over the built files: glossary and
citation links point at ids that exist, and the book has at least the figures, ``{numref}``
references, exercises, glossary entries and citations of the thresholds below.

Environment: ``NCF_VS_MF_SITE`` names the built site to check (default ``_build/html``, e.g.
``NCF_VS_MF_SITE=/tmp/me/_build/html`` for a book built with ``--path-output /tmp/me``),
``NCF_VS_MF_TOC`` the table of contents whose pages are visited (default ``_toc.yml``),
``CHROMIUM`` the browser. Screenshots go to ``browser/`` beside the site's ``html/`` folder.
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

SITE = Path(os.environ.get("NCF_VS_MF_SITE") or REPO_ROOT / "_build" / "html").resolve()
TOC = Path(os.environ.get("NCF_VS_MF_TOC") or REPO_ROOT / "_toc.yml").resolve()
SCREENSHOTS = SITE.parent / "browser"
FIXTURE_PAGE = Path(__file__).with_name("browser_fixture.html")
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--hide-scrollbars", "--window-size=1280,2000",
]
BOOK_TITLE = "NCF vs. MF, revisited: a companion"
PAGE_TIMEOUT = 60.0

# Window widths a reader's page is checked at: name -> Emulation.setDeviceMetricsOverride.
WIDTHS = {
    1280: {"width": 1280, "height": 2000, "deviceScaleFactor": 1, "mobile": False},
    390: {"width": 390, "height": 844, "deviceScaleFactor": 1, "mobile": True},
}
OVERFLOW_TOLERANCE_PX = 1  # sub-pixel rounding of a box's right edge is not an overflow

# What the whole book must have (static counts over the built pages).
MIN_NUMBERED_FIGURES = 20  # span.caption-number "Figure ..." inside a figcaption
MIN_NUMREF_LINKS = 10  # {numref} references rendered as span.std-numref
MIN_EXERCISES_PER_CODE_PAGE = 3  # div.exercise on every page with code cells
MIN_GLOSSARY_ENTRIES = 10  # terms (dt) on the glossary page
MIN_REFERENCE_ENTRIES = 10  # entries (div.citation) on the references page
MIN_CITATIONS = 15  # span.bibtex-citation over all pages
GLOSSARY_PAGE = "book/glossary"
REFERENCES_PAGE = "book/references"
# Pages with code cells that are not chapters a reader works through: the provenance appendix
# (generated from the provenance records) needs no exercises.
PAGES_WITHOUT_EXERCISES = {"book/provenance", "book/at_a_glance", "book/teaching"}  # overviews

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
    extra: dict = field(default_factory=dict)


def load_page(browser: Chromium, url: str, screenshot: Path | None = None,
              loads: int = 1, inspect=None) -> PageReport:
    """Open ``url`` in a new tab and report what it loaded; ``loads`` > 1 follows redirects
    (the site's index.html is a meta refresh to the first chapter: two page loads). The tab
    has the 1280-px desktop metrics of :data:`WIDTHS`; ``inspect(browser, session)``, if
    given, runs in the loaded tab before it closes and its result is ``report.extra``."""
    target = browser.send("Target.createTarget", {"url": "about:blank"})["targetId"]
    session = browser.send("Target.attachToTarget",
                           {"targetId": target, "flatten": True})["sessionId"]
    for domain in ("Page", "Network", "Runtime"):
        browser.send(f"{domain}.enable", session=session)
    browser.send("Emulation.setDeviceMetricsOverride", WIDTHS[1280], session=session)
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
    if inspect is not None:
        report.extra = inspect(browser, session)
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
    return toc_files(TOC)


# --------------------------------------------------------------------------------------------
# What a reader sees: one probe script per page and width, and the solutions' toggles

# The main article column of a page, as the probes find it.
ARTICLE_JS = ("(document.querySelector('main article.bd-article') "
              "|| document.querySelector('main') || document.body)")

# Helpers the probes share, installed once in each tab as window.__ncf.
PROBE_HELPERS = r"""
window.__ncf = (() => {
  const article = () => %(article)s;
  const snippet = (el) => (el ? ((el.innerText || el.textContent || '')
      .replace(/\s+/g, ' ').trim().slice(0, 70)) : '');
  const describe = (el) => {
    if (!el) return null;
    const r = el.getBoundingClientRect();
    return {tag: el.tagName.toLowerCase(), cls: (el.getAttribute('class') || '').trim(),
            id: el.id || '', text: snippet(el), left: Math.round(r.left),
            right: Math.round(r.right), width: Math.round(r.width)};
  };
  const heading = (el) => {  // the title of the (innermost titled) section an element is in
    for (let s = el.closest('section'); s; s = s.parentElement && s.parentElement.closest(
         'section')) {
      const h = s.querySelector(':scope > h1, :scope > h2, :scope > h3, :scope > h4');
      if (h) return snippet(h).replace(/#$/, '').trim();
    }
    return '';
  };
  const scrolls = (el) => ['auto', 'scroll'].includes(getComputedStyle(el).overflowX);
  const solutions = () => [...article().querySelectorAll('div.solution')];
  const shown = (el) => {
    const r = el.getBoundingClientRect(), s = getComputedStyle(el);
    return r.height > 0 && r.width > 0 && s.display !== 'none' && s.visibility !== 'hidden';
  };
  const solutionState = (i) => {
    const sol = solutions()[i];
    const title = sol.querySelector(':scope > .admonition-title');
    const button = title && title.querySelector('button.toggle-button');
    const body = [...sol.children].filter(c => !c.classList.contains('admonition-title'));
    return {title: snippet(title) || sol.id, id: sol.id, button: !!button,
            dropdown: sol.classList.contains('dropdown'), bodyParts: body.length,
            shown: body.some(shown), expanded: button && button.getAttribute('aria-expanded')};
  };
  const aimAtToggle = (i) => {  // scroll the toggle into view; where a click should land
    const sol = solutions()[i];
    const title = sol.querySelector(':scope > .admonition-title');
    const button = title && title.querySelector('button.toggle-button');
    if (!button) return null;
    button.scrollIntoView({block: 'center', inline: 'nearest'});
    const r = button.getBoundingClientRect();
    const x = r.left + r.width / 2, y = r.top + r.height / 2;
    const hit = document.elementFromPoint(x, y);
    return {x: x, y: y, width: r.width, height: r.height,
            reachable: !!hit && (button.contains(hit) || title.contains(hit)),
            hit: describe(hit)};
  };
  return {article, snippet, describe, heading, scrolls, solutions, solutionState,
          aimAtToggle};
})();
true
""" % {"article": ARTICLE_JS}

# Everything a reader sees at the current window width, in one evaluation.
READER_PROBE = r"""
(() => {
  const {article, snippet, describe, heading, scrolls, solutions} = window.__ncf;
  const TOL = %(tolerance)s;
  const col = article().getBoundingClientRect();
  const doc = document.documentElement;

  // 1. Boxes past the column's right edge: the outermost offenders; scroll containers are
  //    checked themselves, their content is not (it scrolls inside them). Folded code and
  //    outputs (closed <details>) are opened while measuring, folded solutions keep their
  //    width while hidden: a reader who opens them sees what is measured. MathJax's
  //    assistive MathML is clipped to nothing (it is for screen readers) and skipped.
  const closed = [...article().querySelectorAll('details:not([open])')];
  closed.forEach(d => { d.open = true; });
  const overflowing = [];
  const walk = (el) => {
    for (const child of el.children) {
      if (child.tagName === 'MJX-ASSISTIVE-MML') continue;
      const r = child.getBoundingClientRect();
      if (r.width > 0 && r.right > col.right + TOL) {
        const solution = child.closest('.toggle-hidden');
        const title = solution && solution.querySelector(':scope > .admonition-title');
        const folded = solution ? `the folded "${snippet(title) || 'solution'}"`
            : closed.some(d => d.contains(child)) ? 'folded code or output' : '';
        overflowing.push(Object.assign(describe(child), {section: heading(child),
            by: Math.round(r.right - col.right), folded: folded}));
        continue;
      }
      if (!scrolls(child)) walk(child);
    }
  };
  walk(article());
  closed.forEach(d => { d.open = false; });
  if (doc.scrollWidth > doc.clientWidth + TOL) {
    overflowing.unshift({tag: 'html', cls: '', id: '', section: '',
        text: `the document is ${doc.scrollWidth} px wide in a ${doc.clientWidth}-px window`,
        by: doc.scrollWidth - doc.clientWidth});
  }
  if (col.right > doc.clientWidth + TOL) {
    overflowing.unshift(Object.assign(describe(article()), {section: '',
        by: Math.round(col.right - doc.clientWidth),
        text: `the column ends at ${Math.round(col.right)} px in a `
            + `${doc.clientWidth}-px window`}));
  }

  // 2. Images: each a numbered figure with alt text in words.
  const images = [...article().querySelectorAll('img')].map(img => {
    const src = (img.getAttribute('src') || '').split('/').pop();
    const fig = img.closest('figure');
    const cap = fig && [...fig.children].find(c => c.tagName === 'FIGCAPTION');
    const num = cap && cap.querySelector('span.caption-number');
    const alt = (img.getAttribute('alt') || '').trim();
    const problems = [];
    if (!fig) problems.push('not inside a <figure>');
    else if (!cap) problems.push('its <figure> has no <figcaption>');
    else if (!num) problems.push('its <figcaption> has no figure number (span.caption-number)');
    else if (!/^Figure\s+\d/.test(num.textContent.trim()))
      problems.push(`its caption number is "${num.textContent.trim()}", not "Figure N"`);
    // a path: ends like an image file, or has a "/" and no space (alt text in words may
    // well say "d/2"), or names the build's image folder
    if (!alt) problems.push('it has no alt text');
    else if (/\.(png|svg|jpe?g|gif|webp|pdf)$/i.test(alt) || /_images\//.test(alt)
             || (alt.includes('/') && !/\s/.test(alt)))
      problems.push(`its alt text is a file path ("${alt.slice(0, 60)}")`);
    return {src: src, id: img.id || '', alt: alt.slice(0, 80),
            number: num ? num.textContent.trim() : '', section: heading(img),
            problems: problems};
  });

  // 3. NaN / <NA> as whole words anywhere in the column (also in folded outputs and
  //    solutions: a reader sees them once opened), grouped by the table or block they are in.
  const bad = /(?<![A-Za-z0-9_])nan(?![A-Za-z0-9_])|<NA>/gi;  // also Python's printed nan
  const badInSource = /(?<![A-Za-z0-9_])NaN(?![A-Za-z0-9_])|<NA>/g;  // np.nan is code
  const found = new Map();
  const walker = document.createTreeWalker(article(), NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const parent = node.parentElement;
    if (!parent || parent.closest('script, style, template')) continue;
    const hits = node.textContent.match(parent.closest('.cell_input') ? badInSource : bad);
    if (!hits) continue;
    const block = parent.closest('table, pre, p, li, dd, dt, figcaption, div') || parent;
    if (!found.has(block)) {
      found.set(block, {count: 0, words: new Set(), where: parent.closest('.cell_input')
          ? 'code cell source' : parent.closest('.cell_output') ? 'code cell output'
          : 'text', section: heading(block), tag: block.tagName.toLowerCase(),
          id: block.id || '',
          cls: (block.getAttribute('class') || '').trim(), text: snippet(block)});
    }
    const entry = found.get(block);
    entry.count += hits.length;
    hits.forEach(h => entry.words.add(h));
  }
  const nan = [...found.values()].map(e => Object.assign(e, {words: [...e.words]}));

  return {
    viewport: {innerWidth: window.innerWidth, clientWidth: doc.clientWidth,
               scrollWidth: doc.scrollWidth},
    column: {left: Math.round(col.left), right: Math.round(col.right),
             width: Math.round(col.width)},
    overflowing: overflowing, images: images, nan: nan, solutions: solutions().length,
  };
})()
""" % {"tolerance": OVERFLOW_TOLERANCE_PX}

SETTLE = ("new Promise(resolve => { let n = 0; const tick = () => (++n >= 2) ? "
          "resolve(true) : requestAnimationFrame(tick); requestAnimationFrame(tick); "
          "setTimeout(() => resolve(false), 300); })")


def _evaluate(browser: Chromium, session: str, expression: str, await_promise: bool = False):
    reply = browser.send("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                              "awaitPromise": await_promise},
                         session=session)
    if "exceptionDetails" in reply:
        details = reply["exceptionDetails"]
        raise RuntimeError("probe failed: " + (details.get("exception", {}).get("description")
                                               or details.get("text", "?")))
    return reply["result"].get("value")


def _click(browser: Chromium, session: str, x: float, y: float) -> None:
    """A left click at viewport point (x, y), as a mouse would make it."""
    for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
        params = {"type": kind, "x": x, "y": y, "button": "left" if kind != "mouseMoved"
                  else "none", "clickCount": 0 if kind == "mouseMoved" else 1}
        browser.send("Input.dispatchMouseEvent", params, session=session)


def _reload(browser: Chromium, session: str) -> None:
    """Load the tab's page again (after a change of window metrics) and wait for MathJax."""
    loads = sum(1 for e in browser.events
                if e["method"] == "Page.loadEventFired" and e.get("sessionId") == session)
    browser.send("Page.reload", {"ignoreCache": False}, session=session)
    browser.wait_for("Page.loadEventFired", session, nth=loads + 1)
    _evaluate(browser, session, WAIT_FOR_MATHJAX, await_promise=True)


def probe_reader_view(browser: Chromium, session: str, screenshots: Path | None = None,
                      name: str = "page") -> dict:
    """The reader probe at every width of :data:`WIDTHS` (the tab starts loaded at the
    first; for each other width the page is loaded again at that width, as a phone would
    load it, rather than resized while the theme's sidebars animate), then every solution
    toggle clicked open at the last width (a phone)."""
    views = {}
    for n, (width, metrics) in enumerate(WIDTHS.items()):
        if n:
            browser.send("Emulation.setDeviceMetricsOverride", metrics, session=session)
            _reload(browser, session)
        _evaluate(browser, session, PROBE_HELPERS)
        _evaluate(browser, session, SETTLE, await_promise=True)
        views[width] = _evaluate(browser, session, READER_PROBE)
        if screenshots is not None and n:  # load_page took the first width's screenshot
            shot = browser.send("Page.captureScreenshot", {"format": "png"}, session=session)
            screenshots.mkdir(parents=True, exist_ok=True)
            (screenshots / f"{name}@{width}.png").write_bytes(base64.b64decode(shot["data"]))
    toggles = []
    for i in range(views[width]["solutions"]):
        before = _evaluate(browser, session, f"__ncf.solutionState({i})")
        aim = _evaluate(browser, session, f"__ncf.aimAtToggle({i})")
        if aim is not None and aim["width"] > 0:
            _click(browser, session, aim["x"], aim["y"])
            _evaluate(browser, session, SETTLE, await_promise=True)
        after = _evaluate(browser, session, f"__ncf.solutionState({i})")
        toggles.append({"index": i, "before": before, "aim": aim, "after": after})
    return {"views": views, "toggles": toggles}


@pytest.fixture(scope="module")
def visit(browser, server):
    """``visit(doc)``: the page loaded once in its own tab (network log, the reader probe at
    both widths, the solutions clicked open), cached for every test of the module."""
    cache: dict[str, PageReport] = {}

    def get(doc: str) -> PageReport:
        if doc not in cache:
            redirects = 'http-equiv="Refresh"' in (_site() / _page_path(doc)).read_text(
                encoding="utf-8")
            name = doc.replace("/", "_")
            cache[doc] = load_page(
                browser, f"{server}/{_page_path(doc)}", screenshot=SCREENSHOTS / f"{name}.png",
                loads=2 if redirects else 1,
                inspect=lambda b, s: probe_reader_view(b, s, SCREENSHOTS, name))
        return cache[doc]

    return get


def _where(item: dict) -> str:
    """An element as a reader would find it: tag.class "text" (in section "...")."""
    cls = "." + ".".join(item["cls"].split()) if item.get("cls") else ""
    ident = f"#{item['id']}" if item.get("id") else ""
    section = f" in section \"{item['section']}\"" if item.get("section") else ""
    return f"<{item['tag']}{ident}{cls}> \"{item['text']}\"{section}"


# --------------------------------------------------------------------------------------------
# Tests in the browser


@pytest.mark.parametrize("doc", ["index", *_toc_docs()])
def test_page_loads_only_from_the_site_without_errors(visit, server, doc):
    """Every page of the book: nothing from another host, no failed load, no JS exception
    (also when it is loaded again at a phone's width and its solutions are clicked open)."""
    report = visit(doc)
    external = [u for u in report.requests
                if not (u.startswith(server + "/") or u.startswith(("data:", "blob:")))]
    assert not external, f"{doc}: requests to other hosts: {external}"
    bad = {u: s for u, s in report.responses.items()
           if s >= 400 and not u.endswith("/favicon.ico")}
    assert not bad, f"{doc}: failed responses: {bad}"
    assert not report.failures, f"{doc}: failed loads: {report.failures}"
    assert not report.exceptions, f"{doc}: JavaScript exceptions: {report.exceptions}"
    assert report.info["textLength"] > 200, f"{doc}: the page looks empty: {report.info}"


def _overflow_problems(view: dict, width: int) -> list[str]:
    viewport = view["viewport"]
    problems = []
    if viewport["clientWidth"] != width:
        problems.append(f"the window is {viewport['clientWidth']} px wide, not {width}: the "
                        "width emulation did not take")
    problems += [f"{_where(o)} runs {o['by']} px past the column's right edge "
                 f"({view['column']['right']} px)"
                 + (f" (inside {o['folded']})" if o.get("folded") else "")
                 for o in view["overflowing"]]
    return problems


@pytest.mark.parametrize("width", list(WIDTHS))
@pytest.mark.parametrize("doc", ["index", *_toc_docs()])
def test_nothing_runs_past_the_column(visit, doc, width):
    """At a desktop and a phone width nothing in the article column is wider than it, except
    inside scroll containers (wide tables, display math and code scroll in their own box)."""
    problems = _overflow_problems(visit(doc).extra["views"][width], width)
    assert not problems, (f"{doc} at {width} px: {len(problems)} element(s) overflow:\n  "
                          + "\n  ".join(problems))


def _image_problems(view: dict) -> list[str]:
    problems = []
    for img in view["images"]:
        if img["problems"]:
            section = f" in section \"{img['section']}\"" if img["section"] else ""
            problems.append(f"<img src=\"{img['src']}\">{section}: "
                            + "; ".join(img["problems"]))
    return problems


@pytest.mark.parametrize("doc", ["index", *_toc_docs()])
def test_every_image_is_a_numbered_figure_with_alt_text(visit, doc):
    """An image a reader sees is a numbered figure ("Figure 3.2" in its caption, so the text
    can refer to it) with alt text saying in words what it shows, not the file's name."""
    problems = _image_problems(visit(doc).extra["views"][1280])
    assert not problems, (f"{doc}: {len(problems)} image(s) are not numbered figures with "
                          "alt text:\n  " + "\n  ".join(problems))


def _nan_problems(view: dict) -> list[str]:
    return [f"{' / '.join(e['words'])} x{e['count']} in {e['where']}: {_where(e)}"
            for e in view["nan"]]


@pytest.mark.parametrize("doc", ["index", *_toc_docs()])
def test_no_nan_or_na_on_the_page(visit, doc):
    """No ``NaN`` or ``<NA>`` anywhere in the column, folded outputs and solutions included:
    a missing value is shown as "—" (``ncf_vs_mf.tables.show``) or explained in words."""
    problems = _nan_problems(visit(doc).extra["views"][1280])
    assert not problems, (f"{doc}: NaN / <NA> shown in {len(problems)} place(s):\n  "
                          + "\n  ".join(problems))


def _toggle_problems(toggles: list[dict]) -> list[str]:
    problems = []
    for t in toggles:
        before, aim, after = t["before"], t["aim"], t["after"]
        name = f"solution {t['index'] + 1} (\"{before['title']}\")"
        if not before["dropdown"]:
            problems.append(f"{name}: the solution does not fold (give it :class: dropdown)")
            continue
        if not before["button"]:
            problems.append(f"{name}: no toggle button (sphinx-togglebutton did not run)")
            continue
        if before["bodyParts"] == 0:
            problems.append(f"{name}: the solution has no body")
            continue
        if before["shown"]:
            problems.append(f"{name}: its body is visible before the click (not folded)")
        if not aim or aim["width"] == 0:
            problems.append(f"{name}: its toggle button is not displayed")
        elif not aim["reachable"]:
            problems.append(f"{name}: its toggle button is covered by {_where(aim['hit'])}"
                            if aim["hit"] else f"{name}: its toggle button is off screen")
        if not before["shown"] and not after["shown"]:
            problems.append(f"{name}: its body is still hidden after clicking the toggle")
    return problems


@pytest.mark.parametrize("doc", ["index", *_toc_docs()])
def test_solutions_are_folded_until_clicked(visit, doc):
    """Each worked solution (sphinx-exercise's ``div.solution``) folds (``:class: dropdown``):
    hidden when the page opens, shown once its toggle is clicked (a real mouse click at a
    phone's width)."""
    problems = _toggle_problems(visit(doc).extra["toggles"])
    assert not problems, f"{doc}: solutions that do not fold and open:\n  " + "\n  ".join(
        problems)


def test_reader_checks_catch_known_bad_cases(browser):
    """The reader checks themselves, on ``tests/browser_fixture.html``: each reports every
    known-bad element of the fixture (ids ``bad-...``) and none of the good ones (``ok-...``),
    at both widths."""
    report = load_page(browser, FIXTURE_PAGE.as_uri(), inspect=probe_reader_view)
    assert not report.exceptions, report.exceptions
    assert all(u.startswith(("file:", "data:")) for u in report.requests), report.requests
    for width in WIDTHS:
        view = report.extra["views"][width]
        assert view["viewport"]["clientWidth"] == width, view["viewport"]
        flagged = {o["id"] for o in view["overflowing"] if o["tag"] != "html"}
        assert flagged == {"bad-wide-box", "bad-wide-scroller", "bad-inline-math",
                           "bad-wide-folded"}, (width, view["overflowing"])
        folded = {o["id"]: o["folded"] for o in view["overflowing"] if o.get("folded")}
        assert folded == {"bad-wide-folded": "folded code or output"}, view["overflowing"]
        document_too_wide = any(o["tag"] == "html" for o in view["overflowing"])
        assert document_too_wide == (width == 390), (width, view["overflowing"])
        assert len(_overflow_problems(view, width)) == len(view["overflowing"])
    view = report.extra["views"][1280]
    images = {img["id"]: img["problems"] for img in view["images"]}
    assert images.pop("ok-img") == [], view["images"]
    assert images.pop("ok-img-words-with-slash") == [], view["images"]
    assert set(images) == {"bad-img-loose", "bad-img-unnumbered", "bad-img-no-alt",
                           "bad-img-file-alt"}, view["images"]
    assert all(images.values()), view["images"]
    assert images["bad-img-loose"] == ["not inside a <figure>", 'its alt text is a file path '
                                       '("../_images/0a1b2c.png")'], images
    assert len(_image_problems(view)) == 4
    assert {e["id"] for e in view["nan"]} == {"bad-nan-prose", "bad-nan-printed",
                                              "bad-na-table", "bad-nan-folded"}, view["nan"]
    assert len(_nan_problems(view)) == 4
    toggles = {t["before"]["id"]: _toggle_problems([t]) for t in report.extra["toggles"]}
    assert toggles.pop("ok-solution") == [], report.extra["toggles"]
    assert set(toggles) == {"bad-solution-open", "bad-solution-stuck", "bad-solution-plain",
                            "bad-solution-no-button", "bad-solution-covered"}, toggles
    assert [p.split(": ", 1)[1] for p in toggles["bad-solution-plain"]] == [
        "the solution does not fold (give it :class: dropdown)"], toggles
    assert [p.split(": ", 1)[1] for p in toggles["bad-solution-open"]] == [
        "its body is visible before the click (not folded)"], toggles
    assert [p.split(": ", 1)[1] for p in toggles["bad-solution-stuck"]] == [
        "its body is still hidden after clicking the toggle"], toggles
    assert [p.split(": ", 1)[1] for p in toggles["bad-solution-no-button"]] == [
        "no toggle button (sphinx-togglebutton did not run)"], toggles
    assert [p.split(": ", 1)[1] for p in toggles["bad-solution-covered"]] == [
        'its toggle button is covered by <div#bad-solution-covered-overlay> "a box on top"',
        "its body is still hidden after clicking the toggle"], toggles


def test_definitions_page_shows_title_figures_and_typeset_math(browser, server):
    chapter = resolve_chapter("definitions")
    report = load_page(browser, f"{server}/book/definitions.html",
                       screenshot=SCREENSHOTS / "definitions-check.png")
    info = report.info
    # the title a reader sees in the tab and at the top of the page
    # (numbered parts put the chapter's number first: "2. Definitions")
    number = r"(\d+(\.\d+)*\.?\s+)?"
    assert re.match(number + re.escape(chapter.title) + r"\b", info["title"]), info["title"]
    assert BOOK_TITLE in info["title"]
    assert re.fullmatch(number + re.escape(chapter.title), info["h1"] or ""), info["h1"]
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


# --------------------------------------------------------------------------------------------
# Static checks of the built pages: links to the glossary and the bibliography, and what the
# book must have at least (figures, references to them, exercises, glossary, citations)

_PARSED: dict[Path, object] = {}


def _soup(path: Path):
    """The parsed page (BeautifulSoup comes with pydata-sphinx-theme, the book's theme)."""
    from bs4 import BeautifulSoup

    if path not in _PARSED:
        _PARSED[path] = BeautifulSoup(path.read_text(encoding="utf-8"), "html.parser")
    return _PARSED[path]


def _article(doc: str):
    page = _soup(_site() / _page_path(doc))
    return page.select_one("main article.bd-article") or page.select_one("main") or page


def _book_docs() -> list[str]:
    return [doc for doc in _toc_docs() if (_site() / _page_path(doc)).is_file()]


def _is_glossary_or_citation_link(a) -> bool:
    href = a.get("href", "")
    return ("glossary.html#" in href or "references.html#" in href
            or a.find_parent("span", class_="bibtex-citation") is not None
            or a.select_one("span.std-term") is not None)


@pytest.mark.parametrize("doc", ["index", *_toc_docs()])
def test_glossary_and_citation_links_point_at_existing_entries(doc):
    """Every link to a glossary term and every citation lands on an id that exists on the
    page it points at (the glossary entry, the bibliography entry)."""
    site = _site()
    page = site / _page_path(doc)
    broken = []
    for a in _soup(page).select("main a[href]"):
        if not _is_glossary_or_citation_link(a):
            continue
        href = a["href"]
        target, _, fragment = href.partition("#")
        target_path = (page.parent / target).resolve() if target else page
        text = " ".join(a.get_text(" ").split())[:60]
        if not fragment:
            broken.append(f'"{text}" -> {href}: the link names no entry (no #id)')
        elif not target_path.is_file():
            broken.append(f'"{text}" -> {href}: {target_path.relative_to(site)} does not exist')
        elif _soup(target_path).find(id=fragment) is None:
            broken.append(f'"{text}" -> {href}: no id "{fragment}" on '
                          f"{target_path.relative_to(site)}")
    assert not broken, f"{doc}: {len(broken)} broken glossary/citation link(s):\n  " + (
        "\n  ".join(broken))


def _per_page(counts: dict[str, int]) -> str:
    return ", ".join(f"{doc}: {n}" for doc, n in counts.items())


def test_book_has_enough_numbered_figures():
    counts = {doc: sum(1 for span in _article(doc).select("figcaption span.caption-number")
                       if span.get_text().strip().startswith("Figure"))
              for doc in _book_docs()}
    total = sum(counts.values())
    assert total >= MIN_NUMBERED_FIGURES, (
        f"{total} numbered figures in the book, fewer than {MIN_NUMBERED_FIGURES} "
        f"({_per_page(counts)})")


def test_book_refers_to_its_figures_with_numref():
    counts = {doc: len(_article(doc).select("span.std-numref")) for doc in _book_docs()}
    total = sum(counts.values())
    assert total >= MIN_NUMREF_LINKS, (
        f"{total} {{numref}} references in the book, fewer than {MIN_NUMREF_LINKS} "
        f"({_per_page(counts)})")


@pytest.mark.parametrize("doc", _toc_docs())
def test_every_chapter_with_code_has_exercises_with_solutions(doc):
    """A page with code cells has at least :data:`MIN_EXERCISES_PER_CODE_PAGE` exercises,
    each followed by a worked solution that folds (``:class: dropdown``)."""
    if not (_site() / _page_path(doc)).is_file():
        pytest.fail(f"{doc} is in the table of contents but {_page_path(doc)} is not built")
    article = _article(doc)
    if doc in PAGES_WITHOUT_EXERCISES or not article.select("div.cell"):
        return
    exercises = [ex.get("id", "?") for ex in article.select("div.exercise")]
    assert len(exercises) >= MIN_EXERCISES_PER_CODE_PAGE, (
        f"{doc}: {len(exercises)} exercise(s) (div.exercise), fewer than "
        f"{MIN_EXERCISES_PER_CODE_PAGE}: {exercises}")
    solved = {a["href"].lstrip("#") for sol in article.select("div.solution")
              for a in sol.select(".admonition-title a[href^='#']")}
    folded = {a["href"].lstrip("#") for sol in article.select("div.solution.dropdown")
              for a in sol.select(".admonition-title a[href^='#']")}
    unsolved = [ex for ex in exercises if ex not in solved]
    assert not unsolved, f"{doc}: exercises without a solution: {unsolved}"
    unfolded = [ex for ex in exercises if ex not in folded]
    assert not unfolded, f"{doc}: solutions that do not fold (no :class: dropdown): {unfolded}"


def test_glossary_page_has_entries():
    assert GLOSSARY_PAGE in _toc_docs(), f"no {GLOSSARY_PAGE} in the table of contents"
    terms = _article(GLOSSARY_PAGE).select("dl.glossary > dt")
    assert len(terms) >= MIN_GLOSSARY_ENTRIES, (
        f"{GLOSSARY_PAGE}: {len(terms)} terms, fewer than {MIN_GLOSSARY_ENTRIES}")
    missing_ids = [t.get_text(" ").strip() for t in terms if not t.get("id")]
    assert not missing_ids, f"{GLOSSARY_PAGE}: terms without an id to link to: {missing_ids}"


def test_references_page_has_entries():
    assert REFERENCES_PAGE in _toc_docs(), f"no {REFERENCES_PAGE} in the table of contents"
    entries = _article(REFERENCES_PAGE).select("div.citation")
    assert len(entries) >= MIN_REFERENCE_ENTRIES, (
        f"{REFERENCES_PAGE}: {len(entries)} bibliography entries, fewer than "
        f"{MIN_REFERENCE_ENTRIES}")


def test_book_cites_its_sources():
    counts = {doc: len(_article(doc).select("span.bibtex-citation")) for doc in _book_docs()}
    total = sum(counts.values())
    assert total >= MIN_CITATIONS, (
        f"{total} citations in the book, fewer than {MIN_CITATIONS} ({_per_page(counts)})")
