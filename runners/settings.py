"""How to measure: the one settings type of a bench run, its defaults and its record in the result.

``runner bench`` builds its options from these defaults (runners/cli.py) and every result carries
``settings.to_json()``, so a number can always be traced to how it was measured.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from runners.contract import EVAL_BATCH_SIZE
from runners.stats import CI_METHOD

CALL_APIS = ("iobinding", "run")   # how a timed call is made; see runners.session.make_call


@dataclass
class BenchSettings:
    """How to measure. ``threads=0`` leaves onnxruntime's default intra-op thread count."""

    threads: int = 0
    batch_size: int = 1
    warmup: int = 10
    min_runs: int = 100
    min_seconds: float = 1.0
    api: str = "iobinding"  # how each timed call is made: see make_call
    eval_batch_size: int = EVAL_BATCH_SIZE
    provider: str = "CPUExecutionProvider"
    models: str | None = None  # fnmatch glob over model names; None = all
    rounds: int = 1            # timing windows per file, interleaved across files (see run_bench)

    def __post_init__(self) -> None:
        if self.api not in CALL_APIS:
            raise ValueError(f"unknown call api {self.api!r}; choose one of {', '.join(CALL_APIS)}")
        if self.rounds < 1:
            raise ValueError(f"rounds must be 1 or more, not {self.rounds}")

    def to_json(self) -> dict[str, Any]:
        """The result's ``settings`` object: every field, plus how the interval and the memory peak were made."""
        d = asdict(self)
        d["p50_ci95_method"] = CI_METHOD
        d["peak_memory_scope"] = "session load + first inference + warm-up + timed runs"
        return d
