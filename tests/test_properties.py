"""Properties that must hold for every input, checked on generated ones (Hypothesis): the readers of the two JSON
files that cross between machines, the text made safe for a terminal and for report.md, bundle confinement, and
the latency statistics.

Derandomized, without an example database and without deadlines: the same examples on every run and every machine
(a failure is reproducible from the test alone) and nothing written into the checkout; the 2-core CI machine
decides nothing by timing.
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from runners.contract import (MANIFEST_SCHEMA, RESULT_SCHEMA, ContractError, validate_manifest,  # noqa: E402
                              validate_result)
from runners.files import JSONFileError, read_json  # noqa: E402
from runners.safety import OutsideBundle, confine, terminal_safe  # noqa: E402
from runners.stats import latency_stats, p50_ci95  # noqa: E402

settings.register_profile("edgeprune", derandomize=True, database=None, deadline=None, max_examples=150,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
settings.load_profile("edgeprune")

# Any JSON value: what a hostile or damaged file can hold once parsed.
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=30)
names = st.text(min_size=1, max_size=12)


def mutate_into(base: dict, keys: list[str], value):
    """``base`` with one nested key (a path of keys and list indexes) replaced by ``value``."""
    data = json.loads(json.dumps(base))
    node = data
    for key in keys[:-1]:
        node = node[int(key)] if isinstance(node, list) else node[key]
    if isinstance(node, list):
        node[int(keys[-1])] = value
    else:
        node[keys[-1]] = value
    return data


MANIFEST = {
    "schema": MANIFEST_SCHEMA, "bundle_id": "b" * 64,
    "evals": {"toy": {"path": "eval/toy.npz", "bytes": 10, "sha256": "0" * 64, "n": 64}},
    "models": [{"name": "toy-0", "task": "toy", "eval": "toy", "experiment": "baseline", "iteration": 0,
                "sparsity": 0.0, "accuracy": 0.9, "params": 100,
                "files": [{"path": "models/toy-0.onnx", "format": "onnx", "bytes": 5, "sha256": "1" * 64}]}],
}
MANIFEST_KEYS = [["schema"], ["bundle_id"], ["evals"], ["evals", "toy"], ["evals", "toy", "n"], ["models"],
                 ["models", "0"], ["models", "0", "name"], ["models", "0", "iteration"], ["models", "0", "accuracy"],
                 ["models", "0", "files"], ["models", "0", "files", "0"], ["models", "0", "files", "0", "path"],
                 ["models", "0", "files", "0", "bytes"]]
RESULT = {
    "schema": RESULT_SCHEMA, "bundle": "b" * 64, "device": {"label": "pi", "logical_cores": 4},
    "settings": {"threads": 0, "batch_size": 1, "min_seconds": 1.0},
    "models": [{"name": "toy-0", "file": "models/toy-0.onnx", "format": "onnx", "status": "ok", "error": None,
                "disk_bytes": 5, "accuracy": 0.9,
                "latency_ms": {"n": 10, "p50": 0.1, "p50_ci95": [0.09, 0.11]},
                "memory_mb": {"rss_peak": 50.0, "peak_method": "vmhwm"}}],
}
RESULT_KEYS = [["schema"], ["device"], ["device", "label"], ["settings", "threads"], ["settings", "batch_size"],
               ["models"], ["models", "0"], ["models", "0", "name"], ["models", "0", "status"],
               ["models", "0", "latency_ms"], ["models", "0", "latency_ms", "p50"],
               ["models", "0", "latency_ms", "p50_ci95"], ["models", "0", "memory_mb"], ["models", "0", "accuracy"]]


# ------------------------------------------------------------------------------------------- JSON readers
@given(st.binary(max_size=300))
def test_read_json_of_any_bytes_gives_a_value_or_one_predicate(tmp_path_factory, data: bytes) -> None:
    path = tmp_path_factory.mktemp("j") / "f.json"
    path.write_bytes(data)
    try:
        read_json(path)
    except JSONFileError as exc:
        assert str(exc) and "\n" not in str(exc)


@given(st.integers(min_value=1, max_value=3000), st.sampled_from("[{"))
def test_read_json_depth_is_bounded_without_recursion_error(tmp_path_factory, depth: int, opener: str) -> None:
    closer = "]" if opener == "[" else "}"
    text = ('{"a":' * depth + "1" + closer * depth) if opener == "{" else (opener * depth + closer * depth)
    path = tmp_path_factory.mktemp("j") / "deep.json"
    path.write_text(text)
    try:
        read_json(path, max_depth=32)
        assert depth <= 32
    except JSONFileError as exc:
        assert depth > 32 and "nests deeper" in str(exc)


def accepted(validate, value) -> bool:
    """Whether ``validate`` accepts ``value``; a refusal must be one non-empty line, and nothing else may be raised."""
    try:
        validate(value)
    except ContractError as exc:
        assert str(exc) and "\n" not in str(exc)
        return False
    return True


@given(json_values)
def test_validate_manifest_accepts_or_says_why_for_any_json(value) -> None:
    accepted(validate_manifest, value)


@given(st.sampled_from(MANIFEST_KEYS), json_values)
def test_a_manifest_with_any_field_replaced_is_accepted_or_refused_in_one_sentence(keys, value) -> None:
    """And an accepted one has what every reader relies on: unique names and paths, typed files."""
    manifest = mutate_into(MANIFEST, keys, value)
    if not accepted(validate_manifest, manifest):
        return
    names_ = [m["name"] for m in manifest["models"]]
    assert all(isinstance(n, str) and n for n in names_) and len(set(names_)) == len(names_)
    for m in manifest["models"]:
        for f in m.get("files", []):
            assert f.get("bytes") is None or (isinstance(f["bytes"], int) and f["bytes"] >= 0)


@given(st.sampled_from(RESULT_KEYS), json_values)
def test_a_result_with_any_field_replaced_loads_or_is_refused_in_one_sentence(keys, value) -> None:
    """Whatever validate_result accepts, the report's reader turns into a frame without raising."""
    from harness.report.load import _manifest_rows, _result_rows, add_derived_columns, device_labels

    result = mutate_into(RESULT, keys, value)
    if not accepted(validate_result, result):
        return
    import pandas as pd

    rows = [row for provider, label in device_labels([result], [Path("r.json")])[0]
            for row in _result_rows(result, Path("r.json"), 0, label, provider, _manifest_rows(MANIFEST))]
    frame = pd.DataFrame(rows)
    for column in ("sparsity", "host_accuracy", "device_accuracy", "latency_ms.p50", "disk_bytes", "file_bytes"):
        frame[column] = pd.to_numeric(frame.get(column, np.nan), errors="coerce")
    frame["format"] = frame["format"].fillna("").astype(str)
    add_derived_columns(frame)


