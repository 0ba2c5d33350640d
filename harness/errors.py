"""The one exception type for expected mistakes: the CLI prints its message as one sentence and exits 2."""


class EdgepruneError(Exception):
    """A user-facing problem (missing data, bad file, wrong schema) with a one-sentence message."""
