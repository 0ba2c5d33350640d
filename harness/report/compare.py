"""Latency comparisons a reader can trust: every speed-up the report states, with its interval over rounds, and the
A/A noise floor it is judged against.

The runner (0.5 on) times each file's windows beside windows of its group's dense reference, one pair per round, and
times the reference again as a distinct entry, the A/A control. From that:
- `file_ratio(row)`: the file's latency over its reference's, the median of the per-round ratios with a t interval on
  their logs (runners.stats.ratio_interval; docs/formats.md says why t and not a bootstrap).
- `latency_ratio(rows, base)`: the same for any file against any other of one result: against the reference
  itself it is the file's own paired ratio; against another file it divides the two files' per-round ratios to the
  reference (both pairs were timed next to each other). The same file with two execution providers of one result
  is compared round by round (both windows fall in the same round). Files of different results (threads, devices)
  were never timed together, so they get the Welch interval of their window p50s. Results without rounds get a bare
  ratio.
- `AABand`: the A/A ratio of a group with its interval; a comparison whose ratio lies inside the band is within
  noise.
The seeds of one variant are files of the same shape, so their per-round ratios are pooled.

Results written before runner 0.5 have no paired windows, and before 0.3 no rounds: `timing_label` says which.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

import pandas as pd

from harness.report.format import DASH, fmt_ratio, ratio_number
from harness.report.load import is_missing
from runners.stats import ratio_interval, unpaired_ratio_interval

PAIRED, BY_ROUND, UNPAIRED, ONE_WINDOW = "paired rounds", "same rounds", "unpaired rounds", "one window"


@dataclass(frozen=True)
class Ratio:
    """A ratio of latencies (numerator over denominator): point estimate, 95% interval (None: not estimable) and
    how it was made (PAIRED, UNPAIRED, ONE_WINDOW), over `n` rounds."""

    median: float
    ci95: tuple[float, float] | None
    n: int
    method: str

    def inverse(self) -> "Ratio":
        """The same comparison the other way round: a latency ratio becomes a speed-up."""
        ci = None if self.ci95 is None else (1 / self.ci95[1], 1 / self.ci95[0])
        return Ratio(1 / self.median, ci, self.n, self.method)

    def overlaps(self, other: "Ratio") -> bool:
        """Whether the two intervals share a value (either without an interval: unknown, so treated as overlapping)."""
        if self.ci95 is None or other.ci95 is None:
            return True
        return self.ci95[0] <= other.ci95[1] and other.ci95[0] <= self.ci95[1]

    def text(self) -> str:
        """"2.63× [2.45, 2.80]", or "2.63× (no interval)" for one window."""
        if self.ci95 is None:
            return f"{fmt_ratio(self.median)} (no interval)"
        return f"{fmt_ratio(self.median)} [{ratio_number(self.ci95[0])}, {ratio_number(self.ci95[1])}]"


def _numbers(value: Any) -> list[float | None] | None:
    if not isinstance(value, (list, tuple)):
        return None
    return [None if is_missing(v) else float(v) for v in value]


def _from(summary: Mapping[str, Any] | None, method: str) -> Ratio | None:
    if not summary:
        return None
    ci = summary.get("ci95")
    return Ratio(float(summary["median"]), None if ci is None else (float(ci[0]), float(ci[1])),
                 int(summary.get("n") or 0), method)


def relative_rounds(row: Mapping[str, Any]) -> list[float | None] | None:
    """The file's latency over its group's reference, round by round, from the windows timed next to each other
    (1 in every round for the reference itself; None for a round without a reference window); None for a result
    without paired windows."""
    p50s = _numbers(row.get("latency_ms.p50_rounds"))
    if p50s is None:
        return None
    if is_reference(row):
        return [1.0] * len(p50s)
    refs = _numbers(row.get("latency_ms.reference_p50_rounds"))
    if refs is None or len(refs) != len(p50s):
        return None
    return [None if a is None or b is None or b <= 0 else a / b for a, b in zip(p50s, refs)]


def is_reference(row: Mapping[str, Any]) -> bool:
    return row.get("role") == "reference"


def _geometric_mean(values: list[float]) -> float | None:
    return math.exp(sum(map(math.log, values)) / len(values)) if values else None


def _same(rows: Sequence[Mapping[str, Any]], key: str) -> bool:
    return len({None if is_missing(r.get(key)) else r.get(key) for r in rows}) == 1


def _pooled_ratio(a: list[list[float | None]], b: list[list[float | None]], method: str) -> Ratio | None:
    """Round-aligned series of two sides (several files each: seeds): each file of `a` over the geometric mean of
    `b`'s files in the same round, all such ratios pooled; None unless every series has the same rounds."""
    if any(x is None for x in (*a, *b)) or len({len(x) for x in (*a, *b)}) != 1:
        return None
    base_by_round = [_geometric_mean([x[i] for x in b if x[i] is not None]) for i in range(len(b[0]))]
    pooled = [x[i] / base for x in a for i, base in enumerate(base_by_round) if x[i] is not None and base]
    return _from(ratio_interval(pooled, [1.0] * len(pooled)), method)


