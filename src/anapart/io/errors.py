"""The one error a bad input file raises: its message names the file and the problem.

Here, below every layer that reads files, so the slice store and the cohort checks raise the same
type and a caller (a glue script, a test) catches one thing.
"""


class IngestError(ValueError):
    """Bad cohort input; the message names the file and the problem."""


class StoreError(ValueError):
    """One of our own stores is damaged (cut short, wrong size); the message names the file and the
    command that rebuilds it."""
