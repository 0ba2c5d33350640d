"""Resident memory of the runner process while it loads and runs one model (the ``memory_mb`` of a result)."""

from __future__ import annotations

from typing import Any

MB = 2**20   # memory_mb keys are MiB, as psutil and top count memory
UNAVAILABLE = "unavailable"   # peak_method when /proc cannot be read: memory is null, latency and accuracy are not


def in_mb(value: int | None) -> float | None:
    return None if value is None else value / MB


class PeakMemory:
    """Peak RSS of this process over a window.

    On Linux the kernel's high-water mark is reset (``echo 5 > /proc/self/clear_refs``) and ``VmHWM`` read from
    ``/proc/self/status`` (method ``vmhwm``); it catches every transient allocation. Elsewhere, or when the reset
    is not permitted, the peak is the max of psutil RSS samples taken at the phase boundaries
    (method ``psutil-samples``), which can miss short spikes.
    """

    def __init__(self) -> None:
        import psutil   # imported here so a missing psutil is reported by check_dependencies, not at import

        try:
            self._proc = psutil.Process()
            self._proc.memory_info()
        except Exception:  # noqa: BLE001 - no readable /proc: memory is not known, the timing still is
            self._proc = None
        self.method = "psutil-samples" if self._proc is not None else UNAVAILABLE
        self._samples: list[int] = []

    def rss(self) -> int | None:
        """Current RSS in bytes (None without a readable /proc); also kept as a sample for peak()."""
        if self._proc is None:
            return None
        try:
            value = int(self._proc.memory_info().rss)
        except Exception:  # noqa: BLE001 - /proc went away mid-run
            return None
        self._samples.append(value)
        return value

    def reset(self) -> None:
        """Start a new window: forget the samples and, where the kernel allows, reset its high-water mark."""
        self._samples = []
        if self._proc is None:
            return
        self.method = "psutil-samples"
        try:
            with open("/proc/self/clear_refs", "w") as fh:
                fh.write("5")
            if _vmhwm() is not None:
                self.method = "vmhwm"
        except OSError:
            pass
        self.rss()

    def peak(self) -> int | None:
        """Peak RSS in bytes since reset(), by ``self.method``; None when memory cannot be read here."""
        self.rss()
        if self.method == "vmhwm":
            hwm = _vmhwm()
            if hwm is not None:
                return max([hwm, *self._samples])
        return max(self._samples) if self._samples else None


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
    return {"rss_before": None, "rss_after_load": None, "rss_peak": None, "peak_method": None}
