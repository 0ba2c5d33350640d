"""build_report: load once, run every section over the merged frame, write the documents, swap them in."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import pandas as pd

from harness.report.load import load_frame
from harness.report.render import Block, staged_folder, write_documents
from harness.report.sections.devices import devices_section
from harness.report.sections.lab_tables import lab_tables_section
from harness.report.sections.methods import methods_section
from harness.report.sections.pareto import pareto_section
from harness.report.sections.per_file import per_file_section
from harness.report.sections.per_parameter_sparsity import per_parameter_sparsity_section
from harness.report.sections.plots import plots_section
from harness.report.sections.provenance import provenance_section
from harness.report.sections.quantization import quantization_section
from harness.report.sections.runtime import runtime_section
from harness.report.sections.sensitivity import sensitivity_section
from harness.report.sections.sparse_files import sparse_files_section
from harness.report.sections.storage import storage_section
from harness.report.sections.structured import structured_section
from harness.report.sections.summary import summary_section

Section = Callable[[pd.DataFrame, Path], list[Block]]

# Report order. A new section is a module in sections/ and a line here; a section whose data is absent returns no
# blocks.
SECTIONS: list[Section] = [
    summary_section,  # first: the first screen says what to deploy and what qualifies the numbers
    provenance_section,
    devices_section,
    lab_tables_section,
    per_parameter_sparsity_section,
    storage_section,
    sparse_files_section,  # a subsection of Host storage
    plots_section,
    methods_section,
    structured_section,
    runtime_section,
    sensitivity_section,
    quantization_section,
    pareto_section,
    per_file_section,
]


def build_report(result_paths: Sequence[Path], bundle_dir: Path, out_dir: Path) -> Path:
    """Merge device results with the bundle's host numbers into out_dir (report.md, report.html, CSV, PNG).

    Raises ReportError for an unusable result, manifest or output folder; out_dir is replaced only when the whole
    report has been written.
    """
    frame = load_frame(result_paths, bundle_dir)
    out_dir = Path(out_dir)
    with staged_folder(out_dir) as staging:
        blocks = [block for section in SECTIONS for block in section(frame, staging)]
        write_documents(blocks, staging)
    return out_dir / "report.md"