def _paired(rows: Sequence[Mapping[str, Any]], bases: Sequence[Mapping[str, Any]]) -> Ratio | None:
    """Rows over bases round by round: through the reference both were timed beside, (row/ref) / (base/ref); the
    same file with other providers of one result, round i against round i (the same round, not side by side)."""
    everyone = [*rows, *bases]
    if not _same(everyone, "result_index"):
        return None
    if not _same(everyone, "provider"):
        return _pooled_ratio([_numbers(r.get("latency_ms.p50_rounds")) for r in rows],
                             [_numbers(b.get("latency_ms.p50_rounds")) for b in bases], BY_ROUND)
    if not _same(everyone, "reference"):
        return None
    return _pooled_ratio([relative_rounds(r) for r in rows], [relative_rounds(b) for b in bases], PAIRED)


def latency_ratio(rows: Sequence[Mapping[str, Any]], bases: Sequence[Mapping[str, Any]]) -> Ratio | None:
    """Latency of `rows` over that of `bases` (the files of one variant each, seeds pooled): paired where both were
    timed beside the same reference in one result, else the Welch interval of the window p50s, else (results
    without rounds) the ratio of the p50s without an interval."""
    rows, bases = [r for r in rows if r.get("status") == "ok"], [b for b in bases if b.get("status") == "ok"]
    if not rows or not bases:
        return None
    paired = _paired(rows, bases)
    if paired is not None:
        return paired
    a_rounds = [x for r in rows for x in (_numbers(r.get("latency_ms.p50_rounds")) or [])]
    b_rounds = [x for b in bases for x in (_numbers(b.get("latency_ms.p50_rounds")) or [])]
    if len(a_rounds) >= 2 and len(b_rounds) >= 2:
        return _from(unpaired_ratio_interval(a_rounds, b_rounds), UNPAIRED)
    a_p50 = [float(r["latency_ms.p50"]) for r in rows if not is_missing(r.get("latency_ms.p50"))]
    b_p50 = [float(b["latency_ms.p50"]) for b in bases if not is_missing(b.get("latency_ms.p50"))]
    if not a_p50 or not b_p50 or min(b_p50) <= 0:
        return None
    return Ratio(float(pd.Series(a_p50).median() / pd.Series(b_p50).median()), None, 1, ONE_WINDOW)


def speedup(rows: Sequence[Mapping[str, Any]], bases: Sequence[Mapping[str, Any]]) -> Ratio | None:
    """How many times faster `rows` run than `bases` (base latency over row latency)."""
    ratio = latency_ratio(rows, bases)
    return None if ratio is None else ratio.inverse()


def records(rows: pd.DataFrame) -> list[dict[str, Any]]:
    return rows.to_dict("records")


