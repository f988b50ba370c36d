"""User-facing errors.

Anything the user can fix (a bad path, a malformed file, an out-of-range setting) raises a subclass of
:class:`InssegError` with a one-paragraph message that names the file or config key. The entry scripts print
that message and exit with status 2 instead of showing a traceback.
"""


class InssegError(Exception):
    """An error caused by user input, reported without a traceback."""


class ConfigError(InssegError):
    """A configuration value is missing, unknown or out of range."""


class DatasetError(InssegError):
    """A dataset file is missing, unreadable or inconsistent."""


class CheckpointError(InssegError):
    """A checkpoint or weights file is missing or does not fit the model."""


class ImageLoadError(InssegError):
    """An input image cannot be read."""

    def __init__(self, path: object, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"cannot read image {self.path}: {reason}")
