"""How the runner reports a failure: two error types by scope, and the one-line text every error message uses.

A bundle-wide problem stops the run (``runner bench`` prints one sentence and exits 2); a problem with one model
file only turns that file's result entry into ``status: error``, so the other files are still measured.
"""

from __future__ import annotations

# Exit codes of the runner's commands (README, "On the edge device"): what a script may rely on.
EXIT_OK = 0
EXIT_MODEL_ERRORS = 1      # runner bench --strict: the result is written, some files could not be measured
EXIT_BAD_INPUT = 2         # an expected mistake in the input: one sentence, nothing written
EXIT_INSTALL_FAILED = 3    # runner install: no usable wheels and no registry; an existing venv is kept

# What the runner says when a dependency is missing: the bundle's own installer works offline and under PEP 668.
INSTALL_HINT = ("install the runner's requirements into a venv beside the bundle with: python3 BUNDLE/runner install "
                "(offline from the bundle's carried wheels where they match this device)")


class BundleError(Exception):
    """A problem with the bundle as a whole (missing folder, unreadable or foreign manifest)."""


class ModelError(Exception):
    """A problem with one model file; it becomes that model's ``status: error`` entry."""


class FileChanged(ModelError):
    """A file that passed its check in round 1 no longer matches the manifest in a later round."""


def one_line(exc: BaseException | str, limit: int = 300) -> str:
    """The first non-empty line of an error, cut to ``limit`` characters.

    onnxruntime and numpy raise multi-line messages (stack dumps, graph listings); a result entry and the
    progress line keep one line, so a person reads the cause and not a wall of text.
    """
    text = str(exc).strip()
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    if not line:
        line = type(exc).__name__ if isinstance(exc, BaseException) else "unknown error"
    return line if len(line) <= limit else line[: limit - 3] + "..."
