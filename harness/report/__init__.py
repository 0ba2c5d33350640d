"""Merge device results with the bundle's host metrics into tables, plots and a Markdown/HTML report.

Public API:
    build_report(result_paths, bundle_dir, out_dir) -> out_dir / "report.md"
    load_frame(result_paths, bundle_dir) -> one DataFrame, a row per (device result, model file)
    ReportError: raised with one sentence for expected mistakes.

pandas and matplotlib are imported only when a report is built, so `import harness.report` stays cheap for the CLI.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from harness.report.errors import ReportError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["ReportError", "build_report", "load_frame"]


def load_frame(result_paths: Sequence[Path], bundle_dir: Path) -> "pd.DataFrame":
    from harness.report.load import load_frame as _load_frame

    return _load_frame(result_paths, bundle_dir)


def build_report(result_paths: Sequence[Path], bundle_dir: Path, out_dir: Path) -> Path:
    from harness.report.build import build_report as _build_report

    return _build_report(result_paths, bundle_dir, out_dir)
