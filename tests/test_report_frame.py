"""The report's helper modules: format.display_frame, the series of a variant (load), seed aggregation and plan order
(frame)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from harness.report.format import DASH, display_frame, fmt_ratio, mean_std
from harness.report.frame import aggregate_seeds, plan_position
from harness.report.load import variant_series


def test_display_frame_formats_each_declared_column_and_skips_none():
    data = pd.DataFrame({"method": ["l1", "wanda"], "sparsity_pct": [50.0, np.nan], "ratio": [1.666, np.nan],
                         "disk_mb_mean": [0.04, 0.02], "disk_mb_std": [0.001, np.nan]}, index=[7, 3])
    display = display_frame(data, [
        ("Method", "method", None),
        None,
        ("Sparsity (%)", "sparsity_pct", ".2f"),
        ("Speed-up", "ratio", fmt_ratio),
        ("Disk Size (MB)", mean_std("disk_mb", ".4g"), None),
        ("Label", lambda row: f"{row['method']}!", None),
    ])
    assert list(display.columns) == ["Method", "Sparsity (%)", "Speed-up", "Disk Size (MB)", "Label"]
    assert list(display.index) == [7, 3]
    assert display.loc[7].tolist() == ["l1", "50.00", "1.67×", "0.04 ± 0.001", "l1!"]
    assert display.loc[3].tolist() == ["wanda", DASH, DASH, "0.02", "wanda!"]
    assert display_frame(data.head(0), [("Label", lambda row: "x", None)]).empty


def test_series_is_the_manifest_key_else_the_name_without_its_seed():
    frame = pd.DataFrame({"name": ["a-s1", "b-s12", "c", "d-seed0", "e-s0"],
                          "series": [np.nan, "", None, "d", "given"]})
    assert variant_series(frame).tolist() == ["a", "b", "c", "d", "given"]


def rows(**columns):
    n = len(next(iter(columns.values())))
    defaults = {"task": ["mnist"] * n, "experiment": ["structured"] * n, "method": ["neurons-l1"] * n,
                "order": list(range(n)), "accuracy_mismatch": [False] * n}
    return pd.DataFrame({**defaults, **columns})


def test_seeds_are_grouped_by_series_not_by_iteration():
    """Structured variants of newer manifests all carry iteration 1: two of one method must stay two rows."""
    data = rows(series=["r50", "r50", "r25", "r25"], iteration=[1, 1, 1, 1], seed=[0, 1, 0, 1],
                sparsity_pct=[40.0, 42.0, 15.0, 15.0])
    agg = aggregate_seeds(data, measures=["sparsity_pct"])
    assert agg["sparsity_pct_mean"].tolist() == [41.0, 15.0]
    assert agg["seeds"].tolist() == ["0, 1", "0, 1"] and agg["n_seeds"].tolist() == [2, 2]
    assert list(agg.columns[:4]) == ["task", "experiment", "method", "iteration"] and "series" not in agg


def test_plan_position_is_plan_index_where_given_else_iteration():
    new = rows(series=["a", "b"], iteration=[1, 1], plan_index=[2, 0])
    old = rows(series=["a", "b"], iteration=[2, 0])
    assert plan_position(new).tolist() == [2, 0]
    assert plan_position(old).tolist() == [2, 0]
    mixed = rows(series=["imp", "s"], iteration=[3, 1], plan_index=[np.nan, 0])
    assert plan_position(mixed).tolist() == [3, 0]
