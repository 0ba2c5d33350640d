"""The report's first screen (summary with ratios, intervals and warnings), one unit per quantity, and plots that
read at a glance (plain log ticks that do not collide, points rather than zig-zag lines, captions, no repeated
heat-map rows)."""

from __future__ import annotations

import copy
import re

import numpy as np
import pandas as pd
import pytest

from harness.report import build_report, load_frame
from harness.report.compare import PAIRED, AABand, Ratio, aa_band
from harness.report.frame import NO_BAND_MARGIN, clearly_slower
from harness.report.sections.sensitivity import distinct_groups
from runners.contract import ROLE_CONTROL, ROLE_FILE, ROLE_REFERENCE
from runners.stats import ratio_interval
from test_report import measurement, write_json

DEVICE = "board (threads 1, batch 1)"
ROUNDS = {  # p50 of each of three timing windows (ms)
    "base": [0.100, 0.100, 0.100], "copy": [0.102, 0.098, 0.100], "half": [0.061, 0.059, 0.060],
    "quarter": [0.031, 0.029, 0.030], "dynamic": [1.20, 1.25, 1.15], "static": [0.099, 0.101, 0.100],
}


def model(name, experiment, accuracy, params, files, **extra):
    return {"name": f"{name}-s0", "series": name, "task": "mnist", "eval": "mnist", "model": "ffn",
            "experiment": experiment, "method": extra.pop("method", "dense"), "iteration": extra.pop("iteration", 0),
            "seed": 0, "sparsity": 0.0, "params": params, "nonzero_params": params, "accuracy": accuracy,
            "files": [{"path": f"models/{name}-s0{suffix}", "format": fmt, "bytes": size, "sha256": "0" * 64}
                      for fmt, suffix, size in files], **extra}


def manifest():
    plain = lambda size: ("onnx", ".onnx", size)   # noqa: E731
    return {
        "schema": "edgeprune.manifest/1", "bundle_id": "c" * 64, "profile": "quick", "created": "2026-12-01",
        "evals": {"mnist": {"path": "eval/mnist.npz", "bytes": 1, "sha256": "1" * 64, "n": 1000,
                            "majority_accuracy": 0.1135}},
        "models": [
            model("mnist-ffn-baseline", "baseline", 0.980, 10_000,
                  [plain(40_500), ("onnx-int8-dynamic", ".int8-dynamic.onnx", 12_000),
                   ("onnx-int8-static", ".int8-static.onnx", 50_000)]),
            model("mnist-ffn-repeated-l1-it0", "repeated", 0.980, 10_000, [plain(40_500)], method="l1"),
            model("mnist-ffn-structured-neurons-l1-r50", "structured", 0.977, 5_000, [plain(20_000)],
                  method="neurons-l1", iteration=1, structure_ratio=0.5, finetuned=True),
            model("mnist-ffn-structured-neurons-l1-r75", "structured", 0.972, 2_500, [plain(10_000)],
                  method="neurons-l1", iteration=1, structure_ratio=0.75, finetuned=True),
        ],
    }


def result(data, rounds=True, **device):
    """A result as runner 0.5 writes it: with `rounds`, every file's windows beside the dense baseline's (its
    reference), the paired ratio per file, and the baseline timed again as the A/A control (the "copy" windows)."""
    key = {"baseline": "base", "repeated": "copy", "r50": "half", "r75": "quarter"}
    base_file = data["models"][0]["files"][0]["path"]
    models = []
    for m in data["models"]:
        for f in m["files"]:
            which = {"onnx-int8-dynamic": "dynamic", "onnx-int8-static": "static"}.get(f["format"]) or next(
                v for k, v in key.items() if k in m["name"])
            p50s = ROUNDS[which]
            entry = measurement(m, f, float(np.median(p50s)), m["accuracy"])
            if rounds:
                reference = f["path"] == base_file
                entry.update(role=ROLE_REFERENCE if reference else ROLE_FILE, reference=base_file)
                entry["latency_ms"]["p50_rounds"] = p50s
                if not reference:
                    entry["latency_ms"]["reference_p50_rounds"] = ROUNDS["base"]
                    entry["ratio_to_reference"] = ratio_interval(p50s, ROUNDS["base"])
            models.append(entry)
    if rounds:
        first = data["models"][0]
        control = measurement(first, first["files"][0], float(np.median(ROUNDS["copy"])), first["accuracy"])
        control.update(role=ROLE_CONTROL, reference=base_file,
                       ratio_to_reference=ratio_interval(ROUNDS["copy"], ROUNDS["base"]))
        control["latency_ms"].update(p50_rounds=ROUNDS["copy"], reference_p50_rounds=ROUNDS["base"])
        models.append(control)
    return {"schema": "edgeprune.result/1", "bundle": data["bundle_id"], "created": "2026-12-02",
            "device": {"label": "board", **device}, "runner_version": "0.5.0" if rounds else "0.1.0",
            "settings": {"threads": 1, "batch_size": 1, "api": "iobinding", "rounds": 3 if rounds else 1},
            "models": models}


