"""How to measure: the one settings type of a bench run, its defaults and its record in the result.

``runner bench`` builds its options from these defaults (runners/cli.py) and every result carries
``settings.to_json()``, so a number can always be traced to how it was measured. The session options here are the
ones that change latency by large factors (graph optimisation level, threads, spinning, execution mode); the values
onnxruntime actually used are read back from each session (runners.session.session_record).
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field
from typing import Any

from runners.contract import EVAL_BATCH_SIZE
from runners.stats import CI_METHOD, RATIO_CI_METHOD, ROUNDS_CI_METHOD

CALL_APIS = ("iobinding", "run")   # how a timed call is made; see runners.session.make_call
MEMORY_ISOLATION = ("process", "none")   # where a file's memory is measured; see runners.isolation
CPU_PROVIDER = "CPUExecutionProvider"
# --graph-optimization choices -> onnxruntime.GraphOptimizationLevel member names ("layout" exists from ort 1.22).
GRAPH_OPTIMIZATION_LEVELS = {"disable": "ORT_DISABLE_ALL", "basic": "ORT_ENABLE_BASIC",
                             "extended": "ORT_ENABLE_EXTENDED", "layout": "ORT_ENABLE_LAYOUT", "all": "ORT_ENABLE_ALL"}
EXECUTION_MODES = {"sequential": "ORT_SEQUENTIAL", "parallel": "ORT_PARALLEL"}

# Upper bounds of the numeric options: far above any sensible measurement, low enough that a slip of the keyboard
# cannot run for days or exhaust memory. --threads has its own bound (thread_ceiling).
LIMITS: dict[str, float] = {"batch_size": 65536, "eval_batch_size": 65536, "warmup": 1_000_000,
                            "min_runs": 10_000_000, "min_seconds": 3600.0, "rounds": 100}


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one, e.g. under taskset or a container)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _thread_headroom() -> int | None:
    """How many more threads this process may create, where a limit says (a cgroup's pids.max, RLIMIT_NPROC);
    None where nothing says. onnxruntime hangs or dies with SIGSEGV, printing nothing, when it cannot create the
    threads it was asked for, so the runner refuses such a --threads before it starts."""
    room = []
    try:
        with open("/sys/fs/cgroup/pids.max") as fh:
            limit = fh.read().strip()
        with open("/sys/fs/cgroup/pids.current") as fh:
            current = int(fh.read().strip())
        if limit != "max":
            room.append(int(limit) - current)
    except (OSError, ValueError):
        pass
    try:
        import resource

        soft = resource.getrlimit(resource.RLIMIT_NPROC)[0]
        if soft != resource.RLIM_INFINITY and os.geteuid() != 0:
            room.append(soft - len(os.listdir("/proc/self/task")) if os.path.isdir("/proc/self/task") else soft)
    except (ImportError, AttributeError, OSError, ValueError):
        pass
    return min(room) if room else None


def thread_ceiling() -> tuple[int, str]:
    """The most intra-op threads a run may ask for, and why: four per usable CPU (more only adds contention),
    fewer where a process or cgroup limit leaves less room (with a margin for Python's own threads)."""
    cpus = usable_cpus()
    ceiling, why = 4 * cpus, f"four per CPU this process may use ({cpus})"
    room = _thread_headroom()
    if room is not None and room - 8 < ceiling:
        ceiling, why = max(1, room - 8), f"what this system's process limit leaves room for ({max(0, room)} more)"
    return ceiling, why


def bounds_problem(values: dict[str, Any]) -> str | None:
    """The first numeric option outside its bounds, as a sentence naming the option; None when all fit."""
    for name, top in LIMITS.items():
        value = values.get(name)
        if value is None:
            continue
        option = "--" + name.replace("_", "-")
        if isinstance(value, float) and not math.isfinite(value):
            return f"{option} {value} is not a finite number; give one from 0 to {top:g}"
        if value > top:
            return f"{option} {value} is above its limit of {top:g}"
    for name in ("threads", "inter_op_threads"):
        threads = values.get(name)
        if threads:
            ceiling, why = thread_ceiling()
            if threads > ceiling:
                return (f"--{name.replace('_', '-')} {threads} is more than {ceiling}, {why}; onnxruntime cannot "
                        f"be trusted to create that many threads")
    return None


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
    min_seconds: float = 0.2   # per timing window: 5 rounds make the 1 s of timed calls one window used to have
    api: str = "iobinding"  # how each timed call is made: see make_call
    eval_batch_size: int = EVAL_BATCH_SIZE
    providers: tuple[str, ...] = (CPU_PROVIDER,)
    provider_options: dict[str, dict[str, str]] = field(default_factory=dict)
    graph_optimization: str = "all"
    inter_op_threads: int = 0
    execution_mode: str = "sequential"
    spinning: bool = True      # onnxruntime's default: worker threads spin while waiting for work
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
        if self.graph_optimization not in GRAPH_OPTIMIZATION_LEVELS:
            raise ValueError(f"unknown graph optimisation level {self.graph_optimization!r}; choose one of "
                             f"{', '.join(GRAPH_OPTIMIZATION_LEVELS)}")
        if self.execution_mode not in EXECUTION_MODES:
            raise ValueError(f"unknown execution mode {self.execution_mode!r}; choose one of "
                             f"{', '.join(EXECUTION_MODES)}")
        if not self.providers:
            raise ValueError("at least one execution provider is needed")
        self.providers = tuple(self.providers)
        problem = bounds_problem(asdict(self))
        if problem:
            raise ValueError(problem)

    def to_json(self) -> dict[str, Any]:
        """The result's ``settings`` object: every field, plus how the interval and the memory peak were made.

        ``provider`` (the first provider) is kept for readers of results from runner 0.3 and older."""
        d = asdict(self)
        d["providers"] = list(self.providers)
        d["provider"] = self.providers[0]
        d["p50_ci95_method"] = CI_METHOD + ", within the pooled windows: a diagnostic, not the file's interval"
        d["p50_rounds_ci95_method"] = ROUNDS_CI_METHOD
        d["ratio_ci95_method"] = RATIO_CI_METHOD
        d["peak_memory_scope"] = "session load + first inference + warm-up + min_runs timed calls"
        return d
