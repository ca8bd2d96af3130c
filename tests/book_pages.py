"""Open every page of a built HTML site (the book) in headless Chromium and report what is broken.

For each ``*.html`` page of the site (the asset folders ``_static``, ``_images``, ``_sources``...
are skipped), served over ``http://127.0.0.1`` by a threaded ``http.server`` (``file://`` breaks
some of the theme's JavaScript), it checks:

- **images**: every ``<img>`` of the site must load (``naturalWidth`` 0 and a failing
  ``decode()`` = broken, so an SVG without an intrinsic size is not taken for a broken image);
- **resources**: no request to the site (stylesheet, script, image, font...) may answer 4xx/5xx;
- **links**: every ``<a href>`` into the site must name a file that exists, and its ``#anchor``
  must be an ``id`` (or ``<a name>``) of the target page;
- **errors shown on the page**: a Python traceback in the text ("Traceback (most recent call
  last)"), an error or stderr output cell (mystnb's ``div.output.traceback``/``.stderr``, its ANSI
  traceback ``highlight-ipythontb``, ``.output.error``, ``.cell_output .traceback``) and
  docutils' error boxes (``.system-message``);
- **console**: every ``console.error`` and every uncaught JavaScript exception of the page.

Requests that leave 127.0.0.1 are refused at once (Chromium's host resolver maps every other
host to "not found"; CI has no network anyway), so the check is the same offline and online:
external images, scripts (MathJax from its CDN: the math is not typeset in the screenshots) and
links are listed as *not checked*, never as problems, and the console errors of those refused
loads are not counted.

Known bugs of the theme stack (:data:`KNOWN_ISSUES`: console errors that any Jupyter Book v1
built with these versions shows) are set apart as *tolerated* and printed, when asked
with ``tolerate=KNOWN_ISSUES`` (the book's test and the command line do; ``--strict`` does not).

With ``screenshots=DIR`` it saves a full-page PNG of each page (``notebooks/01_x.html`` ->
``DIR/notebooks__01_x.png``) for a human look.

Chromium: ``$DIPKIT_CHROMIUM``, else ``/usr/bin/chromium`` (Debian's package, which ``make test``
installs when it can), else ``chromium``/``chromium-browser``/``google-chrome`` on the PATH;
driven by Playwright (``pip install playwright``; never ``playwright install``: its own browser
downloads are not used). Playwright gives each launch a fresh, temporary ``--user-data-dir``.

Command line::

    python tests/book_pages.py _build/html --screenshots _build/screenshots

prints one line per problem and exits 1 when there is any (``--strict``: the tolerated too).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import http.server
import os
import re
import shutil
import sys
import threading
import time
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    # No network here: refuse every host but the local server at once, instead of waiting.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
]
TRACEBACK_TEXT = "Traceback (most recent call last)"
# Output cells that show an error (mystnb 1.x: div.output.traceback.highlight-ipythontb for an
# error, div.output.stderr for stderr; nbsphinx/jupyter: .output.error, .stderr) and docutils'
# error boxes for a directive or role that failed to render.
ERROR_SELECTORS = [
    ".output.error", ".output.traceback", "div.cell_output .traceback", "[class*='ipythontb']",
    "[class*='stderr']", "[data-mime-type='application/vnd.jupyter.stderr']", ".system-message",
]
ASSET_DIRS_PREFIX = "_"  # _static, _images, _sources, _downloads...: not pages

# Known bugs of the third-party theme stack, not of the book: (kind, start of the detail, why).
# A problem that matches one goes to Report.tolerated (printed, not failed on) when check_site is
# given tolerate=KNOWN_ISSUES, as the book's test does. Remove an entry once its cause is gone.
KNOWN_ISSUES = [
    ("console", "uncaught Identifier 'THEBE_JS_URL' has already been declared",
     "Sphinx 7.4 + sphinx-thebe 0.3.1: the thebe config script, added with app.add_js_file(None, "
     "body=...) after the builder's init, is written twice into every page (Sphinx re-adds it from "
     "its registry as filename '' != None); the second copy's `const` fails, the first one works"),
    ("console", "Got invalid theme mode: . Resetting to auto.",
     "pydata-sphinx-theme on the first page of a visit (empty localStorage) when html_context has "
     "no default_mode; the theme then uses 'auto'"),
]


@dataclass
class Problem:
    page: str      # the page's path in the site, e.g. "notebooks/01_spectral_bias.html"
    kind: str      # image | resource | link | anchor | traceback | error-output | console | load
    detail: str

    def __str__(self):
        return f"{self.page}: {self.kind}: {self.detail}"


@dataclass
class Report:
    pages: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    unchecked: set[str] = field(default_factory=set)   # external URLs (no network here)
    tolerated: list[Problem] = field(default_factory=list)  # matched a known third-party issue
    screenshots: list[Path] = field(default_factory=list)
    seconds: float = 0.0
    page_seconds: dict[str, float] = field(default_factory=dict)

    def of(self, page: str, kind: str | None = None) -> list[Problem]:
        return [p for p in self.problems if p.page == page and (kind is None or p.kind == kind)]

    def format(self) -> str:
        lines = [f"{len(self.pages)} pages checked in {self.seconds:.1f} s, "
                 f"{len(self.problems)} problem(s)"]
        lines += [f"  {p}" for p in self.problems]
        if self.tolerated:
            lines.append(f"  tolerated (known third-party issues, see KNOWN_ISSUES): {len(self.tolerated)} on "
                         f"{len({p.page for p in self.tolerated})} page(s):")
            lines += [f"    {detail}" for detail in dict.fromkeys(f"{p.kind}: {p.detail}" for p in self.tolerated)]
        if self.unchecked:
            lines.append(f"  not checked (external, no network): {len(self.unchecked)} URL(s), e.g. "
                         + ", ".join(sorted(self.unchecked)[:3]))
        return "\n".join(lines)


def find_chromium() -> str | None:
    """The Chromium to drive: ``$DIPKIT_CHROMIUM``, ``/usr/bin/chromium`` or one on the PATH."""
    env = os.environ.get("DIPKIT_CHROMIUM")
    if env:
        return env if os.access(env, os.X_OK) else None
    if os.access("/usr/bin/chromium", os.X_OK):
        return "/usr/bin/chromium"
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    return None


def site_pages(root: Path) -> list[str]:
    """The pages of a built site: its ``*.html`` files outside the ``_``-prefixed asset folders."""
    root = Path(root)
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*.html")
                  if not any(part.startswith(ASSET_DIRS_PREFIX) for part in p.relative_to(root).parts[:-1]))


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@contextlib.contextmanager
def serve(root: Path):
    """Serve ``root`` on http://127.0.0.1:<free port>/ in a thread; yields the base URL."""
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


