"""The HTML report as a reader's browser shows it (headless Chromium through Playwright): every image decodes, no
table is wider than the page, and it prints to report.pdf. Skipped where no Chromium or no Playwright is installed
(CI installs Debian's chromium when apt is there); `harness report` then says how to get one."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from harness.report.browser import PRINT_WIDTH, BrowserMissing, check_page, find_chromium, write_pdf
from test_report import inputs  # noqa: F401  fixtures shared with the report's other tests
from test_report_sections import rich  # noqa: F401


def browser_available() -> str | None:
    try:
        find_chromium()
        import playwright.sync_api  # noqa: F401
    except (BrowserMissing, ImportError) as exc:
        return str(exc)
    return None


MISSING = browser_available()
needs_browser = pytest.mark.skipif(MISSING is not None, reason=str(MISSING))


@pytest.fixture
def rich_report(rich):
    return rich["out"] / "report.html"


def pdf_pages(pdf: Path) -> int:
    return pdf.read_bytes().count(b"/Type /Page") - pdf.read_bytes().count(b"/Type /Pages")


@pytest.mark.browser
@needs_browser
def test_report_in_chromium_every_image_decodes_no_table_overflows_and_it_prints(rich_report):
    pngs = list(rich_report.parent.glob("*.png"))
    screen = check_page(rich_report, width=1280)
    pdf = rich_report.with_name("report.pdf")
    printed = write_pdf(rich_report, pdf)      # checked as laid out on A4 landscape, before any scaling
    for check, width in ((screen, 1280), (printed, PRINT_WIDTH)):
        assert check.images == len(pngs) > 5 and not check.broken_images, check
        assert not check.overflowing and check.page_width <= width, check
    assert pdf.read_bytes().startswith(b"%PDF-") and pdf_pages(pdf) >= 3
    assert [p.name for p in pdf.parent.iterdir() if p.name.startswith(".")] == [".edgeprune-report"]


@pytest.mark.browser
@needs_browser
def test_the_check_sees_a_broken_image_and_a_table_wider_than_the_page(tmp_path):
    page = tmp_path / "page.html"
    wide = "".join(f"<td>{'x' * 30}-column-{i}</td>" for i in range(12))
    page.write_text(f'<html><body><img src="missing.png" alt="gone"><table><tr><th>head</th>{wide}</tr></table>'
                    '<table style="white-space: nowrap"><tr><td>' + "word " * 400 + "</td></tr></table></body></html>")
    check = check_page(page, width=800)
    assert check.broken_images == ["missing.png"] and len(check.overflowing) >= 1 and not check.ok, check


def test_without_a_browser_the_report_says_how_to_get_one(inputs):
    tmp = inputs["tmp"]
    harness = Path(sys.executable).parent / "harness"
    env = {"PATH": "/nonexistent", "EDGEPRUNE_CHROMIUM": str(tmp / "no-chromium"), "HOME": str(tmp)}
    base = [str(harness), "report", str(inputs["results"][0]), "--bundle", str(inputs["bundle"]),
            "--out", str(tmp / "report")]
    done = subprocess.run(base, capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert "report.pdf: not written" in done.stderr and "apt-get install chromium" in done.stderr
    assert (tmp / "report" / "report.md").exists() and not (tmp / "report" / "report.pdf").exists()
    strict = subprocess.run(base + ["--pdf", "yes"], capture_output=True, text=True, env=env)
    assert strict.returncode == 2 and strict.stderr.startswith("error: ") and "Traceback" not in strict.stderr
