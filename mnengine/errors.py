"""Exceptions mnengine raises."""


class ModelFormatError(ValueError):
    """A model file or graph is malformed: truncated, corrupted, of another format or
    version, or describing an inconsistent network. The message says what was expected
    and what was found."""
