"""The figure every report plot draws on: matplotlib's object API with the Agg canvas (no pyplot global state), one
resolution, saved cropped to its content."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

DPI = 120
# An x axis whose positive values span more than this factor is drawn logarithmic.
WIDE = 20


def new_figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def save(fig: Figure, path: Path) -> None:
    fig.savefig(path, dpi=DPI, bbox_inches="tight")


def log_scale_if_wide(ax: Axes, x: pd.Series) -> None:
    positive = x[x > 0]
    if len(positive) and positive.max() / positive.min() > WIDE:
        ax.set_xscale("log")