class _Anchors(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.ids: set[str] = set()

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if value and (name == "id" or (tag == "a" and name == "name")):
                self.ids.add(value)


@functools.lru_cache(maxsize=None)
def _anchors(path: Path) -> frozenset[str]:
    parser = _Anchors()
    parser.feed(path.read_text(encoding="utf-8", errors="replace"))
    return frozenset(parser.ids)


def check_link(root: Path, base: str, url: str) -> tuple[str, str] | None:
    """``None`` when ``url`` (absolute, as the browser resolved it) is outside the site or fine;
    else ``(kind, detail)``: ``link`` for a file that does not exist, ``anchor`` for a ``#id``
    that the target page lacks."""
    if not url.startswith(base):
        return None
    parts = urlsplit(url)
    rel = unquote(parts.path)[len(urlsplit(base).path):]
    target = Path(root) / rel
    if rel == "" or rel.endswith("/") or target.is_dir():
        target = target / "index.html"
    if not target.is_file():
        return "link", f"{url[len(base):]} -> no such file {target.relative_to(root).as_posix()}"
    anchor = unquote(parts.fragment)
    if anchor and target.suffix == ".html" and anchor not in _anchors(target):
        return "anchor", f"{url[len(base):]} -> no id {anchor!r} on {target.relative_to(root).as_posix()}"
    return None


_META_REFRESH = re.compile(r"""<meta[^>]+http-equiv=["']?refresh["']?[^>]*content=["']?\s*\d+\s*;\s*url=([^"'>\s]+)""",
                           re.IGNORECASE)


def meta_refresh(path: Path) -> str | None:
    """The target of a redirect page (``<meta http-equiv="refresh" content="0; url=...">``, as
    Jupyter Book's ``index.html``), or ``None``."""
    m = _META_REFRESH.search(Path(path).read_text(encoding="utf-8", errors="replace")[:4000])
    return m.group(1) if m else None


# Wait for every image (lazy ones made eager), then describe them; and gather the links.
_IMAGES_JS = """async () => {
  const imgs = Array.from(document.images);
  for (const img of imgs) { if (img.loading === 'lazy') img.loading = 'eager'; }
  const done = img => img.complete ? Promise.resolve()
      : new Promise(r => { img.addEventListener('load', r); img.addEventListener('error', r); });
  await Promise.race([Promise.all(imgs.map(done)), new Promise(r => setTimeout(r, 10000))]);
  const out = [];
  for (const img of imgs) {
    let ok = img.complete && img.naturalWidth > 0;
    if (!ok && img.complete) { try { await img.decode(); ok = true; } catch (e) { ok = false; } }
    out.push({src: img.currentSrc || img.src || img.getAttribute('src') || '', ok: ok,
              alt: img.getAttribute('alt') || ''});
  }
  return out;
}"""
_LINKS_JS = """() => Array.from(document.querySelectorAll('a[href]'))
  .map(a => ({href: a.href, raw: a.getAttribute('href')}))"""
_ERRORS_JS = """(selectors) => {
  const out = [], seen = new Set();
  for (const sel of selectors) {
    for (const el of document.querySelectorAll(sel)) {
      if ([...seen].some(s => s.contains(el))) continue;   // once per element, not inside another
      seen.add(el);
      out.push({sel: sel, cls: el.className && el.className.baseVal !== undefined ? el.className.baseVal : el.className,
                text: (el.innerText || el.textContent || '').trim().slice(0, 200)});
    }
  }
  return out;
}"""


def _short(text: str, n: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"


def check_page(page, root: Path, base: str, rel: str, report: Report, screenshots: Path | None):
    console: list[str] = []
    bad_responses: list[str] = []
    local_failed: set[str] = set()

    def on_console(msg):
        if msg.type != "error":
            return
        where = (msg.location or {}).get("url", "")
        if msg.text.startswith("Failed to load resource") and where:
            if urlsplit(where).path == "/favicon.ico":   # the browser's own request, not the page's
                return
            if not where.startswith(base):
                report.unchecked.add(where)
                return
            if where in local_failed:   # reported as a resource already
                return
        console.append(_short(msg.text) + (f" ({where[len(base):] if where.startswith(base) else where})"
                                           if where else ""))

    def on_response(resp):
        if resp.url.startswith(base) and resp.status >= 400:
            local_failed.add(resp.url)
            bad_responses.append(f"{resp.status} {resp.url[len(base):]}")

    def on_failed(req):
        if req.url.startswith(base):
            if req.url in local_failed:   # its 4xx response is reported already
                return
            local_failed.add(req.url)
            bad_responses.append(f"failed ({req.failure}) {req.url[len(base):]}")
        else:
            report.unchecked.add(req.url)

    page.on("console", on_console)
    page.on("pageerror", lambda exc: console.append("uncaught " + _short(str(exc))))
    page.on("response", on_response)
    page.on("requestfailed", on_failed)
    add = lambda kind, detail: report.problems.append(Problem(rel, kind, detail))  # noqa: E731
    try:
        redirect = meta_refresh(root / rel)
        resp = page.goto(base + rel, wait_until="load", timeout=60000)
        if resp is None or resp.status >= 400:
            add("load", f"status {resp.status if resp else 'none'}")
            return
        if redirect is not None:   # check the page it sends to, once the browser is there
            target = urljoin(base + rel, redirect)
            bad = check_link(root, base, target)
            if bad:
                add(bad[0], f"redirect to {bad[1]}")
                return
            if target.startswith(base):
                page.wait_for_url(target.split("#")[0] + "*", wait_until="load", timeout=30000)
        with contextlib.suppress(Exception):   # a page that keeps polling is still checked
            page.wait_for_load_state("networkidle", timeout=5000)

        for img in page.evaluate(_IMAGES_JS):
            src = img["src"]
            if src.startswith(("http://", "https://")) and not src.startswith(base):
                report.unchecked.add(src)
            elif not img["ok"]:
                shown = src[len(base):] if src.startswith(base) else _short(src, 80)
                add("image", f"does not load: {shown!r} (alt {_short(img['alt'], 60)!r})")

        seen = set()
        for link in page.evaluate(_LINKS_JS):
            href = link["href"]
            if href.startswith(("http://", "https://")) and not href.startswith(base):
                report.unchecked.add(href)
                continue
            if href in seen:
                continue
            seen.add(href)
            bad = check_link(root, base, href)
            if bad:
                add(*bad)

        text = page.evaluate("() => document.body ? document.body.innerText : ''")
        if TRACEBACK_TEXT in text:
            i = text.index(TRACEBACK_TEXT)
            add("traceback", _short(text[max(0, i - 60): i + 160]))
        for el in page.evaluate(_ERRORS_JS, ERROR_SELECTORS):
            add("error-output", f"{el['sel']} (class {el['cls']!r}): {_short(el['text'], 120)!r}")

        if screenshots is not None:
            shot = screenshots / (rel[: -len(".html")].replace("/", "__") + ".png")
            page.screenshot(path=str(shot), full_page=True)
            report.screenshots.append(shot)
    finally:
        for r in dict.fromkeys(bad_responses):
            add("resource", r)
        for c in dict.fromkeys(console):
            add("console", c)


def check_site(root, screenshots=None, pages=None, chromium=None, tolerate=(), viewport=(1280, 900)) -> Report:
    """Open every page of the built site ``root`` (or just ``pages``, paths relative to it) in
    headless Chromium; return a :class:`Report` of the problems found (see the module's doc).
    Problems that match an entry of ``tolerate`` (like :data:`KNOWN_ISSUES`) go to
    ``Report.tolerated`` instead of ``Report.problems``."""
    from playwright.sync_api import sync_playwright

    root = Path(root).resolve()
    chromium = chromium or find_chromium()
    if chromium is None:
        raise RuntimeError("no Chromium found (install Debian's chromium, or set DIPKIT_CHROMIUM)")
    if screenshots is not None:
        screenshots = Path(screenshots)
        screenshots.mkdir(parents=True, exist_ok=True)
    _anchors.cache_clear()
    report = Report(pages=list(pages) if pages is not None else site_pages(root))
    start = time.perf_counter()
    with serve(root) as base, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": viewport[0], "height": viewport[1]})
            for rel in report.pages:
                page = context.new_page()
                t0 = time.perf_counter()
                try:
                    check_page(page, root, base, rel, report, screenshots)
                except Exception as exc:   # a page that cannot be opened is a problem, not a crash
                    report.problems.append(Problem(rel, "load", _short(f"{type(exc).__name__}: {exc}")))
                finally:
                    page.close()
                    report.page_seconds[rel] = time.perf_counter() - t0
        finally:
            browser.close()
    report.seconds = time.perf_counter() - start
    known = [(kind, prefix) for kind, prefix, *_ in tolerate]
    kept = []
    for p in report.problems:
        (report.tolerated if any(p.kind == k and p.detail.startswith(s) for k, s in known) else kept).append(p)
    report.problems = kept
    return report


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("site", type=Path, help="the built HTML folder, e.g. _build/html")
    ap.add_argument("--screenshots", type=Path, default=None, help="save a full-page PNG of each page here")
    ap.add_argument("--strict", action="store_true", help="fail on the KNOWN_ISSUES of the theme stack too")
    args = ap.parse_args(argv)
    report = check_site(args.site, screenshots=args.screenshots, tolerate=() if args.strict else KNOWN_ISSUES)
    print(report.format())
    return 1 if report.problems else 0


if __name__ == "__main__":
    sys.exit(main())
