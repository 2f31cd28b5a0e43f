"""The one error packaging reports: a message for the user, never a traceback."""


class PackageError(Exception):
    """The model cannot be packaged in that format; the message says why and what to do."""
