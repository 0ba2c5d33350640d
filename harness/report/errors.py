"""The report's expected-mistake exception (kept in its own module so importing it costs nothing)."""

from harness.errors import EdgepruneError


class ReportError(EdgepruneError):
    """A bad report input (missing/unreadable file, wrong schema, other bundle) with a one-sentence message."""
