"""Turn the blocks that section functions return into report.md, report.html and CSV files, and publish them.

Sections never write Markdown or HTML themselves: they return Heading / Paragraph / Notes / Table / Image blocks,
so both documents show the same content. Output is assembled in a temporary folder beside the target and swapped
in at the end, so a failed run never leaves a half-written report.
"""

from __future__ import annotations

import html
import re
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence, Union
from urllib.parse import quote

import pandas as pd

from harness import staging
from harness.report.errors import ReportError
from runners.safety import terminal_safe

# Marks a folder as written by build_report, so replacing it never destroys a folder the user made.
MARKER = ".edgeprune-report"
TITLE = "edgeprune report"


@dataclass(frozen=True)
class Heading:
    level: int
    text: str


@dataclass(frozen=True)
class Paragraph:
    text: str


@dataclass(frozen=True)
class Notes:
    items: tuple[str, ...]


@dataclass(frozen=True, eq=False)
class Table:
    display: pd.DataFrame  # formatted strings, as shown in the documents
    data: pd.DataFrame  # raw numbers, written to csv_name
    csv_name: str


@dataclass(frozen=True)
class Image:
    file: str  # a PNG the section wrote into the output folder
    alt: str
    caption: str = ""  # one line under the plot: what to look at


Block = Union[Heading, Paragraph, Notes, Table, Image]


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", str(text)).strip("-").lower() or "x"


# Markdown that text taken from a manifest or a result (model names, device labels, errors, paths) must not carry
# into report.md: raw HTML and autolinks (<script>, <img onerror>, <http://...>), links and images (a remote image
# is fetched when the report is opened: an inline link needs "](", a reference link a "]:" definition) and line
# breaks that would start a new block. Brackets themselves stay, so "indices [2, nnz]" reads as written.
_MD_ESCAPES = {"<": "&lt;", "](": "]\\(", "]:": "]\\:"}
_MD_PATTERN = re.compile("|".join(re.escape(k) for k in _MD_ESCAPES))


def md_text(text: object) -> str:
    """``text`` safe to place in report.md: no HTML, links or images, no line break (a block's text is one line),
    control characters shown as escapes. Every block's text goes through this in to_markdown, so a section never
    has to think about where its strings came from."""
    text = _MD_PATTERN.sub(lambda m: _MD_ESCAPES[m.group()], str(text))
    return " ".join(terminal_safe(line) for line in text.split("\n"))


def _md_cell(value: object) -> str:
    return md_text(str(value).replace("\\", "\\\\")).replace("|", "\\|")


def _md_target(name: str) -> str:
    return quote(name, safe="/")


