"""The one exception type that means "the user asked for something invalid"."""


class UsageError(Exception):
    """Bad input from the user: the CLI prints the message as one line and exits with status 2.

    The message must name the bad value and say what would be valid.
    """


class TokenizerUnavailable(UsageError):
    """tiktoken could not load its BPE files (typically: offline with no cache)."""
