"""How the report writes a number, a fact or a file name into a table cell; every section formats through these.

`display_frame` turns a declarative list of (header, column, formatter) into the table the documents show, so a
section says which column is shown how instead of writing a loop per column.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Optional, Sequence, Union

import numpy as np
import pandas as pd

from harness.report.load import is_missing
from runners.contract import ONNX

FLAG = "⚠"
DASH = "—"


def _format(value: float, spec: str, std: bool = False) -> str:
    """".2f" as usual; ".Ng" as N significant digits without scientific notation (2 for a spread)."""
    if spec.endswith("g"):
        digits = 2 if std else int(spec[1:-1])
        return np.format_float_positional(value, precision=digits, unique=False, fractional=False, trim="-")
    return format(value, spec)


def fmt_number(value: Any, spec: str) -> str:
    return DASH if is_missing(value) else _format(float(value), spec)


def fmt_mean_std(mean: Any, std: Any, spec: str) -> str:
    """"mean ± std" when several seeds give a spread, else just the value."""
    if is_missing(mean):
        return DASH
    if is_missing(std):
        return _format(float(mean), spec)
    return f"{_format(float(mean), spec)} ± {_format(float(std), spec, std=True)}"


def fmt_int(value: Any) -> str:
    return DASH if is_missing(value) else f"{int(round(float(value))):d}"


def fmt_count(value: Any) -> str:
    """A parameter count with thousands separators: 10,000."""
    return DASH if is_missing(value) else f"{value:,.0f}"


def fmt_ratio(value: Any) -> str:
    """A ratio of two sizes or times: 1.67×; below 0.1 two significant digits (0.041×, not 0.04×)."""
    return DASH if is_missing(value) else f"{ratio_number(value)}×"


def ratio_number(value: float) -> str:
    return f"{value:.2f}" if abs(value) >= 0.1 else _format(float(value), ".2g")


def fmt_seeds(seeds: Sequence[Any]) -> str:
    present = sorted({int(s) for s in seeds if not is_missing(s)})
    return ", ".join(map(str, present)) if present else DASH


def fmt_text(value: Any) -> str:
    """A device fact or setting as text: lists joined, whole floats without ".0", nothing as a dash."""
    if value is None or value == "":
        return DASH
    if isinstance(value, (list, tuple)):
        return ", ".join(map(str, value)) or DASH
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def known(flat: Mapping[str, Any], key: str) -> Any:
    """flat[key], or None where it is absent or NaN (a fact one result has and another lacks)."""
    value = flat.get(key)
    return None if is_missing(value) else value


def unique_name(stem: str, suffix: str, taken: set[str]) -> str:
    """stem + suffix, numbered when labels that differ only in punctuation would share a file name."""
    name, number = f"{stem}{suffix}", 1
    while name in taken:
        number += 1
        name = f"{stem}-{number}{suffix}"
    taken.add(name)
    return name


def format_rank(fmt: str) -> tuple[int, str]:
    """Plain ONNX first, then its variants alphabetically."""
    return (0 if fmt == ONNX else 1, fmt)


# ---------------------------------------------------------------- display tables

Row = Mapping[str, Any]
# A format spec for fmt_number (".2f", ".3g"), a function of the value, or None for the value as it is.
Formatter = Union[str, Callable[[Any], Any], None]
# A column name, or a function of the whole row for a cell built from several numbers.
Source = Union[str, Callable[[Row], Any]]
DisplayColumn = Optional[tuple[str, Source, Formatter]]


def mean_std(stem: str, spec: str) -> Callable[[Row], str]:
    """Cell of <stem>_mean ± <stem>_std (columns of frame.aggregate_seeds)."""
    return lambda row: fmt_mean_std(row[f"{stem}_mean"], row[f"{stem}_std"], spec)


def _cells(data: pd.DataFrame, source: Source, formatter: Formatter) -> list:
    if callable(source):
        values = [source(row) for _, row in data.iterrows()]
    else:
        values = list(data[source])
    if isinstance(formatter, str):
        return [fmt_number(v, formatter) for v in values]
    if formatter is not None:
        return [formatter(v) for v in values]
    return values


def display_frame(data: pd.DataFrame, columns: Sequence[DisplayColumn]) -> pd.DataFrame:
    """The table a document shows: one column per (header, source, formatter), in order; a None entry is left out
    (a column shown only sometimes, e.g. "Task" where there are several tasks)."""
    return pd.DataFrame({header: _cells(data, source, formatter)
                         for header, source, formatter in (c for c in columns if c is not None)},
                        index=data.index)
