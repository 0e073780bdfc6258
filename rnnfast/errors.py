"""Errors raised by rnnfast."""


class FormatError(ValueError):
    """A model file is malformed, truncated, or uses something rnnfast does not implement.

    The message always names the file and the node / layer / key at fault and what was expected.
    Subclasses ValueError so callers that catch bad input generically still catch it.
    """
