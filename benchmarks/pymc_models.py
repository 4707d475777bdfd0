"""The three models in PyMC, on the same sufficient statistics, for the `nutpie` benchmark method.

An analyst choosing a sampler today would write the model in PyMC and sample it with nutpie
(its Rust NUTS with gradient-based mass-matrix adaptation, the model compiled by numba).
These are MODELS.md's posteriors written as such an analyst would, through the same
statistics as `lineup-numpyro train` (models.SuffStatsLikelihood):

    log L = -n log(sigma) - n/2 log(2 pi) - sum_m (y'y_m - 2 b_m'X'y_m + b_m'X'X_m b_m) / (2 sigma^2)

and, like the package, sampling only the cells the data touch (`Cells`); the rest are exactly
their prior and are drawn by `models.complete`, so the figures are read by the same code.
The hierarchical model is the plain non-centred form of MODELS.md (the package's whitened
coordinates are its own invention; a PyMC user would not have them).

Needs the optional extra: pip install -e '.[nutpie]' (pymc, nutpie, numba; -e keeps the checkout's code live).
"""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from lineup_numpyro import names
from lineup_numpyro.config import Priors
from lineup_numpyro.data.suffstats import SuffStats
from lineup_numpyro.models.cells import Cells

M, P, A = names.N_MATCHUPS, names.N_FEATURES, names.N_ARCHETYPES


def pymc_model(model: str, stats: SuffStats, priors: Priors = Priors()) -> pm.Model:
    """The PyMC model of `model` on `stats`; variables named as the NumPyro model's sites."""
    cells = Cells.from_stats(stats)
    with pm.Model() as m:
        sigma = pm.HalfCauchy("sigma", beta=priors.sigma)
        if model == "simplified":
            beta_0 = pm.Normal("beta_0", 0.0, priors.beta_0)
            beta_off = pm.HalfNormal("beta_off", priors.beta, shape=A)
            beta_def = pm.HalfNormal("beta_def", priors.beta, shape=A)
            b = pt.tile(pt.concatenate([beta_0[None], beta_off, beta_def])[None, :], (M, 1))
        elif model == "matchup":
            values = {
                "beta_0": pm.Normal("beta_0_data", 0.0, priors.beta_0, shape=cells.count("beta_0")),
                "beta_off": pm.HalfNormal("beta_off_data", priors.beta, shape=cells.count("beta_off")),
                "beta_def": pm.HalfNormal("beta_def_data", priors.beta, shape=cells.count("beta_def")),
            }
            b = _grid(cells, values)
        elif model == "hierarchical":
            values = {}
            for family, short, loc, sd in (
                ("beta_0", "0", 0.0, priors.beta_0),
                ("beta_off", "off", priors.mu_loc, priors.mu_sd),
                ("beta_def", "def", priors.mu_loc, priors.mu_sd),
            ):
                shape = () if family == "beta_0" else (A,)
                mu = pm.Normal(f"mu_{short}", loc, sd, shape=shape)
                tau = pm.HalfNormal(f"tau_{short}", priors.tau, shape=shape)
                e = pm.Normal(f"e_{short}_data", 0.0, 1.0, shape=cells.count(family))
                matchup, archetype = cells.matchup_archetype(family)
                eta = (mu + tau * e) if family == "beta_0" else (mu[archetype] + tau[archetype] * e)
                values[family] = eta if family == "beta_0" else pt.exp(eta)
            b = _grid(cells, values)
        else:
            raise ValueError(f"unknown model {model!r}")
        quad = pt.sum(b * pt.batched_dot(stats.xtx, b), axis=1)  # b_m' X'X_m b_m
        rss = stats.yty - 2.0 * pt.sum(b * stats.xty, axis=1) + quad
        n = float(stats.n.sum())
        pm.Potential("log_likelihood", -n * pt.log(sigma) - 0.5 * n * np.log(2 * np.pi) - pt.sum(rss) / (2 * sigma**2))
    return m


def _grid(cells: Cells, values: dict) -> pt.TensorVariable:
    """The (M, 17) coefficient matrix: the touched cells' values, 0 elsewhere (a zero design column)."""
    flat = pt.zeros(M * P)
    for family, v in values.items():
        flat = pt.set_subtensor(flat[cells.index(family)], v)
    return flat.reshape((M, P))
