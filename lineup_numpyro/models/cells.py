"""Which coefficient cells the data touch, and how many possessions stand behind each.

A cell is one coefficient of one matchup: (m, j) with j = 0 the intercept beta_0[m], j = 1..8
beta_off[m, a] and j = 9..16 beta_def[m, a]. Its design column is zero in every possession of
matchup m exactly when X_m'X_m[j, j] = 0 (or the matchup has no possessions); then the
coefficient does not enter the Gaussian likelihood at all, and its posterior is exactly its
prior (matchup model) or, for the hierarchical model, its deviation e[m, j] is exactly
N(0, 1) given everything else. The models sample only touched cells and draw the others
afterwards (models.complete), which is exact, and cheaper and better-behaved for NUTS.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lineup_numpyro import names
from lineup_numpyro.data.suffstats import SuffStats

M, A, P = names.N_MATCHUPS, names.N_ARCHETYPES, names.N_FEATURES


@dataclass(frozen=True, eq=False)
class Cells:
    """touched: (M, 17) bool, the cells whose design column is non-zero somewhere in their
    matchup (how many possessions stand behind each is SuffStats.nonzero)."""

    touched: np.ndarray

    @classmethod
    def from_stats(cls, stats: SuffStats) -> Cells:
        return cls(np.einsum("mjj->mj", stats.xtx) > 0)

    @classmethod
    def everywhere(cls) -> Cells:
        """Every cell touched: the models' full form (used for priors and hand-built checks)."""
        return cls(np.ones((M, P), dtype=bool))

    def index(self, family: str) -> np.ndarray:
        """Flat indices into the (M, 17) grid of the touched cells of one family, row-major."""
        cols = names.FAMILY_COLUMNS[family]
        grid = np.zeros((M, P), dtype=bool)
        grid[:, cols] = self.touched[:, cols]
        return np.flatnonzero(grid)

    def family_mask(self, family: str) -> np.ndarray:
        """The touched cells of one family as a flat mask over its own (M,) or (M * A,) values."""
        return self.touched[:, names.FAMILY_COLUMNS[family]].reshape(-1)

    def count(self, family: str) -> int:
        return int(self.index(family).size)

    def matchup_archetype(self, family: str) -> tuple[np.ndarray, np.ndarray]:
        """0-based (matchup, archetype) of each touched cell of `family` (archetype 0 for beta_0)."""
        m, j = np.divmod(self.index(family), P)
        return m, (j if family == "beta_0" else (j - 1) % A)
