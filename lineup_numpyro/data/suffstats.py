"""Per-matchup sufficient statistics of the Gaussian likelihood, in one streaming pass.

For matchup m with design rows X_m (n_m x 17) and outcomes y_m, the log-likelihood of any
coefficient vector b_m depends on the data only through n_m, X_m'X_m, X_m'y_m and y_m'y_m
(../shared/MODELS.md). Accumulated in float64: the quadratic form subtracts large numbers.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lineup_numpyro import names
from lineup_numpyro.data.possessions import (
    DataError,
    DataWarning,
    Possessions,
    Split,
    design_matrix,
    iter_chunks,
    iter_groups,
)

FEW_POSSESSIONS = 50  # below this a matchup's 17 coefficients lean mostly on the prior


@dataclass(frozen=True)
class SuffStats:
    """n: (M,), xtx: (M, 17, 17), xty: (M, 17), yty: (M,), all float64, M = 36 matchups.

    `nonzero` (M, 17) counts the possessions in which each design column is non-zero (for
    column 0, every possession; for an archetype's column, those with that archetype on the
    floor): how much data stands behind each coefficient. It is not needed by the likelihood.
    """

    n: np.ndarray
    xtx: np.ndarray
    xty: np.ndarray
    yty: np.ndarray
    nonzero: np.ndarray

    @classmethod
    def zeros(cls) -> SuffStats:
        m, p = names.N_MATCHUPS, names.N_FEATURES
        return cls(np.zeros(m), np.zeros((m, p, p)), np.zeros((m, p)), np.zeros(m), np.zeros((m, p), dtype=np.int64))

    @classmethod
    def from_possessions(cls, data: Possessions) -> SuffStats:
        """Statistics of one in-memory batch, grouping rows by matchup."""
        # rows grouped by matchup once (a radix sort: ids 0-35 fit a byte), each group a slice
        # (np.take: 3x fancy indexing's speed); each group's design rows are built as it comes
        order = np.argsort(data.matchup.astype(np.int8), kind="stable")
        z_off, z_def, y = (np.take(a, order, axis=0) for a in (data.z_off, data.z_def, data.y))
        counts = np.bincount(data.matchup, minlength=names.N_MATCHUPS)
        bounds = np.concatenate([[0], np.cumsum(counts)])
        stats = cls.zeros()
        for m in np.flatnonzero(counts):
            rows = slice(bounds[m], bounds[m + 1])
            xm, ym = design_matrix(z_off[rows], z_def[rows]), y[rows]
            stats.n[m] = counts[m]
            stats.xtx[m] = xm.T @ xm
            stats.xty[m] = xm.T @ ym
            stats.yty[m] = ym @ ym
            stats.nonzero[m] = np.count_nonzero(xm, axis=0)
        return stats

    def __add__(self, other: SuffStats) -> SuffStats:
        return SuffStats(
            self.n + other.n,
            self.xtx + other.xtx,
            self.xty + other.xty,
            self.yty + other.yty,
            self.nonzero + other.nonzero,
        )

    @property
    def total(self) -> int:
        return int(self.n.sum())

    @property
    def sum_y(self) -> np.ndarray:
        """Sum of outcomes per matchup (x_0 = 1, so it is X'y's first entry)."""
        return self.xty[:, 0]

    def digest(self) -> str:
        """A fingerprint of the data as the likelihood sees it, for `train --resume` to tell
        changed data from the same: SHA-256 of every statistic, rounded to 40 bits of mantissa
        (~1e-12 relative) so that summation order cannot change it while any edited value does."""
        h = hashlib.sha256()
        for a in (self.n, self.xtx, self.xty, self.yty):
            mantissa, exponent = np.frexp(np.asarray(a, dtype=np.float64))
            h.update(np.round(mantissa * 2.0**40).astype(np.int64).tobytes())
            h.update(exponent.astype(np.int64).tobytes())
        h.update(np.asarray(self.nonzero, dtype=np.int64).tobytes())
        return h.hexdigest()

    def empty_matchups(self) -> np.ndarray:
        """0-based ids of matchups without possessions."""
        return np.flatnonzero(self.n == 0)


def accumulate(chunks: Iterable[Possessions]) -> SuffStats:
    """Sum the statistics of each chunk; memory stays that of one chunk."""
    stats = SuffStats.zeros()
    for chunk in chunks:
        stats = stats + SuffStats.from_possessions(chunk)
    return stats


def from_file(
    path: str | Path,
    seasons: Sequence[str] = (),
    chunksize: int = 200_000,
    split: Split | None = None,
    where: tuple[str, str] | None = None,
) -> SuffStats:
    """One streaming pass over a possession file (works for files larger than memory)."""
    return accumulate(iter_chunks(path, seasons, chunksize, split, where=where))


def by_column(
    path: str | Path, column: str, seasons: Sequence[str] = (), chunksize: int = 200_000, split: Split | None = None
) -> dict[str, SuffStats]:
    """One streaming pass: the statistics of each value of `column` (as text, sorted)."""
    out: dict[str, SuffStats] = {}
    for chunk, values in iter_groups(path, column, seasons, chunksize, split):
        for value in np.unique(values):
            part = SuffStats.from_possessions(chunk.subset(values == value))
            out[value] = out[value] + part if value in out else part
    return dict(sorted(out.items()))


def degenerate_data_messages(stats: SuffStats, source: str) -> list[str]:
    """Plain-language notes on data the models can fit but an analyst should know about."""
    notes: list[str] = []
    if stats.total == 0:
        return [f"{source}: there are no possessions; there is nothing to learn"]
    present = np.flatnonzero(stats.n > 0)
    label = names.MATCHUP_LABELS
    if len(present) == 1:
        notes.append(
            f"{source}: every possession is in matchup {label[present[0]]} (matchup_id {present[0]}); "
            "the matchup-specific and hierarchical models cannot learn how matchups differ"
        )
    if constant_outcome(stats):
        value = stats.sum_y.sum() / stats.total
        notes.append(f"{source}: the outcome is the same ({value:g}) in every possession; there is nothing to learn")
    empty = stats.empty_matchups()
    if 0 < len(empty) < names.N_MATCHUPS:
        notes.append(
            f"{source}: {len(empty)} of {names.N_MATCHUPS} matchups have no possessions "
            f"({', '.join(label[m] for m in empty)}); their coefficients are reported as 'no data'"
        )
    few = [m for m in present if stats.n[m] < FEW_POSSESSIONS]
    if few:
        notes.append(
            f"{source}: {len(few)} matchup(s) have fewer than {FEW_POSSESSIONS} possessions "
            f"({', '.join(f'{label[m]}: {int(stats.n[m])}' for m in few)}); "
            "their coefficients will mostly reflect the prior"
        )
    xx = stats.xtx.sum(axis=0)
    for j in range(1, names.N_FEATURES):
        if xx[j, j] == 0:
            col = (names.Z_OFF + names.Z_DEF)[j - 1]
            notes.append(f"{source}: {col} is 0 in every possession; its coefficient is learned from the prior only")
    return notes


def constant_outcome(stats: SuffStats) -> bool:
    """True when every outcome is equal (variance zero up to rounding); False without possessions."""
    n = stats.total
    if n == 0:
        return False
    mean = stats.sum_y.sum() / n
    var = stats.yty.sum() / n - mean**2
    return bool(var <= 1e-12 * max(1.0, mean**2))


def warn_degenerate(stats: SuffStats, source: str) -> None:
    for note in degenerate_data_messages(stats, source):
        warnings.warn(note, DataWarning, stacklevel=2)


def require_fittable(stats: SuffStats, source: str) -> None:
    """Raise DataError for data whose posterior is improper (a constant outcome lets sigma -> 0)."""
    if stats.total == 0:
        raise DataError(f"{source}: there are no possessions; expected at least one possession to fit")
    if constant_outcome(stats):
        value = stats.sum_y.sum() / stats.total
        raise DataError(
            f"{source}, column '{names.OUTCOME}': every possession has outcome {value:g}; "
            "the model's noise scale sigma would collapse to 0 (improper posterior). "
            "Expected varying points per possession; check how the file was made"
        )
