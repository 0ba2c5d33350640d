"""Which variants and files go to the device: the complete bundle (the lab's default), or a selection by file format,
by a glob over variant names, or the "deployable" preset (per model: the dense baseline, the best structured variant,
the best int8 file), so a board on a slow link gets megabytes instead of hundreds.

Every choice reads host numbers only (the manifest's accuracy, parameter counts, int8 checks and file sizes); the
device then measures what was chosen. The manifest records the selection, so the report says what was left out.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from typing import Iterable, Sequence

from exporters.bundle import Exported
from harness.data import TaskData
from harness.errors import EdgepruneError
from harness.experiments.variant import Variant
from runners.contract import DEPLOYABLE_PP, FORMATS, INT8_FORMATS, ONNX, format_key

COMPLETE, DEPLOYABLE = "complete", "deployable"
PRESETS = {
    COMPLETE: "every variant and every file (the lab's default)",
    DEPLOYABLE: f"per model: the dense baseline, the structured variant with the fewest parameters within "
                f"{DEPLOYABLE_PP:g} point of dense host accuracy, and the smallest int8 file within that budget",
}


@dataclass(frozen=True)
class Selection:
    preset: str = COMPLETE
    formats: tuple[str, ...] | None = None      # None: every format
    variants: str | None = None                 # glob over variant names; None: every variant

    def __post_init__(self):
        if self.preset not in PRESETS:
            raise EdgepruneError(f"unknown preset {self.preset!r}; use one of {', '.join(PRESETS)}.")
        unknown = [f for f in self.formats or () if f not in FORMATS]
        if unknown:
            raise EdgepruneError(f"unknown file format {unknown[0]!r} in --formats; known: {', '.join(FORMATS)}.")

    @property
    def complete(self) -> bool:
        return self.preset == COMPLETE and self.formats is None and self.variants is None

    def wants(self, variant: Variant) -> bool:
        return self.variants is None or fnmatch.fnmatchcase(variant.name, self.variants)

    def record(self, kept: int, offered: int) -> dict:
        """The manifest's "selection": what was asked for and how many variants of the plan made it."""
        return {"preset": self.preset, "formats": list(self.formats) if self.formats else None,
                "variants": self.variants, "budget_pp": DEPLOYABLE_PP if self.preset == DEPLOYABLE else None,
                "models": kept, "models_offered": offered}


def _series(variant: Variant) -> str:
    return variant.name.removesuffix(f"-s{variant.seed}")


def _mean(values: Iterable[float]) -> float:
    values = list(values)
    return sum(values) / len(values) if values else float("nan")


def deployable_files(exports: Sequence[Exported]) -> dict[str, set[str]]:
    """Variant name -> formats to keep, per (task, model): the baseline's plain file, the structured series with the
    fewest parameters whose host accuracy (mean over seeds) is within DEPLOYABLE_PP of the baseline's, and the int8
    (series, format) with the smallest file within the same budget (host int8 accuracy); all seeds of a series."""
    keep: dict[str, set[str]] = {}
    groups: dict[tuple, list[Exported]] = {}
    for exp in exports:
        groups.setdefault((exp.variant.task, exp.variant.model.get("name")), []).append(exp)
    for members in groups.values():
        series: dict[str, list[Exported]] = {}
        for exp in members:
            series.setdefault(_series(exp.variant), []).append(exp)
        base = [s for s, exps in series.items() if exps[0].variant.experiment == "baseline"]
        if not base:
            continue
        floor = _mean(e.variant.metrics["accuracy"] for e in series[base[0]]) * 100 - DEPLOYABLE_PP

        def keep_series(name: str, fmt: str) -> None:
            for e in series[name]:
                keep.setdefault(e.variant.name, set()).add(fmt)

        keep_series(base[0], ONNX)
        structured = [(_mean(e.variant.metrics["params"] for e in exps), s) for s, exps in series.items()
                      if exps[0].variant.experiment == "structured"
                      and _mean(e.variant.metrics["accuracy"] for e in exps) * 100 >= floor - 1e-9]
        if structured:
            keep_series(min(structured)[1], ONNX)
        int8 = []
        for s, exps in series.items():
            for fmt in INT8_FORMATS:
                files = [f for e in exps for f in e.files if f.format == fmt]
                accuracy = [e.checks.get(f"{format_key(fmt)}_accuracy") for e in exps]
                if len(files) == len(exps) and None not in accuracy and _mean(accuracy) * 100 >= floor - 1e-9:
                    int8.append((_mean(f.path.stat().st_size for f in files), -_mean(accuracy), s, fmt))
        if int8:
            _, _, s, fmt = min(int8)
            keep_series(s, fmt)
    return keep


def apply(selection: Selection, exports: list[tuple[Exported, TaskData]]) -> list[tuple[Exported, TaskData]]:
    """The exports with only the files the selection keeps (variants matching --variants; for "deployable" the
    files `deployable_files` picks among them); a variant left with no file is dropped."""
    exports = [(exp, task) for exp, task in exports if selection.wants(exp.variant)]
    keep = deployable_files([e for e, _ in exports]) if selection.preset == DEPLOYABLE else None
    out = []
    for exp, task in exports:
        files = [f for f in exp.files
                 if (selection.formats is None or f.format in selection.formats)
                 and (keep is None or f.format in keep.get(exp.variant.name, ()))]
        if files:
            out.append((Exported(exp.variant, files, exp.checks), task))
    if not out:
        raise EdgepruneError("the bundle selection (--preset, --formats, --variants) keeps no model file; "
                             "widen it.")
    return out