@pytest.fixture
def report(tmp_path):
    def build(data=None, rounds=True, **device):
        data = data or manifest()
        bundle = tmp_path / "bundle"
        bundle.mkdir(exist_ok=True)
        write_json(bundle / "manifest.json", data)
        path = write_json(tmp_path / "r.json", result(data, rounds, **device))
        out = tmp_path / "report"
        md = build_report([path], bundle, out).read_text()
        return md, (out / "report.html").read_text(), load_frame([path], bundle), out
    return build


def test_first_screen_names_the_recommendation_its_ratios_and_the_warnings(report):
    md, html, _, _ = report(emulated=True, during_run={"throttled": True, "frequency_dropped": True})
    for text in (md, html):
        first = "\n".join(text.splitlines()[:40])
        assert "Summary" in first and DEVICE in first
        # within 0.5 point: the 50% variant, 0.6x the dense p50 (median of 0.61, 0.59, 0.60 beside 0.1 ms) with the
        # t interval of the three log ratios; within 1 point: the 75% variant; the A/A control (1.02, 0.98, 1.00)
        assert "neurons-l1 50% + fine-tune [dense fp32]" in first and "0.60× [0.58, 0.63]" in first
        assert "neurons-l1 75% + fine-tune [dense fp32]" in first and "0.30× [0.28, 0.33]" in first
        assert "1.00× [0.95, 1.05]" in first
        assert "0.49×" in first and "0.25×" in first           # sizes 20 kB and 10 kB against 40.5 kB
        for warning in ("Quick profile", "One seed", "emulated", "throttled",
                        "mnist-ffn-baseline [onnx-int8-dynamic] 12.00×",
                        "1 file(s) larger than the fp32 file", "mnist-ffn-baseline [onnx-int8-static] 1.23×"):
            assert warning in first, warning
    assert "beat their dense baseline" not in md      # both structured variants are below dense


def test_without_rounds_the_ratios_are_points_and_no_band_is_claimed(report):
    md, _, frame, _ = report(rounds=False)
    summary = md[md.index("## Summary"):md.index("## Provenance")]
    assert "0.60× (no interval)" in summary and "[0.58" not in summary and "[0.95, 1.05]" not in summary
    assert "(within noise)" not in summary
    assert aa_band(frame, DEVICE, "mnist") is None
    # the int8 dynamic file is still 12x slower: beyond the 10% margin used without a band
    assert "[onnx-int8-dynamic] 12.00×" in summary


def test_chance_level_and_extra_fine_tuning_are_warned(report):
    data = manifest()
    data["evals"]["mnist"]["majority_accuracy"] = 0.97          # dense 98% is within 5 points of chance
    data["models"][2]["accuracy"] = 0.985                        # a fine-tuned structured variant beats dense
    md, _, _, _ = report(data)
    first = "\n".join(md.splitlines()[:40])
    assert "At chance level: mnist (dense 98.0%, most frequent label 97.0%)" in first
    assert "Structured variants beat their dense baseline after fine-tuning: mnist (neurons-l1 50% + fine-tune " \
           "98.5% against dense 98.0%)" in first


def test_a_file_is_clearly_slower_only_beyond_the_aa_band_or_without_one_beyond_the_margin():
    band = AABand(Ratio(1.0, (0.95, 1.05), 3, PAIRED))
    assert not clearly_slower(Ratio(1.04, (1.01, 1.07), 3, PAIRED), band)     # its interval reaches into the band
    assert clearly_slower(Ratio(1.20, (1.10, 1.30), 3, PAIRED), band)
    assert not clearly_slower(Ratio(1.08, None, 1, PAIRED), None)              # within the 10% margin
    assert clearly_slower(Ratio(NO_BAND_MARGIN * 1.1, None, 1, PAIRED), None)
    assert not clearly_slower(None, band)


LATENCY_HEADER = re.compile(r"latency|p50|speed", re.IGNORECASE)


