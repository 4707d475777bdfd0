"""A seeded random split of a file's rows into training and held-out possessions.

Its own module (NumPy only), so that the configuration can name it without loading the
file readers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from lineup_numpyro.errors import ConfigError


@dataclass(frozen=True)
class Split:
    """A seeded random split of a file's rows: about `fraction` of them are held out.

    Row i (0-based, in file order, before any season filter) is held out when a hash of
    (seed, i) falls below `fraction`; so the split does not depend on how the file is
    chunked, and `side` picks the training rows or the held-out ones.
    """

    fraction: float
    seed: int = 0
    side: Literal["train", "holdout"] = "train"

    def __post_init__(self) -> None:
        if not 0.0 < self.fraction < 1.0:
            raise ConfigError(f"the holdout fraction must lie in (0, 1), got {self.fraction}")
        if self.side not in ("train", "holdout"):
            raise ValueError(f"side must be 'train' or 'holdout', got {self.side!r}")

    def keep(self, row0: int, n: int) -> np.ndarray:
        """Which of rows row0 .. row0 + n - 1 belong to this side, (n,) bool."""
        u = _uniform_hash(np.arange(row0, row0 + n, dtype=np.uint64), self.seed)
        held_out = u < self.fraction
        return held_out if self.side == "holdout" else ~held_out

    def other_side(self) -> Split:
        return Split(self.fraction, self.seed, "holdout" if self.side == "train" else "train")


def _uniform_hash(i: np.ndarray, seed: int) -> np.ndarray:
    """A uniform number in [0, 1) per index: the splitmix64 finaliser of (seed, i)."""
    with np.errstate(over="ignore"):
        x = i * np.uint64(0x9E3779B97F4A7C15) + np.uint64(seed % 2**64) * np.uint64(0xD1B54A32D192ED03)
        x ^= x >> np.uint64(30)
        x *= np.uint64(0xBF58476D1CE4E5B9)
        x ^= x >> np.uint64(27)
        x *= np.uint64(0x94D049BB133111EB)
        x ^= x >> np.uint64(31)
    return (x >> np.uint64(11)).astype(np.float64) / float(2**53)
