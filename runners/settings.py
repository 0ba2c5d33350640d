"""How to measure: the one settings type of a bench run, its defaults and its record in the result.

``runner bench`` builds its options from these defaults (runners/cli.py) and every result carries
``settings.to_json()``, so a number can always be traced to how it was measured. The session options here are the
ones that change latency by large factors (graph optimisation level, threads, spinning, execution mode); the values
onnxruntime actually used are read back from each session (runners.session.session_record).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from runners.contract import EVAL_BATCH_SIZE
from runners.stats import CI_METHOD

CALL_APIS = ("iobinding", "run")   # how a timed call is made; see runners.session.make_call
CPU_PROVIDER = "CPUExecutionProvider"
# --graph-optimization choices -> onnxruntime.GraphOptimizationLevel member names ("layout" exists from ort 1.22).
GRAPH_OPTIMIZATION_LEVELS = {"disable": "ORT_DISABLE_ALL", "basic": "ORT_ENABLE_BASIC",
                             "extended": "ORT_ENABLE_EXTENDED", "layout": "ORT_ENABLE_LAYOUT", "all": "ORT_ENABLE_ALL"}
EXECUTION_MODES = {"sequential": "ORT_SEQUENTIAL", "parallel": "ORT_PARALLEL"}


@dataclass
class BenchSettings:
    """How to measure. ``threads=0`` (and ``inter_op_threads=0``) leave onnxruntime's default thread count.

    ``providers`` are benched side by side: every file is measured with each, one after the other, so a slow spell
    lands on all of them. ``provider_options`` maps a provider name to the options its session gets.
    """

    threads: int = 0
    batch_size: int = 1
    warmup: int = 10
    min_runs: int = 100
    min_seconds: float = 1.0
    api: str = "iobinding"  # how each timed call is made: see make_call
    eval_batch_size: int = EVAL_BATCH_SIZE
    providers: tuple[str, ...] = (CPU_PROVIDER,)
    provider_options: dict[str, dict[str, str]] = field(default_factory=dict)
    graph_optimization: str = "all"
    inter_op_threads: int = 0
    execution_mode: str = "sequential"
    spinning: bool = True      # onnxruntime's default: worker threads spin while waiting for work
    models: str | None = None  # fnmatch glob over model names; None = all
    rounds: int = 1            # timing windows per file, interleaved across files (see run_bench)

    def __post_init__(self) -> None:
        if self.api not in CALL_APIS:
            raise ValueError(f"unknown call api {self.api!r}; choose one of {', '.join(CALL_APIS)}")
        if self.rounds < 1:
            raise ValueError(f"rounds must be 1 or more, not {self.rounds}")
        if self.graph_optimization not in GRAPH_OPTIMIZATION_LEVELS:
            raise ValueError(f"unknown graph optimisation level {self.graph_optimization!r}; choose one of "
                             f"{', '.join(GRAPH_OPTIMIZATION_LEVELS)}")
        if self.execution_mode not in EXECUTION_MODES:
            raise ValueError(f"unknown execution mode {self.execution_mode!r}; choose one of "
                             f"{', '.join(EXECUTION_MODES)}")
        if not self.providers:
            raise ValueError("at least one execution provider is needed")
        self.providers = tuple(self.providers)

    def to_json(self) -> dict[str, Any]:
        """The result's ``settings`` object: every field, plus how the interval and the memory peak were made.

        ``provider`` (the first provider) is kept for readers of results from runner 0.3 and older."""
        d = asdict(self)
        d["providers"] = list(self.providers)
        d["provider"] = self.providers[0]
        d["p50_ci95_method"] = CI_METHOD
        d["peak_memory_scope"] = "session load + first inference + warm-up + timed runs"
        return d
