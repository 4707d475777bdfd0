"""Run configuration: frozen dataclasses with every default in one place."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import Literal

ModelName = Literal["simplified", "matchup", "hierarchical"]
Likelihood = Literal["suffstats", "rows"]
ChainMethod = Literal["parallel", "vectorized", "sequential"]
Platform = Literal["cpu", "gpu"]


@dataclass(frozen=True)
class SamplerConfig:
    """NUTS settings. Defaults follow Stan's, except target_accept (0.9, see README)."""

    chains: int = 4
    warmup: int = 1000
    draws: int = 1000
    seed: int = 0
    target_accept: float = 0.9
    max_tree_depth: int = 10
    dense_mass: bool = False
    chain_method: ChainMethod = "parallel"
    platform: Platform = "cpu"
    progress_bar: bool = False
    # Draws per chain in each chunk; a chunk is saved when it ends (as the warm-up is), so a
    # stopped run loses at most one chunk. Chunks share one compiled program: they cost nothing.
    checkpoint_every: int = 250

    def __post_init__(self) -> None:
        for name in ("chains", "draws", "max_tree_depth", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.warmup < 0:
            raise ValueError(f"warmup must be non-negative, got {self.warmup}")
        if not 0.0 < self.target_accept < 1.0:
            raise ValueError(f"target_accept must lie in (0, 1), got {self.target_accept}")


@dataclass(frozen=True)
class DataConfig:
    """Where the possessions come from; `path=None` means the built-in simulated season.

    `holdout_fraction` > 0 keeps that share of the rows (a seeded random split, see
    data.Split) out of training, for `validate` to score the run on.
    """

    path: str | None = None
    seasons: tuple[str, ...] = ()
    chunksize: int = 200_000
    holdout_fraction: float = 0.0
    split_seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 <= self.holdout_fraction < 1.0:
            raise ValueError(f"holdout_fraction must lie in [0, 1), got {self.holdout_fraction}")

    def split(self, side: str = "train"):
        """The data.Split of one side, or None when nothing is held out."""
        from .data import Split

        return Split(self.holdout_fraction, self.split_seed, side) if self.holdout_fraction > 0 else None


@dataclass(frozen=True)
class RunConfig:
    """Everything that defines a training run; saved as run_config.json in the run directory."""

    model: ModelName = "matchup"
    likelihood: Likelihood = "suffstats"
    data: DataConfig = field(default_factory=DataConfig)
    sampler: SamplerConfig = field(default_factory=SamplerConfig)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> RunConfig:
        """The inverse of to_dict (as saved in run_config.json)."""
        data = {**d["data"], "seasons": tuple(d["data"].get("seasons") or ())}
        return cls(model=d["model"], likelihood=d["likelihood"], data=DataConfig(**data),
                   sampler=SamplerConfig(**d["sampler"]))


def default_host_devices(chains: int) -> int:
    """One XLA host device per core, and at least one per chain (so 'parallel' can pmap)."""
    return max(os.cpu_count() or 1, chains)
