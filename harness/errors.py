"""The one exception type for expected mistakes: the CLI prints its message as one sentence and exits with its
exit_code (2: bad input; harness bench's "some devices failed" is 1)."""


class EdgepruneError(Exception):
    """A user-facing problem (missing data, bad file, wrong schema) with a one-sentence message."""

    exit_code = 2