def test_every_table_states_its_unit_and_none_gives_latency_in_seconds(report):
    md, _, _, out = report()
    lines = md.splitlines()
    headers = [cell.strip() for line, rule in zip(lines, lines[1:]) if rule.startswith("|---")
               for cell in line.strip("|").split("|")]
    assert len(headers) > 50 and not [h for h in headers if "(s)" in h]
    for header in headers:   # a latency, or a ratio of latencies ("vs dense", "frontier", "Speed-up")
        if LATENCY_HEADER.search(header) and not re.search(r"vs dense|frontier|Speed-up", header):
            assert "(ms)" in header, header
    for csv in out.glob("*.csv"):
        columns = pd.read_csv(csv, nrows=0).columns
        seconds = [c for c in columns if c.endswith("_s") or "(s)" in c or "_s_" in c]
        assert not seconds or csv.name.startswith("lab-template-"), (csv.name, seconds)


def test_plot_axes_use_milliseconds_points_not_lines_and_plain_log_ticks(report, monkeypatch):
    from harness.report.sections import pareto, plots

    figures = []
    for module in (plots, pareto):
        real = module.save
        monkeypatch.setattr(module, "save", lambda fig, path, real=real: (figures.append((path.name, fig)),
                                                                          real(fig, path)))
    data = manifest()
    for m in data["models"]:       # latencies across more than a decade: log axis
        m["files"] = [f for f in m["files"] if f["format"] != "onnx-int8-static"]
    _, _, _, out = report(data)
    assert figures
    for name, fig in figures:
        fig.canvas.draw()
        for ax in fig.axes:
            for label in (ax.get_xlabel(), ax.get_ylabel()):
                assert "(s)" not in label and ("atency" not in label or "(ms)" in label), (name, label)
            if ax.get_xscale() == "log":
                shown = [t for t in ax.get_xticklabels() if t.get_text() and t.get_visible()
                         and ax.get_xlim()[0] <= t.get_position()[0] <= ax.get_xlim()[1]]
                assert shown and all(re.fullmatch(r"[0-9.]+", t.get_text()) for t in shown), name
                boxes = [t.get_window_extent() for t in shown]
                assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:]), name
        if name in ("mnist-accuracy-vs-latency.png", "mnist-accuracy-vs-disk-size.png"):
            assert all(line.get_linestyle() == "None" for ax in fig.axes for line in ax.get_lines()
                       if len(line.get_xdata()) > 1), name
    assert any(ax.get_xscale() == "log" for name, fig in figures if name == "mnist-accuracy-vs-latency.png"
               for ax in fig.axes)
    md = (out / "report.md").read_text()
    images = re.findall(r"!\[[^\]]*\]\(([^)]+\.png)\)\n\n\*([^*]+)\*", md)
    assert len(images) == len(list(out.glob("*.png"))) and all(len(caption) > 40 for _, caption in images)


def test_a_group_that_repeats_another_is_dropped_from_the_heat_map():
    rows = [{"task": "sst2", "model": "transformer", "group": g, "kind": "unstructured", "ratio": r,
             "accuracy": acc, "group_params": params}
            for g, params, accs in (("layer 0", 100, (0.8, 0.7)), ("layer 1", 100, (0.79, 0.6)),
                                    ("earlier layers", 100, (0.8, 0.7)), ("later layers", 100, (0.79, 0.6)))
            for r, acc in zip((0.25, 0.5), accs)]
    kept = distinct_groups(pd.DataFrame(rows))
    assert list(dict.fromkeys(kept["group"])) == ["layer 0", "layer 1"]
    other_model = pd.DataFrame(copy.deepcopy(rows)).assign(model="ffn")
    assert len(distinct_groups(pd.concat([pd.DataFrame(rows), other_model]))) == 8


def test_a_result_with_two_providers_gets_a_summary_row_per_provider(tmp_path):
    data = manifest()
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    write_json(bundle / "manifest.json", data)
    measured = result(data)
    measured["settings"]["providers"] = ["CPUExecutionProvider", "XnnpackExecutionProvider"]
    second = copy.deepcopy(measured["models"])
    for entry in measured["models"]:
        entry["provider"] = "CPUExecutionProvider"
    for entry in second:
        entry["provider"] = "XnnpackExecutionProvider"
    measured["models"] += second
    path = write_json(tmp_path / "r.json", measured)
    md = build_report([path], bundle, tmp_path / "report").read_text()
    rows = [line for line in md[md.index("## Summary"):md.index("## Provenance")].splitlines()
            if line.startswith("| board")]
    assert [row.split(" | ")[0] for row in rows] == [
        "| board [cpu] (threads 1, batch 1)", "| board [cpu] (threads 1, batch 1)",
        "| board [xnnpack] (threads 1, batch 1)", "| board [xnnpack] (threads 1, batch 1)"]
