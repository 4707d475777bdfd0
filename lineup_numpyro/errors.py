"""Every error the package raises for a reason the user can fix, under one base class.

The command line turns a `LineupError` into one line on stderr and exit code 2; anything else
is a bug and keeps its traceback (exit 1). Each class also derives from the built-in it
replaced (ValueError, RuntimeError), so code that caught those still does.
"""

from __future__ import annotations


class LineupError(Exception):
    """Input, options or a run directory that cannot be used; the message says what to do."""


class DataError(LineupError, ValueError):
    """Input data that cannot be used; the message names the file, row and column and what was expected."""


class ConfigError(LineupError, ValueError):
    """Options that contradict each other or lie outside their range."""


class RunDirError(LineupError, RuntimeError):
    """A run directory that cannot be used (exists already, incomplete, unreadable, in use)."""


class CheckpointError(RunDirError):
    """A checkpoint that cannot be continued (other settings or data, damaged files)."""


class ApproxError(LineupError, RuntimeError):
    """An approximation that cannot be formed (e.g. no Gaussian at a saddle point)."""


class StanUnavailable(LineupError, RuntimeError):
    """PyStan is not installed or cannot compile."""


class WriteError(LineupError, OSError):
    """A file that could not be written: a full disk, a read-only directory, no permission."""
