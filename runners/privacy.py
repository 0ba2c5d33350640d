"""The runner sends nothing over the network and writes nothing under the user's home: onnxruntime's telemetry off.

Official onnxruntime builds for Linux and macOS (1.32 here) carry Microsoft's 1DS telemetry: on import they create
a device id and an event store under ``$XDG_CACHE_HOME`` or ``~/.cache/Microsoft/DeveloperTools/.onnxruntime/``
and, while a process runs, upload events over HTTPS (DNS queries for ``mobile.events.data.microsoft.com`` after a
few seconds). ``onnxruntime.disable_telemetry_events()`` does not stop either: the store and the uploader exist
before it can be called. The environment variable does, and only when it is set before onnxruntime is imported,
so every entry point of the runner calls :func:`keep_onnxruntime_offline` first. docs/security.md says what
happens where it cannot be switched off.

Standard library only: this runs before the runner checks that its dependencies are installed.
"""

from __future__ import annotations

import os
import sys
from typing import Any

# onnxruntime 1.32 reads ORT_DISABLE_TELEMETRY; its source has also named the switch ORT_TELEMETRY_DISABLED.
# Either, set to 1 before import, keeps the uploader, the events and the device id from being created.
TELEMETRY_SWITCHES = {"ORT_DISABLE_TELEMETRY": "1", "ORT_TELEMETRY_DISABLED": "1"}
_TRUE = {"1", "true", "yes", "on", "y"}

_state: dict[str, Any] = {}


def keep_onnxruntime_offline() -> None:
    """Switch onnxruntime's telemetry off for this process (and the processes it starts), unless the user set a
    switch themselves: then their choice stands (``ORT_DISABLE_TELEMETRY=0`` allows telemetry) and the result says
    so."""
    if not _state:
        _state["imported_before"] = "onnxruntime" in sys.modules
        _state["user_set"] = sorted(k for k in TELEMETRY_SWITCHES if k in os.environ)
    if not _state["user_set"]:
        os.environ.update(TELEMETRY_SWITCHES)


def telemetry_record() -> dict[str, Any]:
    """The result's ``telemetry`` object: whether onnxruntime's telemetry was switched off in time, and how.

    Also asks onnxruntime to drop its non-essential events (``disable_telemetry_events``, what Windows builds
    honour), best effort."""
    events_api = None
    try:
        import onnxruntime as ort

        ort.disable_telemetry_events()
        events_api = True
    except Exception:  # noqa: BLE001 - an old or unusual build without the call
        events_api = False
    env = {name: os.environ.get(name) for name in TELEMETRY_SWITCHES}
    set_off = all((value or "").strip().lower() in _TRUE for value in env.values() if value is not None) and \
        any(value is not None for value in env.values())
    in_time = bool(_state) and not _state["imported_before"]
    return {
        "switched_off": set_off and in_time,
        "environment": env,
        "set_before_onnxruntime_import": in_time,
        "set_by_user": list(_state.get("user_set", [])),
        "disable_telemetry_events": events_api,
    }
