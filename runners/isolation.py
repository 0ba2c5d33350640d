"""Measure each file in a fresh process, so its memory figures do not depend on what was measured before it.

A long-lived process that loads one model after another keeps the heap, the allocator arenas and onnxruntime's
caches of the earlier ones: its resident size drifts upwards over a run, and a later file's "RSS after load" mostly
reuses memory that is already resident. Here a small server process imports the runner's dependencies and does
nothing else; for every file it forks a child, which loads, runs and measures that one file and exits. Every child
starts from the same state, whatever order the files come in.

Written by hand rather than with multiprocessing's forkserver: that one re-runs the parent's main script in each
child (a script without an `if __name__ == "__main__"` guard starts again), and passes objects by pickle; here the
child runs one named function on JSON and the parent's sys.path, which also holds the runner's zipapp.
The server is POSIX only (it forks); elsewhere `available()` is false and files are measured in-process.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from typing import Any

# The server's start: the parent's import path (so a zipapp's runners package is found), then serve().
_BOOT = "import json, sys; sys.path[:] = json.loads(sys.argv[1]); import runners.isolation as i; i.serve(sys.argv[2])"
PRELOAD = ("numpy", "onnxruntime", "psutil")


class IsolationError(RuntimeError):
    """The server could not be started or stopped answering."""


def available() -> bool:
    return hasattr(os, "fork") and bool(sys.executable)


def _resolve(target: str) -> Any:
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def _describe_status(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"signal {os.WTERMSIG(status)}"
    return f"exit code {os.WEXITSTATUS(status) if os.WIFEXITED(status) else status}"


def _run_child(function: Any, kwargs: dict[str, Any]) -> bytes:
    """Fork; the child runs function(**kwargs) and sends back {"ok": result} or {"error": one line}."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:   # the child: never returns
        code = 0
        try:
            os.close(read_end)
            os.dup2(2, 1)      # a stray print must not reach the server's answer channel
            try:
                answer: dict[str, Any] = {"ok": function(**kwargs)}
            except BaseException as exc:  # noqa: BLE001 - reported to the parent as one line
                answer = {"error": f"{type(exc).__name__}: {' '.join(str(exc).split())}"}
            data = json.dumps(answer).encode()
            view = memoryview(data)
            while view:
                view = view[os.write(write_end, view):]
        except BaseException:  # noqa: BLE001
            code = 1
        finally:
            os._exit(code)
    os.close(write_end)
    chunks = []
    with os.fdopen(read_end, "rb") as pipe:
        for chunk in iter(lambda: pipe.read(1 << 16), b""):
            chunks.append(chunk)
    _, status = os.waitpid(pid, 0)
    if not chunks:
        return json.dumps({"error": f"the measuring process ended with {_describe_status(status)}"}).encode()
    return b"".join(chunks)


def serve(target: str) -> None:
    """The server's loop: one JSON line of keyword arguments in, one JSON line of answer out, per child."""
    for name in PRELOAD:
        importlib.import_module(name)
    function = _resolve(target)
    out = sys.stdout.buffer
    for line in sys.stdin.buffer:
        if not line.strip():
            continue
        out.write(_run_child(function, json.loads(line)) + b"\n")
        out.flush()


class FreshProcesses:
    """A server that runs `target` ("module:function", JSON in and out) in a fresh child per call.

    Use as a context manager; call(**kwargs) returns the function's result or raises IsolationError with the
    child's one-line error."""

    def __init__(self, target: str) -> None:
        self.target = target
        self._proc: subprocess.Popen | None = None

    def __enter__(self) -> "FreshProcesses":
        try:
            self._proc = subprocess.Popen([sys.executable, "-c", _BOOT, json.dumps(sys.path), self.target],
                                          stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        except OSError as exc:
            raise IsolationError(f"could not start the measuring server: {exc}") from None
        return self

    def call(self, **kwargs: Any) -> Any:
        proc = self._proc
        if proc is None or proc.stdin is None or proc.stdout is None:
            raise IsolationError("the measuring server is not running")
        try:
            proc.stdin.write(json.dumps(kwargs).encode() + b"\n")
            proc.stdin.flush()
            line = proc.stdout.readline()
        except OSError as exc:
            raise IsolationError(f"the measuring server stopped: {exc}") from None
        if not line:
            raise IsolationError(f"the measuring server stopped (exit code {proc.poll()})")
        answer = json.loads(line)
        if "error" in answer:
            raise IsolationError(answer["error"])
        return answer["ok"]

    def __exit__(self, *exc: Any) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            if proc.stdin:
                proc.stdin.close()
            proc.wait(timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            proc.kill()
            proc.wait()
        finally:
            if proc.stdout:
                proc.stdout.close()
