"""Resident memory of the runner process while it loads and runs one model (the ``memory_mb`` of a result)."""

from __future__ import annotations

from typing import Any

MB = 2**20   # memory_mb keys are MiB, as psutil and top count memory


class PeakMemory:
    """Peak RSS of this process over a window.

    On Linux the kernel's high-water mark is reset (``echo 5 > /proc/self/clear_refs``) and ``VmHWM`` read from
    ``/proc/self/status`` (method ``vmhwm``); it catches every transient allocation. Elsewhere, or when the reset
    is not permitted, the peak is the max of psutil RSS samples taken at the phase boundaries
    (method ``psutil-samples``), which can miss short spikes.
    """

    def __init__(self) -> None:
        import psutil   # imported here so a missing psutil is reported by check_dependencies, not at import

        self._proc = psutil.Process()
        self.method = "psutil-samples"
        self._samples: list[int] = []

    def rss(self) -> int:
        """Current RSS in bytes; also kept as a sample for the psutil fallback of peak()."""
        value = int(self._proc.memory_info().rss)
        self._samples.append(value)
        return value

    def reset(self) -> None:
        """Start a new window: forget the samples and, where the kernel allows, reset its high-water mark."""
        self._samples = []
        self.method = "psutil-samples"
        try:
            with open("/proc/self/clear_refs", "w") as fh:
                fh.write("5")
            if _vmhwm() is not None:
                self.method = "vmhwm"
        except OSError:
            pass
        self.rss()

    def peak(self) -> int:
        """Peak RSS in bytes since reset(), by ``self.method``."""
        self.rss()
        if self.method == "vmhwm":
            hwm = _vmhwm()
            if hwm is not None:
                return max(hwm, max(self._samples))
        return max(self._samples)


def _vmhwm() -> int | None:
    """The kernel's peak RSS of this process (``VmHWM`` in /proc/self/status) in bytes; None off Linux."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def empty_memory() -> dict[str, Any]:
    """The memory_mb object of a file that was not measured: every key present, every value null."""
    return {"rss_before": None, "rss_after_load": None, "rss_peak": None, "peak_method": None,
            "load_increment": None, "peak_increment": None, "isolation": None}
