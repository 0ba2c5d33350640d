"""How to measure: the one settings type of a bench run, its defaults and its record in the result.

``runner bench`` builds its options from these defaults (runners/cli.py) and every result carries
``settings.to_json()``, so a number can always be traced to how it was measured.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from runners.contract import EVAL_BATCH_SIZE
from runners.stats import CI_METHOD, RATIO_CI_METHOD, ROUNDS_CI_METHOD

CALL_APIS = ("iobinding", "run")   # how a timed call is made; see runners.session.make_call
MEMORY_ISOLATION = ("process", "none")   # where a file's memory is measured; see runners.isolation


@dataclass
class BenchSettings:
    """How to measure. ``threads=0`` leaves onnxruntime's default intra-op thread count."""

    threads: int = 0
    batch_size: int = 1
    warmup: int = 10
    min_runs: int = 100
    min_seconds: float = 0.2   # per timing window: 5 rounds make the 1 s of timed calls one window used to have
    api: str = "iobinding"  # how each timed call is made: see make_call
    eval_batch_size: int = EVAL_BATCH_SIZE
    provider: str = "CPUExecutionProvider"
    models: str | None = None  # fnmatch glob over model names; None = all
    rounds: int = 5            # timing windows per file, spread over the run (runners.rounds); >= 2 for intervals
    memory_isolation: str = "process"   # "process": each file measured in a fresh process (runners.isolation)
    aa_control: bool = True    # time each group's dense reference again as a distinct entry: the noise floor

    def __post_init__(self) -> None:
        if self.api not in CALL_APIS:
            raise ValueError(f"unknown call api {self.api!r}; choose one of {', '.join(CALL_APIS)}")
        if self.memory_isolation not in MEMORY_ISOLATION:
            raise ValueError(f"unknown memory isolation {self.memory_isolation!r}; choose one of "
                             f"{', '.join(MEMORY_ISOLATION)}")
        if self.rounds < 1:
            raise ValueError(f"rounds must be 1 or more, not {self.rounds}")

    def to_json(self) -> dict[str, Any]:
        """The result's ``settings`` object: every field, plus how the interval and the memory peak were made."""
        d = asdict(self)
        d["p50_ci95_method"] = CI_METHOD + ", within the pooled windows: a diagnostic, not the file's interval"
        d["p50_rounds_ci95_method"] = ROUNDS_CI_METHOD
        d["ratio_ci95_method"] = RATIO_CI_METHOD
        d["peak_memory_scope"] = "session load + first inference + warm-up + min_runs timed calls"
        return d