# ------------------------------------------------------------------------------------------- text
@given(st.text())
def test_terminal_safe_text_has_no_control_or_invisible_characters(text: str) -> None:
    safe = terminal_safe(text)
    assert safe.isprintable() and "\x1b" not in safe and "\n" not in safe
    if text.isprintable():
        assert safe == text


@given(st.text())
def test_markdown_text_carries_no_html_link_image_or_line_break(text: str) -> None:
    from harness.report.render import _md_cell, md_text

    for safe in (md_text(text), _md_cell(text)):
        assert "<" not in safe and "](" not in safe and "]:" not in safe and "\n" not in safe
        assert safe.isprintable()


# ------------------------------------------------------------------------------------------- confinement
@given(st.lists(st.sampled_from(["models", "eval", "..", ".", "a.onnx", "/", "link", "inside", "x"]), min_size=1,
                max_size=5))
def test_confine_returns_a_real_path_inside_the_bundle_or_refuses(tmp_path_factory, parts: list[str]) -> None:
    root = tmp_path_factory.mktemp("c")
    bundle = root / "bundle"
    (bundle / "models").mkdir(parents=True)
    (bundle / "inside").mkdir()
    (root / "secret").mkdir()
    (bundle / "link").symlink_to(root / "secret", target_is_directory=True)
    (bundle / "models" / "inside").symlink_to(bundle / "inside", target_is_directory=True)
    rel = "/".join(parts)
    try:
        path = confine(bundle, rel)
    except OutsideBundle as exc:
        assert str(exc)
        return
    real_bundle = os.path.realpath(bundle)
    assert str(path).startswith(real_bundle + os.sep)
    assert path == Path(os.path.realpath(path))


# ------------------------------------------------------------------------------------------- statistics
latencies = st.lists(st.floats(min_value=1e-6, max_value=1e4, allow_nan=False), min_size=1, max_size=400)


@given(latencies)
def test_latency_stats_are_ordered_and_consistent(times: list[float]) -> None:
    s = latency_stats(times)
    a = np.sort(np.asarray(times))
    assert s["n"] == len(times)
    assert s["min"] == a[0] and s["max"] == a[-1]
    assert s["min"] <= s["p50"] <= s["p90"] <= s["p99"] <= s["max"]
    assert s["min"] - 1e-9 <= s["mean"] <= s["max"] + 1e-9 and s["std"] >= 0
    assert s["p50"] == pytest.approx(float(np.median(a)))
    json.dumps(s, allow_nan=False)


@given(latencies)
def test_p50_interval_is_two_order_statistics_covering_95_percent(times: list[float]) -> None:
    a = np.sort(np.asarray(times))
    n = len(a)
    ci = p50_ci95(a)
    if n < 6:
        assert ci is None
        return
    lo, hi = ci
    assert lo <= float(np.median(a)) <= hi and lo in a and hi in a
    # The interval is [x_(m), x_(n-1-m)] for the largest m with P(B <= m) <= 0.025, B ~ Binomial(n, 1/2).
    cdf = [math.fsum(math.comb(n, i) for i in range(k + 1)) / 2**n for k in range(n // 2 + 1)]
    m = max(k for k in range(n // 2 + 1) if cdf[k] <= 0.025)
    assert (lo, hi) == (float(a[m]), float(a[n - 1 - m]))
    assert 1 - 2 * cdf[m] >= 0.95
