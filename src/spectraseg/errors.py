"""The exception tree: every user error the library raises is a `SpectrasegError`.

The command line turns a `SpectrasegError` into one line on stderr and exit code 2; anything
else is a bug and keeps its traceback. Each class also inherits the matching builtin, so
callers can catch either (`except OSError` still catches an unreadable raster).
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence


class SpectrasegError(Exception):
    """A problem with the user's input, files or settings, not with spectraseg itself."""


class ConfigError(SpectrasegError, ValueError):
    """A config file, a `--set` override or a keyword argument is invalid."""


class RasterError(SpectrasegError, OSError):
    """A raster cannot be read, is not what was expected, or cannot be written."""


class LabelError(SpectrasegError, ValueError):
    """Labels (vector, WKT CSV, mask or classes.yaml) cannot be read or do not fit the scene."""


class BandError(SpectrasegError, KeyError):
    """A band or spectral index needs a band the scene does not have."""

    def __str__(self) -> str:
        # KeyError quotes its message; a user error should read as plain text.
        return str(self.args[0]) if self.args else ""


class CheckpointError(SpectrasegError, ValueError):
    """A checkpoint is missing, corrupt, or of an incompatible format."""


class OutputExistsError(SpectrasegError, FileExistsError):
    """An output file exists and `--overwrite` was not given."""


class LockedError(SpectrasegError, BlockingIOError):
    """Another spectraseg run holds the lock of the output folder."""


class DataError(SpectrasegError, ValueError):
    """The data set as a whole is unusable (no scenes, no known class, empty split)."""


class SpectrasegWarning(UserWarning):
    """A recoverable oddity in the input that the user should know about."""


def did_you_mean(word: str, choices: Sequence[str]) -> str:
    """' (did you mean 'x'?)' for the closest choice, or a list of the choices.

    The tail of every "unknown name" message, so they all read alike.

    Example:
        >>> did_you_mean("watr", ["building", "water"])
        " (did you mean 'water'?)"
    """
    close = difflib.get_close_matches(word, list(choices), n=1)
    if close:
        return f" (did you mean {close[0]!r}?)"
    return f"; known: {', '.join(choices)}"
