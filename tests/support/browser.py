"""Debian's chromium driven by selenium through Debian's chromium-driver: the report as a reader's
browser shows it (layout, loaded images, visible text), not as its DOM text reads."""

import os
import shutil
from pathlib import Path

import pytest

WINDOW = (1366, 768)  # a common laptop screen; the viewport is smaller by the browser's own bars
HEADLINE_ID = "anapart-headline"
DOCUTILS_MESSAGE = r"\((WARNING|ERROR|SEVERE|INFO)/\d\)|System Message|Docutils System Messages"


def binaries() -> tuple[str, str] | None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None


def require_browser() -> tuple[str, str]:
    """The browser and its driver, or a skip (a failure under CI, which installs both)."""
    found = binaries()
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("chromium or chromium-driver is not installed; .ci/run installs Debian's packages")
        pytest.skip("Debian's chromium and chromium-driver are not installed (apt-get install chromium chromium-driver)")
    try:
        import selenium  # noqa: F401
    except ImportError:
        pytest.fail("selenium is missing: pip install -c requirements.lock -e '.[test]'")
    return found


def open_browser(tmp_path: Path, size=WINDOW):
    """A headless chromium window of ``size`` (offline: no network, no first-run requests)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser, driver = require_browser()
    opts = webdriver.ChromeOptions()
    opts.binary_location = browser
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync",
              "--disable-background-networking", "--disable-component-update", "--hide-scrollbars",
              f"--user-data-dir={tmp_path / 'profile'}", f"--window-size={size[0]},{size[1]}"):
        opts.add_argument(a)
    d = webdriver.Chrome(service=Service(driver), options=opts)
    d.set_window_size(*size)
    d.set_script_timeout(60)
    return d


def load(d, page: Path) -> None:
    """Open ``page`` and wait until the report app drew its front page."""
    from selenium.webdriver.support.ui import WebDriverWait

    d.get(page.as_uri())
    WebDriverWait(d, 60).until(lambda drv: drv.execute_script(
        "return document.readyState === 'complete' && typeof app !== 'undefined' && "
        "document.querySelector('div.prose') !== null"))
    d.execute_script("return new Promise(r => setTimeout(r, 500))")  # the rule graph's layout settles


def headline_box(d) -> dict:
    """The headline's bounding box and the viewport (CSS pixels), or None for the box when absent."""
    return d.execute_script(
        "const e = document.getElementById(arguments[0]);"
        "return {box: e ? e.getBoundingClientRect().toJSON() : null,"
        "        width: window.innerWidth, height: window.innerHeight};", HEADLINE_ID)


def on_screen(info: dict) -> bool:
    """Whether the whole headline box lies inside the viewport (what a reader sees without scrolling)."""
    b = info["box"]
    return (b is not None and b["width"] > 0 and b["height"] > 0 and b["top"] >= 0 and b["left"] >= 0
            and b["bottom"] <= info["height"] and b["right"] <= info["width"])


def broken_images(d) -> list[str]:
    """The page's <img> elements that did not load, and every image result of the report that does
    not decode (each one decoded in the page, as the report shows it on a click)."""
    shown = d.execute_script(
        "return Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0))"
        "  .map(i => (i.currentSrc || i.src).slice(0, 80));")
    results = d.execute_async_script("""
        const done = arguments[arguments.length - 1];
        const paths = Object.keys(results).filter(p => String(results[p].mime_type).startsWith('image/'));
        Promise.all(paths.map(p => new Promise(ok => {
            const img = new Image();
            img.onload = () => ok(img.naturalWidth > 0 ? null : p);
            img.onerror = () => ok(p);
            img.src = results[p].data_uri;
        }))).then(bad => done({n: paths.length, bad: bad.filter(x => x)}));""")
    assert results["n"] > 0, "the report lists no image results"
    return shown + results["bad"]


def visible_text(d) -> str:
    """Text a reader can see (innerText leaves out hidden elements, scripts and styles)."""
    return d.execute_script("return document.body.innerText")
