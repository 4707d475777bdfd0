"""Writing files so that none is ever half-written, and saying which one when the disk says no.

Every file the package writes goes to a temporary name beside its target and is renamed over
it only when complete. A full disk, a read-only directory or a missing permission ends in one
`WriteError` naming the path, never in a traceback from deep inside a library.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from lineup_numpyro.errors import WriteError

# errno values that are the machine's answer, not a bug: reported as WriteError
USER_FIXABLE = {errno.ENOSPC, errno.EACCES, errno.EPERM, errno.EROFS, errno.EDQUOT, errno.ENAMETOOLONG}


def write_error(path: Path, exc: OSError) -> WriteError:
    return WriteError(
        f"{path}: cannot write ({exc.strerror or exc}); free some space or choose a writable "
        "directory, then run the command again"
    )


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it over `path` only if the block succeeds."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        yield tmp
        os.replace(tmp, path)
    except OSError as exc:
        if exc.errno in USER_FIXABLE:
            raise write_error(path, exc) from exc
        raise
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)


def write_json(path: str | Path, obj: object) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, default=_json_default) + "\n")


def _json_default(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot serialise {type(value).__name__}")
