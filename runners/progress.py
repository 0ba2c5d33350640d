"""Progress of the steps that take more than a few seconds, for a person at a terminal and for a log file alike.

On a terminal: a tqdm bar per step, with elapsed time and time left; a step inside another (an epoch inside an IMP
round) gets its own bar below, removed when it ends. Anywhere else (a log file, a pipe, CI): no bar and no carriage
return, only one line per finished sub-step, with the time since the step began and an estimate of what is left.
`quiet`: nothing at all. Both the host (harness) and the runner use this module; it imports only tqdm, which is
in the runner's requirements.txt, and runners.safety (pure Python, one wheel for every CPython 3.8+).
"""

from __future__ import annotations

import sys
import time
from typing import Callable, Optional, TextIO

from tqdm import tqdm

from runners.safety import terminal_safe

LineSink = Callable[[str], None]
# A bar redraws at most this often (seconds): a 938-step epoch costs a few redraws, not 938.
REFRESH_SECONDS = 0.2


def is_terminal(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:      # a closed stream
        return False


def clock(seconds: float) -> str:
    """12:05 or 1:02:03, as tqdm prints elapsed time."""
    return tqdm.format_interval(max(0.0, seconds))


class Progress:
    """One long step of `total` sub-steps (None: unknown).

    `update(n, status)` advances the bar; `finished(line)` reports a finished sub-step as a line (a log keeps one
    line per sub-step; on a terminal the line is printed above the bars). `lines`, when given, receives those
    lines instead of stderr and no bar is drawn (callers that collect lines, such as tests). Use it as a context
    manager so the bar is closed when the step ends or fails.
    """

    def __init__(self, desc: str, total: Optional[int] = None, unit: str = "step", quiet: bool = False,
                 leave: bool = True, stream: Optional[TextIO] = None, lines: Optional[LineSink] = None):
        self.desc, self.total, self.quiet = desc, total, quiet
        self.stream = stream if stream is not None else sys.stderr
        self.lines = lines
        self.done = 0
        self.started = time.perf_counter()
        self.bar = None
        if not quiet and lines is None and is_terminal(self.stream):
            self.bar = tqdm(total=total, desc=desc, unit=unit, leave=leave, file=self.stream, dynamic_ncols=True,
                            mininterval=REFRESH_SECONDS, smoothing=0.1)

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def update(self, n: int = 1, status: Optional[str] = None) -> None:
        self.done += n
        if self.bar is not None:
            if status is not None:
                self.bar.set_postfix_str(status, refresh=False)
            self.bar.update(n)

    def timing(self) -> str:
        """"03:12 elapsed, about 05:00 left" (the estimate only once a sub-step has finished and a total is known)."""
        elapsed = time.perf_counter() - self.started
        text = f"{clock(elapsed)} elapsed"
        if self.total and 0 < self.done < self.total:
            text += f", about {clock(elapsed / self.done * (self.total - self.done))} left"
        return text

    def finished(self, line: str, timing: bool = True) -> None:
        """A finished sub-step, as one line; `timing` appends the step's elapsed time and time left."""
        if self.quiet:
            return
        # model names and errors come from manifests and results: shown terminal-safe (runners.safety)
        text = terminal_safe(f"{line} [{self.timing()}]" if timing else line)
        if self.lines is not None:
            self.lines(text)
        elif self.bar is not None:
            self.bar.write(text, file=self.stream)
        else:
            print(text, file=self.stream, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
