"""The HTML report in a real browser: headless Chromium (the system's, e.g. Debian's `chromium` package) driven by
Playwright. `check_page` looks at the page as a reader's browser draws it (every image decoded, no table wider than
the page); `write_pdf` prints it to report.pdf, scaled down where a wide table would otherwise be cut at the paper's
edge (Chromium lays out the whole table, which WeasyPrint cut at the A4 edge).

Playwright's own browser download is never used: `EDGEPRUNE_CHROMIUM`, else the first of CHROMIUM_NAMES on PATH.
"""

from __future__ import annotations

import os
import shutil
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

CHROMIUM_ENV = "EDGEPRUNE_CHROMIUM"
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
# No sandbox as root (Chromium refuses to start otherwise); no GPU, no background traffic, no first-run pages.
LAUNCH_ARGS = ("--disable-gpu", "--disable-background-networking", "--disable-component-update", "--no-first-run")
HOW_TO = ("install Chromium (Debian/Ubuntu: `apt-get install chromium`) and Playwright (`pip install "
          "'edgeprune[pdf]'`, part of `make setup`), or point EDGEPRUNE_CHROMIUM at a Chromium or Chrome binary")
# A wide laptop window, in CSS pixels: the width the page must fit without scrolling sideways.
SCREEN_WIDTH = 1280
# A4 landscape with 10 mm margins, in CSS pixels (96 per inch): the width report.pdf lays a page out in.
PAPER = {"format": "A4", "landscape": True}
MARGIN_MM = 10
PRINT_WIDTH = round((297 - 2 * MARGIN_MM) / 25.4 * 96)
MIN_SCALE = 0.4   # narrower than this and a table's text is unreadable on paper; it is cut instead


class BrowserMissing(Exception):
    """No Chromium or no Playwright here; the message says how to get them."""


@dataclass
class PageCheck:
    """What a reader's browser shows of report.html at one width."""
    width: int
    images: int = 0
    broken_images: list[str] = field(default_factory=list)      # src of images that did not decode
    overflowing: list[str] = field(default_factory=list)        # elements wider than the page, with their widths
    page_width: int = 0                                         # the document's scroll width

    @property
    def ok(self) -> bool:
        return not self.broken_images and not self.overflowing and self.page_width <= self.width


def find_chromium() -> str:
    given = os.environ.get(CHROMIUM_ENV)
    if given:
        if not Path(given).is_file():
            raise BrowserMissing(f"{CHROMIUM_ENV}={given} is not a file; {HOW_TO}")
        return given
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    raise BrowserMissing(f"no Chromium was found on PATH; {HOW_TO}")


def launch_args() -> list[str]:
    root = hasattr(os, "geteuid") and os.geteuid() == 0
    return (["--no-sandbox"] if root else []) + list(LAUNCH_ARGS)


@contextmanager
def chromium_page(width: int) -> Iterator[object]:
    """A Playwright page in headless Chromium, `width` CSS pixels wide."""
    executable = find_chromium()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        raise BrowserMissing(f"Playwright is not installed; {HOW_TO}") from None
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, headless=True, args=launch_args())
        try:
            page = browser.new_page(viewport={"width": width, "height": 900})
            yield page
        finally:
            browser.close()


# Run in the page: images that did not decode, and elements (tables, figures, preformatted text) whose right edge
# passes the page's content width, which a reader would have to scroll sideways to see.
_INSPECT = """(limit) => {
  const images = Array.from(document.images);
  const broken = images.filter(i => !i.complete || i.naturalWidth === 0).map(i => i.getAttribute('src'));
  const over = [];
  for (const el of document.querySelectorAll('table, img, pre, figure')) {
    const r = el.getBoundingClientRect();
    if (r.right > limit + 0.5) {
      const head = el.tagName === 'TABLE' ? (el.querySelector('th') || {}).textContent || '' : el.getAttribute('src') || '';
      over.push(`${el.tagName.toLowerCase()} "${head.trim().slice(0, 40)}" ends at ${Math.round(r.right)} px`);
    }
  }
  return {images: images.length, broken: broken, over: over,
          pageWidth: document.documentElement.scrollWidth};
}"""


def _inspect(page, width: int) -> PageCheck:
    page.wait_for_load_state("load")
    found = page.evaluate(_INSPECT, width)
    return PageCheck(width=width, images=found["images"], broken_images=found["broken"],
                     overflowing=found["over"], page_width=found["pageWidth"])


def check_page(html: Path, width: int = SCREEN_WIDTH, media: str = "screen") -> PageCheck:
    """Open `html` in headless Chromium at `width` CSS pixels (`media` "print" lays it out as for paper)."""
    with chromium_page(width) as page:
        page.emulate_media(media=media)
        page.goto(Path(html).resolve().as_uri())
        return _inspect(page, width)


def write_pdf(html: Path, pdf: Path) -> PageCheck:
    """Print `html` to `pdf` (A4 landscape, page numbers), scaled so its widest table fits the paper; written to a
    temporary file beside `pdf` and renamed, so a failure never leaves half a PDF. Returns what the print layout
    showed before scaling (images, overflow)."""
    pdf = Path(pdf)
    with chromium_page(PRINT_WIDTH) as page:
        page.emulate_media(media="print")
        page.goto(Path(html).resolve().as_uri())
        check = _inspect(page, PRINT_WIDTH)
        scale = max(MIN_SCALE, min(1.0, PRINT_WIDTH / max(check.page_width, 1)))
        tmp = pdf.with_name(f".{pdf.name}.tmp")
        try:
            page.pdf(path=str(tmp), **PAPER, scale=scale, print_background=True,
                     margin={side: f"{MARGIN_MM}mm" for side in ("top", "right", "bottom", "left")},
                     display_header_footer=True, header_template="<span></span>",
                     footer_template='<div style="font-size:8px;width:100%;text-align:center;color:#666">'
                                     '<span class="pageNumber"></span> / <span class="totalPages"></span></div>')
            os.replace(tmp, pdf)
        finally:
            tmp.unlink(missing_ok=True)
    return check
