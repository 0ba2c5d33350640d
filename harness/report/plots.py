"""The figure every report plot draws on: matplotlib's object API with the Agg canvas (no pyplot global state), one
resolution, saved cropped to its content."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

DPI = 120
# An x axis whose positive values span more than this factor is drawn logarithmic.
WIDE = 20


def new_figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def save(fig: Figure, path: Path) -> None:
    fig.savefig(path, dpi=DPI, bbox_inches="tight")


def plain_number(value: float, _position: object = None) -> str:
    """0.03, 0.2, 5, 100: a tick label as a reader writes the number (no 3x10^-1)."""
    return f"{value:g}"


def log_scale_if_wide(ax: Axes, x: pd.Series) -> bool:
    """A log x axis where the positive values span more than WIDE, labelled at 1, 2 and 5 of each decade in plain
    numbers: matplotlib's default labels every minor tick of a short span in scientific notation (3x10^-1 and
    4x10^-1 collide)."""
    positive = x[x > 0]
    if not len(positive) or positive.max() / positive.min() <= WIDE:
        return False
    ax.set_xscale("log")
    decades = np.log10(positive.max() / positive.min())
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0) if decades <= 3 else (1.0,)))
    ax.xaxis.set_major_formatter(FuncFormatter(plain_number))
    ax.xaxis.set_minor_locator(LogLocator(base=10, subs=tuple(range(1, 10))))
    ax.xaxis.set_minor_formatter(NullFormatter())
    return True
