"""The one exception type that means "the user asked for something invalid"."""


class UsageError(Exception):
    """Bad input from the user: the CLI prints the message as one line and exits with status 2.

    The message must name the bad value and say what would be valid.
    """


class TokenizerUnavailable(UsageError):
    """tiktoken could not load its BPE files (typically: offline with no cache)."""


class WriteFailed(UsageError):
    """A write the machine refused (a full disk, a quota), not bad input, but told the same way: one line naming
    what could not be written and the free space. The CLI exits with `exit_status` 1, as for a failed run."""

    exit_status = 1
