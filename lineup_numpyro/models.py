"""The three lineup models as NumPyro model functions (../shared/MODELS.md).

Each model draws its coefficients, builds the per-matchup coefficient matrix
b = [beta_0, beta_off(8), beta_def(8)] and hands it to a likelihood:

* `SuffStatsLikelihood` (default): the exact Gaussian log-likelihood from per-matchup
  n, X'X, X'y, y'y. One gradient costs 36 x 17^2 operations, whatever the data size.
* `RowsLikelihood`: the plain row-by-row translation of the Stan file, an observed site "y"
  (kept for parity checks, pointwise log-likelihood and posterior prediction).

Both define the same log density (tested to relative 1e-8).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist

from . import names
from .data import Possessions
from .suffstats import SuffStats

M, A = names.N_MATCHUPS, names.N_ARCHETYPES
LOG_2PI = float(np.log(2 * np.pi))


class SuffStatsLikelihood(NamedTuple):
    """Per-matchup statistics as JAX-ready arrays: n (M,), xtx (M,17,17), xty (M,17), yty (M,)."""

    n: jnp.ndarray
    xtx: jnp.ndarray
    xty: jnp.ndarray
    yty: jnp.ndarray

    @classmethod
    def from_stats(cls, stats: SuffStats) -> SuffStatsLikelihood:
        return cls(*(jnp.asarray(a, dtype=jnp.float64) for a in (stats.n, stats.xtx, stats.xty, stats.yty)))

    def log_likelihood(self, b: jnp.ndarray, sigma: jnp.ndarray) -> jnp.ndarray:
        """Sum over all possessions of log N(y_i | x_i . b_{m_i}, sigma); b is (17,) or (M, 17)."""
        b = jnp.broadcast_to(b, self.xty.shape)  # (M, 17)
        quad = jnp.einsum("mi,mij,mj->m", b, self.xtx, b)  # b_m' X_m'X_m b_m
        rss = self.yty - 2.0 * jnp.sum(b * self.xty, axis=-1) + quad  # (M,) residual sum of squares
        n = jnp.sum(self.n)
        return -n * jnp.log(sigma) - 0.5 * n * LOG_2PI - jnp.sum(rss) / (2.0 * sigma**2)

    def observe(self, b: jnp.ndarray, sigma: jnp.ndarray) -> None:
        numpyro.factor("y_suffstats", self.log_likelihood(b, sigma))


class RowsLikelihood(NamedTuple):
    """The possessions themselves: x (N, 17) design rows, y (N,), matchup (N,) int."""

    x: jnp.ndarray
    y: jnp.ndarray
    matchup: jnp.ndarray

    @classmethod
    def from_possessions(cls, data: Possessions) -> RowsLikelihood:
        return cls(jnp.asarray(data.design()), jnp.asarray(data.y), jnp.asarray(data.matchup))

    def mean(self, b: jnp.ndarray) -> jnp.ndarray:
        """mu_i = x_i . b_{m_i}, shape (N,)."""
        if b.ndim == 1:
            return self.x @ b
        return jnp.sum(self.x * b[self.matchup], axis=-1)

    def observe(self, b: jnp.ndarray, sigma: jnp.ndarray) -> None:
        numpyro.sample("y", dist.Normal(self.mean(b), sigma), obs=self.y)


Likelihood = SuffStatsLikelihood | RowsLikelihood


def _coefficients(beta_0: jnp.ndarray, beta_off: jnp.ndarray, beta_def: jnp.ndarray) -> jnp.ndarray:
    """b = [beta_0, beta_off, beta_def] along the last axis: (17,) or (M, 17)."""
    return jnp.concatenate([beta_0[..., None], beta_off, beta_def], axis=-1)


def simplified(likelihood: Likelihood) -> None:
    """Pooled model: one coefficient vector for every matchup (18 parameters)."""
    beta_0 = numpyro.sample("beta_0", dist.Normal(0.0, 5.0))
    beta_off = numpyro.sample("beta_off", dist.HalfNormal(5.0).expand([A]).to_event(1))  # (8,)
    beta_def = numpyro.sample("beta_def", dist.HalfNormal(5.0).expand([A]).to_event(1))  # (8,)
    sigma = numpyro.sample("sigma", dist.HalfCauchy(2.5))
    likelihood.observe(_coefficients(beta_0, beta_off, beta_def), sigma)


def matchup(likelihood: Likelihood) -> None:
    """Matchup-specific model: independent coefficients per matchup (36 x 17 + 1 = 613)."""
    beta_0 = numpyro.sample("beta_0", dist.Normal(0.0, 5.0).expand([M]).to_event(1))  # (36,)
    beta_off = numpyro.sample("beta_off", dist.HalfNormal(5.0).expand([M, A]).to_event(2))  # (36, 8)
    beta_def = numpyro.sample("beta_def", dist.HalfNormal(5.0).expand([M, A]).to_event(2))  # (36, 8)
    sigma = numpyro.sample("sigma", dist.HalfCauchy(2.5))
    likelihood.observe(_coefficients(beta_0, beta_off, beta_def), sigma)


def hierarchical(likelihood: Likelihood) -> None:
    """Partial pooling: each matchup's effect a multiplicative deviation from a league-wide one.

    Non-centred: beta_off[m, a] = exp(mu_off[a] + tau_off[a] * e_off[m, a]), e ~ N(0, 1).
    """
    mu_0 = numpyro.sample("mu_0", dist.Normal(0.0, 5.0))
    tau_0 = numpyro.sample("tau_0", dist.HalfNormal(1.0))
    mu_off = numpyro.sample("mu_off", dist.Normal(-4.0, 2.0).expand([A]).to_event(1))  # (8,)
    tau_off = numpyro.sample("tau_off", dist.HalfNormal(1.0).expand([A]).to_event(1))  # (8,)
    mu_def = numpyro.sample("mu_def", dist.Normal(-4.0, 2.0).expand([A]).to_event(1))  # (8,)
    tau_def = numpyro.sample("tau_def", dist.HalfNormal(1.0).expand([A]).to_event(1))  # (8,)
    e_0 = numpyro.sample("e_0", dist.Normal(0.0, 1.0).expand([M]).to_event(1))  # (36,)
    e_off = numpyro.sample("e_off", dist.Normal(0.0, 1.0).expand([M, A]).to_event(2))  # (36, 8)
    e_def = numpyro.sample("e_def", dist.Normal(0.0, 1.0).expand([M, A]).to_event(2))  # (36, 8)
    sigma = numpyro.sample("sigma", dist.HalfCauchy(2.5))
    beta_0 = numpyro.deterministic("beta_0", mu_0 + tau_0 * e_0)
    beta_off = numpyro.deterministic("beta_off", jnp.exp(mu_off + tau_off * e_off))
    beta_def = numpyro.deterministic("beta_def", jnp.exp(mu_def + tau_def * e_def))
    likelihood.observe(_coefficients(beta_0, beta_off, beta_def), sigma)


MODEL_FUNCTIONS: dict[str, Callable[[Likelihood], None]] = {
    "simplified": simplified,
    "matchup": matchup,
    "hierarchical": hierarchical,
}


def get_model(name: str) -> Callable[[Likelihood], None]:
    try:
        return MODEL_FUNCTIONS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; expected one of {', '.join(names.MODELS)}") from None


def make_likelihood(kind: str, stats: SuffStats | None = None, rows: Possessions | None = None) -> Likelihood:
    """The likelihood object of `kind` ('suffstats' or 'rows') from the matching data."""
    if kind == "suffstats":
        if stats is None:
            raise ValueError("the suffstats likelihood needs sufficient statistics")
        return SuffStatsLikelihood.from_stats(stats)
    if kind == "rows":
        if rows is None:
            raise ValueError("the rows likelihood needs the possessions in memory")
        return RowsLikelihood.from_possessions(rows)
    raise ValueError(f"unknown likelihood {kind!r}; expected 'suffstats' or 'rows'")