# ------------------------------------------------------------------------------------------------ the A/A band
@dataclass(frozen=True)
class AABand:
    """The A/A control of one group on one result: the same file, timed as two entries. `ratio` is control over
    reference; the band is symmetric (a file is no faster than itself in either direction): every ratio within a
    factor `limit` of 1 either way, `limit` being the farthest the A/A interval (or, without one, its median)
    reaches from 1."""

    ratio: Ratio

    @property
    def limit(self) -> float:
        values = [self.ratio.median, *(self.ratio.ci95 or ())]
        return max(max(v, 1 / v) for v in values if v > 0)

    def contains(self, ratio: Ratio | None) -> bool:
        return ratio is not None and abs(math.log(ratio.median)) <= math.log(self.limit)

    def text(self) -> str:
        return (f"A/A control {self.ratio.text()}: the dense file against itself, timed as two entries; ratios "
                f"within {fmt_ratio(1 / self.limit)} to {fmt_ratio(self.limit)} are within noise")


def aa_band(frame: pd.DataFrame, device: str, task: str) -> AABand | None:
    """The A/A band of one group (`task` as the frame names it) on one device (a result and its provider), or None
    without a control."""
    for control in frame.attrs.get("controls", []):
        if control.get("device") == device and control.get("task") == task:
            ratio = _from(control.get("ratio_to_reference"), PAIRED)
            if ratio is not None:
                return AABand(ratio)
    return None


NO_CONTROL = ("No A/A control in this result (written before runner 0.5, or with --no-aa-control), so which "
              "differences are within noise is not measured here.")


def band_sentence(band: AABand | None) -> str:
    """The A/A line every device section prints above its comparisons."""
    return band.text() + "." if band is not None else NO_CONTROL


def device_bands(frame: pd.DataFrame, device: str) -> dict[str, AABand]:
    """Every group's A/A band on one device, by the group's name in the frame."""
    tasks = dict.fromkeys(c.get("task") for c in frame.attrs.get("controls", []) if c.get("device") == device)
    bands = {task: aa_band(frame, device, task) for task in tasks if task}
    return {task: band for task, band in bands.items() if band is not None}


def device_noise_note(frame: pd.DataFrame, device: str) -> str:
    """One sentence for a device's sections that show latencies without comparing them: its A/A band(s)."""
    bands = device_bands(frame, device)
    if not bands:
        return NO_CONTROL
    listed = "; ".join(f"{task} {band.ratio.text()}" if len(bands) > 1 else band.ratio.text()
                       for task, band in bands.items())
    return (f"A/A control on this device (the dense file against itself): {listed}; latencies that differ by less "
            "than that band are not different.")


def noise_mark(ratio: Ratio | None, band: AABand | None) -> str:
    """"within noise" when the ratio lies inside the A/A band, "" otherwise (or without a band)."""
    return "within noise" if band is not None and band.contains(ratio) else ""


def ratio_cell(ratio: Ratio | None, band: AABand | None) -> str:
    """A table cell: "2.63× [2.45, 2.80]", with "(within noise)" inside the A/A band."""
    if ratio is None:
        return DASH
    mark = noise_mark(ratio, band)
    return ratio.text() + (f" ({mark})" if mark else "")


def indistinguishable(candidates: Iterable[tuple[str, Ratio]], best: Ratio) -> list[str]:
    """Names of the candidates whose interval overlaps the best's: they are not ranked against it."""
    return [name for name, ratio in candidates if ratio is not best and ratio.overlaps(best)]


# ------------------------------------------------------------------------------------------------ what a result holds
def timing_label(settings_rounds: Any, has_pairs: bool, has_control: bool) -> str:
    """How a result's latencies were timed, for the Devices table: old results are named as such."""
    rounds = 1 if is_missing(settings_rounds) else int(settings_rounds)
    if rounds < 2:
        text = "one window per file (written before runner 0.3 or with --rounds 1): no interval between windows"
    elif has_pairs:
        text = f"{rounds} rounds, each window beside a window of the dense reference (paired ratios)"
    else:
        text = f"{rounds} rounds without reference windows (runner 0.3-0.4): ratios are unpaired"
    if not has_control:
        text += "; no A/A control (runner before 0.5 or --no-aa-control)"
    return text
