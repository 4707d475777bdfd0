"""Proof that the NumPyro models and the reference Stan files in models/ define the same posterior.

Two checks, both on the user's data:

* density parity (exact): at random unconstrained points, Stan's log_prob (with the
  Jacobian) and NumPyro's negative potential energy differ by one constant (Stan drops
  normalising constants), and their gradients agree;
* posterior parity (statistical): both samplers' posterior means agree within Monte Carlo
  error (Bonferroni over parameters) and their posterior sds within 15%.

Stan runs through PyStan 3 (`pip install -e .[stan]`), by way of stan_runner.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import arviz as az
import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from numpyro.infer.util import constrain_fn, initialize_model
from scipy.stats import norm

from lineup_numpyro import names
from lineup_numpyro.config import Priors, SamplerConfig
from lineup_numpyro.data.possessions import Possessions
from lineup_numpyro.data.suffstats import SuffStats
from lineup_numpyro.files import atomic_path, write_json
from lineup_numpyro.inference.diagnostics import parameter_summary
from lineup_numpyro.inference.sampling import sample_posterior
from lineup_numpyro.models.cells import Cells
from lineup_numpyro.models.model import MODEL_FUNCTIONS, Likelihood, complete, get_model, make_likelihood
from lineup_numpyro.models.whitening import Whitening
from lineup_numpyro.stan.runner import StanUnavailable, build_stan, sample_stan, stan_data, stan_file  # noqa: F401

DENSITY_RTOL = 1e-8
GRADIENT_RTOL = 1e-6
SD_RATIO_RANGE = (0.85, 1.15)
FAMILY_ALPHA = 0.01  # family-wise false-alarm rate of the Bonferroni z test
STD_DIFF_MAX = 0.25  # stat_comp_benchmarks' criterion |mean difference| / sd_stan


def _stan_order(value: np.ndarray) -> np.ndarray:
    """Flatten as Stan orders unconstrained parameters: matrices column-major."""
    return np.asarray(value).reshape(-1, order="F")


@dataclass(frozen=True)
class DensityParity:
    """Per-point log densities and gradient errors, and the verdict."""

    table: pd.DataFrame  # point, lp_numpyro, lp_stan, offset, gradient_rel_error
    offset_spread: float  # max |offset - offset[0]| relative to max(|lp|, 1)
    max_gradient_error: float
    passed: bool


def density_parity(
    model_fn: Callable[[Likelihood], None],
    likelihood: Likelihood,
    stan_model,
    n_points: int = 20,
    seed: int = 0,
    scale: float = 1.0,
) -> DensityParity:
    """Compare NumPyro and Stan log densities and gradients at `n_points` random unconstrained points.

    Points are N(0, scale^2) in NumPyro's unconstrained space, mapped to Stan's through the
    constrained values (Stan's `unconstrain_pars`), so no ordering is assumed; the gradient is
    compared after flattening NumPyro's in Stan's order, which the first check validates.
    """
    info = initialize_model(jax.random.PRNGKey(seed), model_fn, model_args=(likelihood,))
    sites = list(info.param_info.z)
    order = [s for s in stan_model.param_names if s in sites]
    if sorted(order) != sorted(sites):
        raise ValueError(f"Stan parameters {stan_model.param_names} do not cover NumPyro sites {sites}")
    value_and_grad = jax.jit(jax.value_and_grad(info.potential_fn))
    rng = np.random.default_rng(seed)
    rows = []
    for point in range(n_points):
        z = {k: jnp.asarray(rng.normal(0.0, scale, np.shape(v))) for k, v in info.param_info.z.items()}
        constrained = constrain_fn(model_fn, (likelihood,), {}, z)
        stan_u = np.asarray(stan_model.unconstrain_pars({k: np.asarray(constrained[k]).tolist() for k in order}))
        numpyro_u = np.concatenate([_stan_order(z[k]) for k in order])
        if not np.allclose(stan_u, numpyro_u, rtol=1e-10, atol=1e-10):
            raise ValueError("NumPyro and Stan parameterise the unconstrained space differently")
        potential, grad = value_and_grad(z)
        lp_numpyro = -float(potential)
        grad_numpyro = -np.concatenate([_stan_order(grad[k]) for k in order])
        lp_stan = float(stan_model.log_prob(stan_u.tolist(), adjust_transform=True))
        grad_stan = np.asarray(stan_model.grad_log_prob(stan_u.tolist()))
        rows.append(
            {
                "point": point,
                "lp_numpyro": lp_numpyro,
                "lp_stan": lp_stan,
                "offset": lp_stan - lp_numpyro,
                "gradient_rel_error": float(
                    np.max(np.abs(grad_stan - grad_numpyro)) / max(np.max(np.abs(grad_stan)), 1e-300)
                ),
            }
        )
    table = pd.DataFrame(rows)
    scale_lp = np.maximum(np.abs(table["lp_numpyro"]).max(), 1.0)
    spread = float(np.max(np.abs(table["offset"] - table["offset"].iloc[0])) / scale_lp)
    max_grad = float(table["gradient_rel_error"].max())
    return DensityParity(table, spread, max_grad, spread <= DENSITY_RTOL and max_grad <= GRADIENT_RTOL)


def summarise(samples: dict[str, np.ndarray], model: str) -> pd.DataFrame:
    """mean, sd, MCSE and bulk ESS of every scalar parameter, indexed by Stan name."""
    posterior = az.convert_to_dataset({var: np.asarray(samples[var]) for var in names.POSTERIOR_DIMS[model]})
    table = parameter_summary(posterior, model).set_index("parameter")
    return table.rename(columns={"mcse_mean": "mcse"})


@dataclass(frozen=True)
class PosteriorParity:
    table: pd.DataFrame  # per parameter: means, sds, mcse, z, sd_ratio, std_diff
    z_bound: float
    passed: bool
    std_diff_passed: bool


def posterior_parity(numpyro_samples: dict, stan_samples: dict, model: str) -> PosteriorParity:
    """z = |mean_np - mean_stan| / sqrt(mcse_np^2 + mcse_stan^2) under a Bonferroni bound, sd ratios.

    Every parameter faces the z test. The sd ratio is required of the sampled parameters;
    for derived ones (the hierarchical model's beta = exp(mu + tau e)) it is reported only:
    a rarely seen archetype's beta is log-normal with so heavy a tail that the sd of 4,000
    draws is dominated by a handful of them and its ratio is noise.
    """
    a, b = summarise(numpyro_samples, model), summarise(stan_samples, model)
    table = pd.DataFrame(
        {
            "mean_numpyro": a["mean"],
            "mean_stan": b["mean"],
            "mcse_numpyro": a["mcse"],
            "mcse_stan": b["mcse"],
            "sd_numpyro": a["sd"],
            "sd_stan": b["sd"],
            "ess_bulk_numpyro": a["ess_bulk"],
            "ess_bulk_stan": b["ess_bulk"],
        }
    )
    table["z"] = (table["mean_numpyro"] - table["mean_stan"]).abs() / np.sqrt(
        table["mcse_numpyro"] ** 2 + table["mcse_stan"] ** 2
    )
    table["sd_ratio"] = table["sd_numpyro"] / table["sd_stan"]
    table["std_diff"] = (table["mean_numpyro"] - table["mean_stan"]).abs() / table["sd_stan"]
    derived = names.DERIVED.get(model, ())
    table["derived"] = [p.split("[")[0] in derived for p in table.index]
    bound = float(norm.ppf(1.0 - FAMILY_ALPHA / (2 * len(table))))
    lo, hi = SD_RATIO_RANGE
    sd_ok = table["sd_ratio"].between(lo, hi) | table["derived"]
    passed = bool((table["z"] <= bound).all() and sd_ok.all())
    return PosteriorParity(table.reset_index(), bound, passed, bool((table["std_diff"] < STD_DIFF_MAX).all()))


@dataclass(frozen=True)
class ParityReport:
    """Both checks on one data set; `passed` when every check that ran passed."""

    model: str
    form: str
    density: dict[str, DensityParity]  # by "<NumPyro likelihood>, <data or prior probe>"
    posterior: PosteriorParity | None
    stan_divergences: int | None
    priors: Priors = field(default_factory=Priors)

    @property
    def passed(self) -> bool:
        ok = all(d.passed for d in self.density.values())
        return ok and (self.posterior is None or self.posterior.passed)

    def verdict(self) -> dict:
        out = {
            "model": self.model,
            "stan_file": stan_file(self.model, self.form).name,
            "passed": self.passed,
            "priors": self.priors.to_dict(),
            "density": {
                lik: {
                    "passed": d.passed,
                    "points": len(d.table),
                    "offset_spread_rel": d.offset_spread,
                    "max_gradient_rel_error": d.max_gradient_error,
                    "tolerances": [DENSITY_RTOL, GRADIENT_RTOL],
                }
                for lik, d in self.density.items()
            },
        }
        if self.posterior is not None:
            t = self.posterior.table
            out["posterior"] = {
                "passed": self.posterior.passed,
                "parameters": len(t),
                "z_bound": self.posterior.z_bound,
                "max_z": float(t["z"].max()),
                "max_z_parameter": t.loc[t["z"].idxmax(), "parameter"],
                "sd_ratio_range": [
                    float(t.loc[~t["derived"], "sd_ratio"].min()),
                    float(t.loc[~t["derived"], "sd_ratio"].max()),
                ],
                "sd_ratio_range_derived": (
                    [float(t.loc[t["derived"], "sd_ratio"].min()), float(t.loc[t["derived"], "sd_ratio"].max())]
                    if t["derived"].any()
                    else None
                ),
                "sd_ratio_allowed": list(SD_RATIO_RANGE),
                "max_std_diff": float(t["std_diff"].max()),
                "std_diff_below_0.25": self.posterior.std_diff_passed,
                "stan_divergences": self.stan_divergences,
            }
        return out


def prior_probe() -> Possessions:
    """One possession with outcome 0 and all z = 0: at random points its log density is mostly
    the prior's, so a prior that differs cannot hide behind a large likelihood term."""
    z = np.zeros((1, names.N_ARCHETYPES))
    return Possessions(np.zeros(1), np.zeros(1, dtype=np.int64), z, z.copy(), None, "prior probe")


def density_checks(
    model: str,
    rows: Possessions,
    form: str,
    n_points: int = 20,
    seed: int = 0,
    model_fn: Callable[..., None] | None = None,
    priors: Priors | None = None,
) -> dict[str, DensityParity]:
    """Density parity on `rows` and on the prior probe, for both NumPyro likelihoods, both sides
    under `priors` (default: config.Priors()).

    On `rows` both sides sample only the cells the data touch (cells.py), the hierarchical
    model in the data's whitened coordinates (whitening.py); on the probe both sample every
    cell in plain coordinates, so that every prior faces the comparison.
    `model_fn(likelihood, cells[, whitening], priors)` replaces the package's model (to show that
    the harness catches a wrong one).
    """

    priors = priors or Priors()
    checks = {}
    for label, data in (("data", rows), ("prior probe", prior_probe())):
        stats = SuffStats.from_possessions(data)
        cells = Cells.from_stats(stats) if label == "data" else Cells.everywhere()
        extra = {}
        if model == "hierarchical":
            extra["whitening"] = Whitening.from_stats(stats) if label == "data" else Whitening.none()
        bound = partial(model_fn or MODEL_FUNCTIONS[model], cells=cells, priors=priors, **extra)
        stan_model = build_stan(
            model, form, stan_data(model, form, data, stats, cells, priors=priors, **extra), seed=seed
        )
        for kind in ("suffstats", "rows"):
            checks[f"{kind}, {label}"] = density_parity(
                bound, make_likelihood(kind, stats, data), stan_model, n_points, seed=seed
            )
    return checks


def run_parity(
    model: str,
    rows: Possessions,
    form: str = "reference",
    sampler=None,
    n_points: int = 20,
    posterior: bool = True,
    priors: Priors | None = None,
) -> ParityReport:
    """Density parity (both NumPyro likelihoods), then (optionally) posterior parity, on `rows`,
    under `priors` (default: config.Priors())."""

    sampler, priors = sampler or SamplerConfig(), priors or Priors()
    density = density_checks(model, rows, form, n_points, sampler.seed, priors=priors)
    if not posterior:
        return ParityReport(model, form, density, None, None, priors)
    stats = SuffStats.from_possessions(rows)
    cells = Cells.from_stats(stats)
    whitening = Whitening.from_stats(stats) if model == "hierarchical" else None
    stan_fit = sample_stan(model, form, stan_data(model, form, rows, stats, cells, whitening, priors), sampler)
    ours = sample_posterior(get_model(model, cells, whitening, priors), make_likelihood("suffstats", stats), sampler)
    ours_samples = complete(model, ours.samples, cells, sampler.seed, priors)
    return ParityReport(
        model,
        form,
        density,
        posterior_parity(ours_samples, stan_fit.samples, model),
        int(stan_fit.stats["diverging"].sum()),
        priors,
    )


def write_parity(report: ParityReport, out_dir: str | Path) -> None:
    """parity.json (verdict), density_parity.csv and posterior_parity.csv, written atomically."""

    out_dir = Path(out_dir)
    density = pd.concat([d.table.assign(likelihood=k) for k, d in report.density.items()], ignore_index=True)
    with atomic_path(out_dir / "density_parity.csv") as tmp:
        density.to_csv(tmp, index=False, float_format="%.17g")
    if report.posterior is not None:
        with atomic_path(out_dir / "posterior_parity.csv") as tmp:
            report.posterior.table.to_csv(tmp, index=False, float_format="%.6g")
    write_json(out_dir / "parity.json", report.verdict())
