"""The run directory: every file a run leaves there, and the rules for making, finishing and reading it.

    run_config.json      the RunConfig, the data it read (and their digest), versions, command line
    status.json          'running' (with the process), then 'complete', 'failed' or 'interrupted'
    posterior.nc         ArviZ InferenceData (outputs.py)
    coefficients.csv     per parameter: summary, diagnostics, how much of it is data
    diagnostics.json     convergence, divergences, timings, per-matchup verdicts
    true_params.json     the parameters a built-in simulated season was drawn from
    checkpoint/          while unfinished: the sampler's progress (sampling.Checkpoint)
    validation/NAME.json one per data set a run was scored on (`validate`), none overwriting another
    report/              report.html and its figures
    production_coefficients.csv   `export`'s default output
    .lock                held by the process that writes the run

`RunDir` is the one owner of these names (the role of cmdstanpy's RunSet): commands ask it
whether a run is complete, where a file lives and what a directory holds, and nothing else
lists or deletes files in a run directory.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from lineup_numpyro.errors import RunDirError
from lineup_numpyro.files import write_json


@dataclass(frozen=True)
class CompleteRun:
    """What a finished run offers its readers."""

    record: dict
    table: pd.DataFrame
    diagnostics: dict


class RunDir:
    """One run directory (see the module docstring for its files)."""

    RUN_CONFIG = "run_config.json"
    STATUS = "status.json"
    POSTERIOR = "posterior.nc"
    COEFFICIENTS = "coefficients.csv"
    DIAGNOSTICS = "diagnostics.json"
    TRUE_PARAMS = "true_params.json"
    CHECKPOINT = "checkpoint"
    VALIDATION = "validation"
    LEGACY_VALIDATION = "validation.json"  # runs validated before validation/ existed
    REPORT = "report"
    PRODUCTION = "production_coefficients.csv"
    LOCK = ".lock"
    MARKERS = (STATUS, RUN_CONFIG)  # what makes a directory a run directory

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._holding = False  # this object holds the lock (holding())

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    def __str__(self) -> str:
        return str(self.path)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    def __fspath__(self) -> str:
        return str(self.path)

    # --- making one ---------------------------------------------------------------------

    def is_run(self) -> bool:
        return any((self.path / name).exists() for name in self.MARKERS)

    def has_checkpoint(self) -> bool:
        return (self.path / self.CHECKPOINT).is_dir() and any((self.path / self.CHECKPOINT).iterdir())

    def prepare(self, overwrite: bool) -> None:
        """Make the directory ready for a new run: create it, or (with `overwrite`) empty an
        earlier run's, leaving nothing of it (validations, report, exports included). Refuses a
        live run, a run that can be resumed (unless `overwrite`), and any directory that is not
        a run's (so that --overwrite never deletes anything else)."""
        if self.path.exists() and not self.path.is_dir():
            raise RunDirError(f"{self.path}: exists and is not a directory")
        entries = [p for p in self.path.iterdir() if p.name != self.LOCK] if self.path.is_dir() else []
        if entries:
            if not overwrite:
                if self.has_checkpoint() and self.status().get("state") != "complete":
                    raise RunDirError(
                        f"{self.path}: holds an unfinished run; finish it with: lineup-numpyro train "
                        f"--resume {self.path} (or pass --overwrite to discard it)"
                    )
                raise RunDirError(f"{self.path}: already holds files; choose another --out or pass --overwrite")
            if not self.is_run():
                raise RunDirError(
                    f"{self.path}: holds files but no run ({' or '.join(self.MARKERS)}); --overwrite "
                    "only replaces a run directory, so choose another --out"
                )
            if not self._holding:
                self._refuse_if_live()
            for entry in entries:
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry)
                else:
                    entry.unlink()
        self.path.mkdir(parents=True, exist_ok=True)

    @contextlib.contextmanager
    def holding(self) -> Iterator[None]:
        """Hold the directory's lock while writing the run: a second process that tries to
        write into it (train --overwrite, --resume) is refused instead of mixing its draws in.
        A lock left by a process that no longer runs on this machine is taken over."""
        self.path.mkdir(parents=True, exist_ok=True)
        lock = self.path / self.LOCK
        me = {"pid": os.getpid(), "host": socket.gethostname(), "since": _now()}
        for _ in range(2):
            try:
                fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                self._refuse_if_live()
                lock.unlink(missing_ok=True)  # stale: its process is gone
                continue
            with os.fdopen(fd, "w") as f:
                f.write(json.dumps(me))
            break
        else:
            raise RunDirError(f"{self.path}: could not take its lock ({lock}); is another process starting a run here?")
        self._holding = True
        try:
            self._remove_orphans()
            yield
        finally:
            self._holding = False
            with contextlib.suppress(OSError, ValueError):
                if json.loads(lock.read_text()).get("pid") == me["pid"]:
                    lock.unlink()

    def _remove_orphans(self) -> None:
        """Temporary files a killed process left (files.atomic_path's .NAME.PID.tmp, a report
        being built): with the lock held, any not of this process are orphans."""
        mine = str(os.getpid())
        for path in [*self.path.rglob(".*.tmp"), *self.path.glob(f".{self.REPORT}.tmp.*")]:
            if mine not in path.name.split("."):
                if path.is_dir():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    path.unlink(missing_ok=True)

    def _refuse_if_live(self) -> None:
        holder = self._lock_holder()
        if holder is not None and _alive(holder):
            raise RunDirError(
                f"{self.path}: in use by process {holder['pid']} on {holder['host']} (since "
                f"{holder.get('since', '?')}); wait for it to finish or stop it first"
            )

    def _lock_holder(self) -> dict | None:
        try:
            return json.loads((self.path / self.LOCK).read_text())
        except (OSError, ValueError):
            return None

    # --- status ---------------------------------------------------------------------------

    def set_status(self, state: str, **details: object) -> None:
        write_json(
            self.path / self.STATUS,
            {"state": state, "time": _now(), "pid": os.getpid(), "host": socket.gethostname(), **details},
        )

    def status(self) -> dict:
        """status.json; a 'running' run whose process is gone reads as 'stopped'."""
        if not self.path.is_dir():
            raise RunDirError(f"{self.path}: no such run directory")
        path = self.path / self.STATUS
        if not path.exists():
            raise RunDirError(f"{self.path}: not a run directory (no {self.STATUS})")
        status = _read_json(path)
        if status.get("state") == "running" and "pid" in status and not _alive(status):
            status = {**status, "state": "stopped", "note": f"process {status['pid']} on {status.get('host')} is gone"}
        return status

    def record(self) -> dict:
        path = self.path / self.RUN_CONFIG
        if not path.exists():
            raise RunDirError(
                f"{self.path}: no {self.RUN_CONFIG}; the run stopped before it started sampling, start it again"
            )
        return _read_json(path)

    def load(self) -> tuple[dict, dict, pd.DataFrame | None, dict | None]:
        """(status, run record, coefficient table, diagnostics); the last two None if not written."""
        status = self.status()
        record = _read_json(self.path / self.RUN_CONFIG) if (self.path / self.RUN_CONFIG).exists() else {}
        table = pd.read_csv(self.path / self.COEFFICIENTS) if (self.path / self.COEFFICIENTS).exists() else None
        diag = _read_json(self.path / self.DIAGNOSTICS) if (self.path / self.DIAGNOSTICS).exists() else None
        return status, record, table, diag

    def require_complete(self, what: str, nuts: bool = False) -> CompleteRun:
        """The finished run, or a RunDirError saying why there is none to `what` (and, with
        `nuts`, refusing an approximation where R-hat and divergences are needed)."""
        status, record, table, diag = self.load()
        state = status.get("state")
        if state != "complete" or table is None or diag is None:
            hint = (
                f"; finish it with: lineup-numpyro train --resume {self.path}"
                if state in ("running", "stopped", "interrupted", "failed") and self.has_checkpoint()
                else ""
            )
            raise RunDirError(f"{self.path}: the run is {state!r}, not complete; nothing to {what}{hint}")
        if nuts and diag.get("method", "nuts") != "nuts":
            raise RunDirError(
                f"{self.path}: a {diag['method']} approximation; {what} needs a NUTS run "
                "(train --method nuts, the default)"
            )
        return CompleteRun(record, table, diag)

    # --- validations ----------------------------------------------------------------------

    def validation_path(self, name: str) -> Path:
        return self.path / self.VALIDATION / f"{_slug(name)}.json"

    def write_validation(self, name: str, report: dict) -> Path:
        """validation/NAME.json: one file per data set scored, so that another data set (or
        the run's own split) never replaces it."""
        path = self.validation_path(name)
        write_json(path, report)
        return path

    def validations(self) -> list[dict]:
        """Every validation of the run, oldest file first (and an old run's validation.json)."""
        files = sorted((self.path / self.VALIDATION).glob("*.json"), key=lambda p: p.stat().st_mtime)
        legacy = self.path / self.LEGACY_VALIDATION
        return [_read_json(p) for p in ([legacy] if legacy.exists() else []) + files]


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "validation"


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except ValueError as exc:
        raise RunDirError(f"{path}: not valid JSON ({exc}); the file is damaged") from exc


def _alive(holder: dict) -> bool:
    """Whether the process of a lock or status still runs (unknowable on another host: assume so)."""
    if holder.get("host") not in (None, socket.gethostname()):
        return True
    try:
        pid = int(holder["pid"])
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, KeyError, ValueError, TypeError):
        return True
    try:  # a killed process nobody has reaped yet still answers kill(pid, 0): a zombie is dead
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")
