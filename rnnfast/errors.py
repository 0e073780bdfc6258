"""Errors raised by rnnfast."""


class FormatError(ValueError):
    """A model file is malformed, truncated, or uses something rnnfast does not implement.

    The message always names the file and the node / layer / key at fault and what was expected.
    Subclasses ValueError so callers that catch bad input generically still catch it.
    """


class MemoryLimitError(ValueError, MemoryError):
    """A model would need more memory than the limit (RNNFAST_MAX_MEMORY, default 4 GiB) for these inputs or at load;
    refused before anything is allocated. Both a ValueError (bad input, like every other refusal) and a
    MemoryError (what it is about)."""