def markdown_table(table: pd.DataFrame) -> str:
    """GitHub Markdown table; by hand because DataFrame.to_markdown needs tabulate, which is not a dependency."""
    header = "| " + " | ".join(_md_cell(c) for c in table.columns) + " |"
    rule = "|" + "|".join("---" for _ in table.columns) + "|"
    rows = ["| " + " | ".join(_md_cell(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join([header, rule, *rows])


def to_markdown(blocks: Sequence[Block]) -> str:
    parts = [f"# {TITLE}"]
    for block in blocks:
        if isinstance(block, Heading):
            parts.append(f"{'#' * block.level} {md_text(block.text)}")
        elif isinstance(block, Paragraph):
            parts.append(md_text(block.text))
        elif isinstance(block, Notes):
            parts.append("\n".join(f"- {md_text(item)}" for item in block.items))
        elif isinstance(block, Table):
            parts.append(markdown_table(block.display)
                         + f"\n\nCSV: [{md_text(block.csv_name)}]({_md_target(block.csv_name)})")
        elif isinstance(block, Image):
            parts.append(f"![{md_text(block.alt)}]({_md_target(block.file)})"
                         + (f"\n\n*{md_text(block.caption)}*" if block.caption else ""))
    return "\n\n".join(parts) + "\n"


def _inline_html(text: str) -> str:
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(text))


# Tables stay within the page: cells wrap at spaces, hyphens and the <wbr> after "_" and "/", never inside a word
# (tests/test_report_browser.py checks it in Chromium). Print: the whole width of the paper, figures kept whole.
STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 80em; padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0; font-size: 0.85em; max-width: 100%; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.5em; text-align: left; vertical-align: top;
         overflow-wrap: break-word; }
th { background: #f2f2f2; }
thead { display: table-header-group; }
figure { margin: 0.5em 0 1.2em; }
figcaption { font-size: 0.9em; color: #444; font-style: italic; }
img { max-width: 100%; box-sizing: border-box; border: 1px solid #eee; margin: 0.5em 0; }
code { background: #f5f5f5; padding: 0 0.2em; overflow-wrap: anywhere; }
@media print {
  body { max-width: none; margin: 0; padding: 0; font-size: 10pt; }
  figure, img { break-inside: avoid; }
  img { max-height: 170mm; }
  h2, h3 { break-after: avoid; }
}
"""


def _compact(table_html: str) -> str:
    """One line per table row, so the page source reads like the Markdown (the summary within its first lines); a
    line may break after "_" or "/" in a cell (<wbr>), so names such as bitmask_deflate or models/x.onnx wrap
    instead of pushing the table past the page."""
    table_html = re.sub(r">([^<]+)<", lambda m: ">" + re.sub(r"([_/])", r"\1<wbr>", m.group(1)) + "<", table_html)
    return re.sub(r"(</tr>|<tbody>|</thead>)", r"\1\n", re.sub(r">\s+<", "><", table_html)).strip()


def to_html(blocks: Sequence[Block]) -> str:
    parts = [f"<h1>{html.escape(TITLE)}</h1>"]
    for block in blocks:
        if isinstance(block, Heading):
            parts.append(f"<h{block.level}>{html.escape(block.text)}</h{block.level}>")
        elif isinstance(block, Paragraph):
            parts.append(f"<p>{_inline_html(block.text)}</p>")
        elif isinstance(block, Notes):
            parts.append("<ul>" + "".join(f"<li>{_inline_html(i)}</li>" for i in block.items) + "</ul>")
        elif isinstance(block, Table):
            parts.append(_compact(block.display.to_html(index=False, border=0, escape=True, na_rep="—")))
            name = html.escape(block.csv_name)
            parts.append(f'<p class="csv">CSV: <a href="{name}">{name}</a></p>')
        elif isinstance(block, Image):
            caption = f"<figcaption>{_inline_html(block.caption)}</figcaption>" if block.caption else ""
            parts.append(f'<figure><img src="{html.escape(block.file)}" alt="{html.escape(block.alt)}">'
                         f"{caption}</figure>")
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(TITLE)}</title>\n<style>{' '.join(STYLE.split())}</style>\n</head>\n<body>\n"
        + "\n".join(parts)
        + "\n</body>\n</html>\n"
    )


def write_documents(blocks: Sequence[Block], folder: Path) -> Path:
    names = [block.csv_name for block in blocks if isinstance(block, Table)]
    if len(names) != len(set(names)):
        raise ValueError(f"two report tables share a CSV name: {sorted(n for n in names if names.count(n) > 1)}")
    for block in blocks:
        if isinstance(block, Table):
            block.data.to_csv(folder / block.csv_name, index=False)
    (folder / "report.html").write_text(to_html(blocks), encoding="utf-8")
    (folder / "report.md").write_text(to_markdown(blocks), encoding="utf-8")
    (folder / MARKER).write_text("written by harness.report.build_report; the folder is replaced on rebuild\n")
    return folder / "report.md"


def _check_replaceable(out_dir: Path) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise ReportError(f"{out_dir} is a file, not a folder for the report; choose another --out")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not (out_dir / MARKER).exists():
        raise ReportError(
            f"{out_dir} already holds files that are not an edgeprune report; choose another --out or empty it"
        )


@contextmanager
def staged_folder(out_dir: Path) -> Iterator[Path]:
    """Yield an empty folder beside out_dir; if the block succeeds it replaces out_dir, otherwise it vanishes
    (harness.staging: one writer at a time, killed writers' leftovers cleaned, an atomic swap)."""
    out_dir = Path(out_dir)
    _check_replaceable(out_dir)
    with staging.staged_folder(out_dir.resolve(), check=lambda: _check_replaceable(out_dir)) as folder:
        yield folder
