"""Run configuration: frozen dataclasses with every default in one place."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Literal, get_args

from lineup_numpyro import names
from lineup_numpyro.data.split import Split
from lineup_numpyro.errors import ConfigError

ModelName = Literal["simplified", "matchup", "hierarchical"]
Likelihood = Literal["suffstats", "rows"]
ChainMethod = Literal["parallel", "vectorized", "sequential"]
Platform = Literal["cpu", "gpu"]
Parameterization = Literal["whitened", "noncentred"]  # the hierarchical model's coordinates (whitening.py)
Method = Literal["nuts", "map", "laplace", "advi"]
Init = Literal["default", "map", "laplace", "plugin"]
FirstMass = Literal["identity", "noise"]  # NUTS's first inverse mass matrix (SamplerConfig.first_mass)
Guide = Literal["meanfield", "lowrank"]  # advi's Gaussian family
Kernel = Literal["nuts", "chees"]  # the MCMC kernel (SamplerConfig.kernel)
MassEstimate = Literal["variance", "gradient"]  # NUTS's diagonal mass matrix from (SamplerConfig.mass_estimate)

# NUTS target acceptance per model. The hierarchical model needs a little more than the others:
# in matchups of 1-24 possessions some exp-link cells have a wall above (their data bound beta
# from above; exp() makes it steep on the sampled scale, steepest when their tau is in its upper
# tail). Viewed at that wall (whitening._walled), 0 divergent transitions in 10 seeds of
# stratified_sample_10k at 0.97; 0.99 shortens trajectories and costs the thinly informed taus
# ESS (min ESS_bulk 947-1,101 of 4,000 on the three-season file, 1,162-1,669 at 0.97):
# docs/hierarchical.md.
TARGET_ACCEPT = {"simplified": 0.9, "matchup": 0.9, "hierarchical": 0.97}
# The chees kernel's target for its chains' mean Metropolis acceptance probability (an HMC
# transition's, not NUTS's tree average; Stan's default for static HMC too).
CHEES_TARGET_ACCEPT = 0.8

# posterior.nc's log_likelihood (float64) and posterior_predictive (float32) groups, one value
# per possession and draw each (run/pointwise.py), are written by default while they take at
# most this much: 10,000 possessions x 4,000 draws (458 MB) are; the 96,837-possession season
# at 4,000 draws (4.3 GB) is not, unless asked for (--log-likelihood).
POINTWISE_BYTES_PER_VALUE = 12
POINTWISE_MAX_BYTES = 512 * 2**20


# NUTS's tree depth in the first CAPPED_SHARE of the warm-up iterations, per model
# (SamplerConfig.warmup_max_tree_depth). Those iterations run with the identity mass matrix (and
# its first estimates) on coefficients ~100x narrower than it, where every tree ran to depth 10:
# half of the default matchup job's gradients went there. Capped at 8 there, its warm-up takes
# ~45% fewer gradients, with the same step size, sampling cost and ESS. Capping the whole warm-up
# saved as much here, but at 10M possessions (seed 0) it adapted a smaller step size and a
# quarter of the draws ran to depth 10 (sampling 16 s instead of 2 s): the later windows, which
# set the final step size and mass matrix, are not capped. The hierarchical model is not capped
# (10): with the cap, 2 of its convergence runs (benchmarks/hierarchical_convergence.py) ended at
# R-hat 1.011, where uncapped all 12 stay <= 1.009 (docs/hierarchical.md).
# benchmarks/experiments/warmup_depth/README.md. The cap is part of the one NUTS kernel
# (sampling.FlatNUTS: a depth limit that follows the iteration), not a second compiled program.
CAPPED_SHARE = 0.25  # of 1,000: Stan's initial fast window (75) and its first 3 slow windows
WARMUP_MAX_TREE_DEPTH = {"simplified": 8, "matchup": 8, "hierarchical": 10}


def default_target_accept(model: str) -> float:
    return TARGET_ACCEPT[model]


def default_warmup_max_tree_depth(model: str) -> int:
    return WARMUP_MAX_TREE_DEPTH[model]


def model_sampler(model: str, **settings: object) -> SamplerConfig:
    """NUTS settings with `model`'s defaults (its target acceptance and warm-up depth cap, as the
    command line has them; the chees kernel's target acceptance for kernel="chees") wherever
    `settings` do not say otherwise."""
    defaults = {
        "target_accept": CHEES_TARGET_ACCEPT if settings.get("kernel") == "chees" else default_target_accept(model),
        "warmup_max_tree_depth": default_warmup_max_tree_depth(model),
    }
    return SamplerConfig(**{**defaults, **settings})


@dataclass(frozen=True)
class SamplerConfig:
    """NUTS settings. Defaults follow Stan's, except target_accept (0.9, see README; the command
    line uses default_target_accept(model): 0.97 for the hierarchical model) and the tree depth
    of the first warm-up iterations (8; the command line's default_warmup_max_tree_depth(model):
    10, no cap, for the hierarchical model)."""

    chains: int = 4
    warmup: int = 1000
    draws: int = 1000
    seed: int = 0
    target_accept: float = 0.9
    max_tree_depth: int = 10
    # NUTS's tree depth in the first capped_share of the warm-up, at most max_tree_depth
    # (WARMUP_MAX_TREE_DEPTH, CAPPED_SHARE above; the command line uses default_warmup_max_tree_depth(model))
    warmup_max_tree_depth: int = 8
    capped_share: float = CAPPED_SHARE
    dense_mass: bool = False
    chain_method: ChainMethod = "parallel"
    platform: Platform = "cpu"
    progress_bar: bool = False
    # Draws per chain in each chunk; a chunk is saved when it ends (as the warm-up is), so a
    # stopped run loses at most one chunk. Chunks share one compiled program: they cost nothing.
    checkpoint_every: int = 250
    # Where chains start: NumPyro's default (uniform in [-2, 2] on the unconstrained scale), or
    # the MAP estimate with a little jitter per chain (approx.find_mode), to shorten warm-up;
    # laplace: from the MAP, with the Laplace approximation's variances there as the first
    # (diagonal) inverse mass matrix instead of the identity.
    init: Init = "default"
    # The first inverse mass matrix where the start gives none (every init but laplace and
    # plugin): the identity (Stan's and NumPyro's), or noise-scaled (sampling.noise_scaled_mass:
    # 1, but log sigma at 1 / (2 N)). Noise-scaled halves the hierarchical model's warm-up, but
    # in its convergence runs gave 1 divergent transition and 1 min ESS_bulk below 1,000 in 16,
    # where the identity gave none; it gains nothing on the other two models
    # (benchmarks/experiments/noise_scaled_mass/README.md): an option, not the default.
    first_mass: FirstMass = "identity"
    # nuts; or chees (inference/chees.py: jittered HMC whose chains of a fit all take the same
    # number of leapfrog steps, its trajectory length adapted by ChEES), for many fits at once
    # (sbc): fits of a batch then wait only for longer trajectories, not for every chain's
    # longest tree. target_accept is then the mean Metropolis acceptance probability's target.
    kernel: Kernel = "nuts"
    # What NUTS's warm-up estimates its diagonal inverse mass matrix from in each slow window:
    # the draws' variances (Stan's, NumPyro's), or sqrt(Var(draws) / Var(gradients)) per
    # coordinate (nutpie's; inference/adaptation.py).
    mass_estimate: MassEstimate = "variance"

    def __post_init__(self) -> None:
        for name in ("chains", "draws", "max_tree_depth", "warmup_max_tree_depth", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.warmup < 0:
            raise ConfigError(f"warmup must be non-negative, got {self.warmup}")
        if not 0.0 <= self.capped_share <= 1.0:
            raise ConfigError(f"capped_share must lie in [0, 1], got {self.capped_share}")
        if not 0.0 < self.target_accept < 1.0:
            raise ConfigError(f"target_accept must lie in (0, 1), got {self.target_accept}")
        if self.kernel == "chees" and self.dense_mass:
            raise ConfigError("the chees kernel adapts a diagonal mass matrix; drop dense_mass")
        if self.mass_estimate not in get_args(MassEstimate):
            raise ConfigError(f"mass_estimate must be one of {get_args(MassEstimate)}, got {self.mass_estimate!r}")
        if self.mass_estimate == "gradient" and (self.dense_mass or self.kernel != "nuts"):
            raise ConfigError(
                "the gradient estimate of the mass matrix is NUTS's diagonal one; drop dense_mass and chees"
            )


@dataclass(frozen=True)
class ApproxConfig:
    """Settings of the optax-based approximations (approx.py): map, laplace, advi."""

    draws: int = 4000  # draws from the approximation (laplace, advi), as many as 4 x 1,000 NUTS
    seed: int = 0
    # MAP has converged when every |dU/dx| < grad_tol: then the mode is off by at most grad_tol x sd
    # in posterior sds along any direction of sd <= 1/sqrt(curvature) (<= 0.005 sd where sd <= 5).
    grad_tol: float = 1e-3
    max_iter: int = 20_000  # L-BFGS iterations at most (each costs one or a few gradients: ~0.5 ms)
    guide: Guide = "meanfield"  # advi's Gaussian family
    rank: int = 10  # of the low-rank guide
    learning_rate: float = 0.01  # Adam's, for advi
    block: int = 1000  # advi steps between convergence checks
    max_steps: int = 50_000
    elbo_rtol: float = 1e-5  # advi has converged when a block improves the mean ELBO by less

    def __post_init__(self) -> None:
        for name in ("draws", "max_iter", "rank", "block", "max_steps"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("grad_tol", "learning_rate", "elbo_rtol"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name} must be positive, got {getattr(self, name)}")


@dataclass(frozen=True)
class DataConfig:
    """Where the possessions come from; `path=None` means the built-in simulated season.

    `seasons` keeps those seasons' rows, and `where` = (column, value) the rows whose column
    holds that value as text (`train --where team=BOS`; each group's run of `train --by`).
    `holdout_fraction` > 0 keeps that share of the rows (a seeded random split, see
    data.Split) out of training, for `validate` to score the run on.
    """

    path: str | None = None
    seasons: tuple[str, ...] = ()
    chunksize: int = 200_000
    holdout_fraction: float = 0.0
    split_seed: int = 0
    where: tuple[str, str] | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.holdout_fraction < 1.0:
            raise ConfigError(f"holdout_fraction must lie in [0, 1), got {self.holdout_fraction}")
        if self.where is not None:
            object.__setattr__(self, "where", tuple(self.where))  # a list, as run_config.json keeps it
            if len(self.where) != 2:
                raise ConfigError(f"where must be (column, value), got {self.where!r}")
            check_group_column(self.where[0])
            if self.path is None:
                raise ConfigError(f"--where {self.where[0]}={self.where[1]} filters --data; give --data too")

    def describe(self, side: str = "train") -> str:
        """The possessions of one side ('train' or 'holdout') in words: the file, its filters, the split."""
        source = self.path or "the built-in simulated season"
        if self.seasons:
            source += f" (seasons {', '.join(self.seasons)})"
        if self.where:
            source += f" ({self.where[0]} {self.where[1]})"
        if self.holdout_fraction > 0:
            source += f", {side} side of the {self.holdout_fraction:g} random split (seed {self.split_seed})"
        return source

    def split(self, side: str = "train"):
        """The data.Split of one side, or None when nothing is held out."""

        return Split(self.holdout_fraction, self.split_seed, side) if self.holdout_fraction > 0 else None


def parse_where(text: str | None) -> tuple[str, str] | None:
    """'team=BOS' -> ('team', 'BOS'); None or '' -> None."""
    if not text:
        return None
    column, sep, value = text.partition("=")
    if not sep or not column.strip():
        raise ConfigError(f"--where {text!r}: expected COLUMN=VALUE, e.g. team=BOS")
    return column.strip(), value.strip()


def check_group_column(column: str) -> None:
    """A column a run can be split (`train --by`) or filtered (`--where`) by: any but the model's own."""
    if column in names.REQUIRED_COLUMNS or column in (names.OFF_SUPERCLUSTER, names.DEF_SUPERCLUSTER):
        raise ConfigError(
            f"column '{column}' is part of the model's input; runs are split or filtered by another column "
            f"(e.g. {names.SEASON}, a team or a game)"
        )


@dataclass(frozen=True)
class Priors:
    """The prior of each parameter family (../shared/MODELS.md); the defaults are the original
    project's. The command line names a family by its field (`--prior beta=1`)."""

    beta_0: float = 5.0  # beta_0 ~ N(0, beta_0); hierarchical: mu_0 ~ N(0, beta_0)
    beta: float = 5.0  # beta_off, beta_def ~ N+(0, beta) (simplified, matchup)
    sigma: float = 2.5  # sigma ~ C+(0, sigma)
    mu_loc: float = -4.0  # hierarchical: mu_off, mu_def ~ N(mu_loc, mu_sd), on the log scale
    mu_sd: float = 2.0
    tau: float = 1.0  # hierarchical: tau_0, tau_off, tau_def ~ N+(0, tau)

    def __post_init__(self) -> None:
        for name, value in self.to_dict().items():
            if not math.isfinite(value) or (name != "mu_loc" and value <= 0):
                kind = "a finite number" if name == "mu_loc" else "a positive scale"
                raise ConfigError(f"prior {name} must be {kind}, got {value!r}")

    def to_dict(self) -> dict[str, float]:
        return asdict(self)

    @classmethod
    def families(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    @classmethod
    def parse(cls, options: Sequence[str] | None) -> Priors:
        """The defaults with `FAMILY=VALUE` options applied (the command line's --prior)."""
        expected = f"expected FAMILY=VALUE, FAMILY one of {', '.join(cls.families())}"
        given: dict[str, float] = {}
        for option in options or ():
            name, sep, text = option.partition("=")
            name = name.strip()
            if not sep or name not in cls.families():
                raise ConfigError(f"--prior {option!r}: {expected}")
            try:
                given[name] = float(text)
            except ValueError:
                raise ConfigError(f"--prior {option!r}: {text.strip()!r} is not a number; {expected}") from None
        try:
            return cls(**given)
        except ConfigError as exc:
            raise ConfigError(f"--prior: {exc}; {expected}") from None

    def changed(self) -> dict[str, float]:
        """The families that differ from the defaults."""
        default = Priors().to_dict()
        return {k: v for k, v in self.to_dict().items() if v != default[k]}

    def unused(self, model: str) -> list[str]:
        """Changed families that `model` has no prior of (set, but without effect)."""
        return [k for k in self.changed() if k not in PRIORS_OF_MODEL[model]]


# Which Priors fields each model reads (the Stan files take the same ones as data).
PRIORS_OF_MODEL = {
    "simplified": ("beta_0", "beta", "sigma"),
    "matchup": ("beta_0", "beta", "sigma"),
    "hierarchical": ("beta_0", "sigma", "mu_loc", "mu_sd", "tau"),
}


@dataclass(frozen=True)
class RunConfig:
    """Everything that defines a training run; saved as run_config.json in the run directory."""

    model: ModelName = "matchup"
    likelihood: Likelihood = "suffstats"
    data: DataConfig = field(default_factory=DataConfig)
    # None: the model's own defaults (model_sampler), as `train` on the command line has them;
    # a SamplerConfig given is taken as it is
    sampler: SamplerConfig = None  # type: ignore[assignment]  (set in __post_init__)
    method: Method = "nuts"  # or an approximation, with the settings in `approx`
    approx: ApproxConfig = field(default_factory=ApproxConfig)
    # hierarchical model only: NUTS's coordinates; both give the same posterior
    parameterization: Parameterization = "whitened"
    # posterior.nc's per-possession groups (pointwise.py): None = where under POINTWISE_MAX_BYTES
    log_likelihood: bool | None = None
    priors: Priors = field(default_factory=Priors)

    def __post_init__(self) -> None:
        if self.sampler is None:
            object.__setattr__(self, "sampler", model_sampler(self.model))
        if self.sampler.init == "plugin" and self.model != "matchup":
            raise ConfigError(
                f"--init plugin starts from each matchup's own fit: the matchup model's start; the {self.model} "
                "model takes default, map or laplace"
            )

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> RunConfig:
        """The inverse of to_dict (as saved in run_config.json)."""
        data = {**d["data"], "seasons": tuple(d["data"].get("seasons") or ())}
        return cls(
            model=d["model"],
            likelihood=d["likelihood"],
            data=DataConfig(**data),
            # runs saved before the cap warmed up at their max_tree_depth throughout
            sampler=SamplerConfig(**{"warmup_max_tree_depth": d["sampler"].get("max_tree_depth", 10), **d["sampler"]}),
            method=d.get("method", "nuts"),
            approx=ApproxConfig(**d.get("approx", {})),
            # runs saved before the whitened form existed were non-centred
            parameterization=d.get("parameterization", "noncentred"),
            log_likelihood=d.get("log_likelihood"),
            priors=Priors(**d.get("priors", {})),  # runs saved before --prior had the defaults
        )


def default_host_devices(chains: int) -> int:
    """One XLA host device per core, and at least one per chain (so 'parallel' can pmap)."""
    return max(os.cpu_count() or 1, chains)


# Options that `train --resume` may repeat but not change (RunConfig paths); the rest (the
# platform, a progress bar) do not change the draws.
FIXED_ON_RESUME = (
    "model",
    "likelihood",
    "method",
    "parameterization",
    "log_likelihood",
    "data.path",
    "data.seasons",
    "data.where",
    "data.holdout_fraction",
    "data.split_seed",
    "sampler.chains",
    "sampler.warmup",
    "sampler.draws",
    "sampler.seed",
    "sampler.target_accept",
    "sampler.max_tree_depth",
    "sampler.warmup_max_tree_depth",
    "sampler.capped_share",
    "sampler.dense_mass",
    "sampler.chain_method",
    "sampler.checkpoint_every",
    "sampler.init",
    "sampler.first_mass",
    "sampler.mass_estimate",
    "approx.guide",
    "priors",
)
