"""The book's pages in a real browser: build the book from the committed notebook outputs (no
execution), open every page in headless Chromium and fail on a broken image, a broken internal
link or anchor, a Python traceback or error output on a page, or a console error (see
``tests/book_pages.py``). Full-page screenshots go to ``_build/screenshots/`` for a human look,
with the report in ``_build/screenshots/report.txt``.

``DIPKIT_BOOK_HTML=_build/html`` checks a site already built (``make book-check`` builds it with
``-W -n`` and then runs this file); without it the test builds the book into a temporary folder.
Without Chromium or Playwright the browser tests skip, except under ``CI=true``, where they fail.
"""

import os
import shutil
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
from PIL import Image

from book_pages import KNOWN_ISSUES, check_link, check_site, find_chromium, site_pages

REPO = Path(__file__).resolve().parents[1]
SCREENSHOTS = REPO / "_build" / "screenshots"
IN_CI = os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def _no_browser(reason: str):
    reason += " (make test installs Debian's chromium when run as root with apt-get; or set DIPKIT_CHROMIUM)"
    if IN_CI:
        pytest.fail(f"CI=true, and the browser test of the book cannot run: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def chromium() -> str:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError as exc:
        _no_browser(f"Playwright is not installed ({exc}; it is in the 'test' extra)")
    path = find_chromium()
    if path is None:
        _no_browser("no Chromium: neither $DIPKIT_CHROMIUM, /usr/bin/chromium nor one on the PATH")
    return path


# --- the checker finds what it should: a hand-made site with one fault per page -------------------

SVG_NO_SIZE = '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 10 10"><rect width="10" height="10"/></svg>'


def _page(body: str, head: str = "") -> str:
    return f"<!doctype html><html><head><meta charset='utf-8'>{head}</head><body>{body}</body></html>"


@pytest.fixture
def tiny_site(tmp_path) -> Path:
    site = tmp_path / "site"
    (site / "_images").mkdir(parents=True)
    (site / "sub").mkdir()
    Image.new("RGB", (4, 3), (200, 30, 30)).save(site / "_images" / "dot.png")
    (site / "_images" / "nosize.svg").write_text(SVG_NO_SIZE)
    pages = {
        "ok.html": _page("<h1 id='top'>fine</h1><img src='_images/dot.png' alt='dot'>"
                         "<img src='_images/nosize.svg' alt='svg'><img src='https://example.org/x.png'>"
                         "<a href='sub/other.html#here'>a</a> <a href='sub/'>b</a> <a href='#top'>c</a>"
                         "<a href='https://example.org/'>d</a> <a href='mailto:x@example.org'>e</a>"
                         "<div class='cell_output'><pre>ValueError is an exception name, not an error</pre></div>"),
        "sub/other.html": _page("<p id='here'>other</p><a href='../ok.html'>back</a>"),
        "sub/index.html": _page("<p>index</p>"),
        "index.html": '<meta http-equiv="Refresh" content="0; url=ok.html" />',
        "gone.html": '<meta http-equiv="Refresh" content="0; url=nowhere/page.html" />',
        "broken_img.html": _page("<p>a figure</p><img src='_images/missing.png' alt='gone'>"),
        "broken_link.html": _page("<a href='nowhere.html'>x</a> <a href='ok.html#no-such-anchor'>y</a>"),
        "traceback.html": _page(
            "<div class='cell_output docutils container'><div class='output traceback highlight-ipythontb "
            "notranslate'><pre>---------\nValueError                  Traceback (most recent call last)\n"
            "Cell In[3], line 1\nValueError: boom</pre></div></div>"),
        "stderr.html": _page("<div class='cell_output'><div class='output stderr highlight-myst-ansi'>"
                             "<pre>UserWarning: careful</pre></div></div>"),
        "console.html": _page("<p>js</p>", head="<script>console.error('boom from the page')</script>"
                                                "<script>null.f()</script>"),
        "missing_css.html": _page("<p>styled</p>", head="<link rel='stylesheet' href='_static/gone.css'>"),
    }
    for name, html in pages.items():
        (site / name).write_text(html)
    (site / "_static").mkdir()
    (site / "_static" / "not_a_page.html").write_text(_page("<img src='nope.png'>"))
    return site


def test_checker_reports_each_fault(tiny_site, tmp_path, chromium):
    shots = tmp_path / "shots"
    report = check_site(tiny_site, screenshots=shots, chromium=chromium)
    print(report.format())
    assert sorted(report.pages) == sorted(site_pages(tiny_site))
    assert "_static/not_a_page.html" not in report.pages
    kinds = lambda page: sorted({p.kind for p in report.of(page)})  # noqa: E731

    assert kinds("ok.html") == [] and kinds("sub/other.html") == [] and kinds("sub/index.html") == []
    assert kinds("index.html") == []   # a redirect, checked where it leads
    assert kinds("gone.html") == ["link"] and "redirect" in report.of("gone.html")[0].detail
    assert kinds("broken_img.html") == ["image", "resource"]
    assert "_images/missing.png" in report.of("broken_img.html", "image")[0].detail
    assert kinds("broken_link.html") == ["anchor", "link"]
    assert "nowhere.html" in report.of("broken_link.html", "link")[0].detail
    assert "no-such-anchor" in report.of("broken_link.html", "anchor")[0].detail
    assert "traceback" in kinds("traceback.html") and "error-output" in kinds("traceback.html")
    assert kinds("stderr.html") == ["error-output"]
    console = [p.detail for p in report.of("console.html", "console")]
    assert any("boom from the page" in c for c in console) and any(c.startswith("uncaught") for c in console)
    assert kinds("missing_css.html") == ["resource"]
    assert "https://example.org/x.png" in report.unchecked and "https://example.org/" in report.unchecked
    assert sorted(p.name for p in shots.glob("*.png")) == sorted(
        p[:-5].replace("/", "__") + ".png" for p in report.pages if p != "gone.html")


def test_tolerated_issues_are_kept_apart(tiny_site, chromium):
    known = [("console", "boom from the page", "a test"), ("console", "uncaught", "a test")]
    report = check_site(tiny_site, pages=["console.html", "broken_img.html"], chromium=chromium, tolerate=known)
    assert {p.page for p in report.tolerated} == {"console.html"}
    assert report.of("console.html") == [] and report.of("broken_img.html")


def test_check_link_without_a_browser(tiny_site):
    base = "http://127.0.0.1:1234/"
    assert check_link(tiny_site, base, base + "ok.html#top") is None
    assert check_link(tiny_site, base, base + "sub/") is None
    assert check_link(tiny_site, base, base + "sub/other.html?x=1#here") is None
    assert check_link(tiny_site, base, "https://example.org/nowhere.html") is None
    assert check_link(tiny_site, base, base + "nowhere.html")[0] == "link"
    assert check_link(tiny_site, base, base + "sub/other.html#missing")[0] == "anchor"


# --- the book ------------------------------------------------------------------------------------

def _toc_pages() -> list[str]:
    """The pages that _toc.yml promises, as paths of the built site."""
    import yaml

    toc = yaml.safe_load((REPO / "_toc.yml").read_text())
    files = [toc["root"]] + [ch["file"] for part in toc.get("parts", []) for ch in part.get("chapters", [])]
    return [f + ".html" for f in files]


@pytest.fixture(scope="session")
def book_html(tmp_path_factory, chromium) -> Path:
    """The built book: $DIPKIT_BOOK_HTML, else a build from the committed outputs (no execution)."""
    given = os.environ.get("DIPKIT_BOOK_HTML")
    if given:
        site = Path(given).resolve()
        assert (site / "index.html").is_file(), f"DIPKIT_BOOK_HTML={given}: no index.html there"
        return site
    import yaml

    out = tmp_path_factory.mktemp("book")
    config = yaml.safe_load((REPO / "_config.yml").read_text())
    config.setdefault("execute", {})["execute_notebooks"] = "off"
    (out / "_config_noexec.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    jb = Path(sys.executable).parent / "jupyter-book"
    jb = str(jb) if jb.exists() else shutil.which("jupyter-book")
    if jb is None:
        pytest.fail("jupyter-book is not installed (the 'book' extra)")
    start = time.perf_counter()
    proc = subprocess.run([jb, "build", str(REPO), "--path-output", str(out), "--config",
                           str(out / "_config_noexec.yml")], cwd=REPO, capture_output=True, text=True, timeout=900)
    print(f"book built from the committed outputs in {time.perf_counter() - start:.1f} s")
    assert proc.returncode == 0, f"jupyter-book build failed:\n{(proc.stdout + proc.stderr)[-4000:]}"
    return out / "_build" / "html"


def test_book_pages_in_chromium(book_html, chromium):
    if SCREENSHOTS.is_dir():
        for old in SCREENSHOTS.glob("*.png"):
            old.unlink()
    report = check_site(book_html, screenshots=SCREENSHOTS, chromium=chromium, tolerate=KNOWN_ISSUES)
    text = report.format() + "\n\nseconds per page:\n" + "\n".join(
        f"  {s:5.1f}  {p}" for p, s in report.page_seconds.items())
    (SCREENSHOTS / "report.txt").write_text(text + "\n")
    print(text)
    missing = [p for p in _toc_pages() if p not in report.pages]
    assert not missing, f"pages of _toc.yml missing from the built site: {missing}"
    for detail in dict.fromkeys(f"{p.kind}: {p.detail}" for p in report.tolerated):
        warnings.warn(f"tolerated known third-party issue on the book's pages: {detail}", stacklevel=1)
    assert not report.problems, "broken pages in the book:\n" + report.format()
    assert len(report.screenshots) == len(report.pages)

