"""Exceptions shared by every layer (the runtime included)."""


class TracejitFormatError(ValueError):
    """A file is not a valid tracejit file: damaged, truncated, of a newer format, or of another kind."""
