"""Coordinates for the hierarchical model: a plug-in Gaussian view of each touched cell's data.

The hierarchical model's trouble on sparse data (issue 15) is a mix of geometries: a cell with
little data wants the non-centred form (e sampled, eta = mu + tau e), a data-rich cell the
centred one, and the population mean mu is pinned by the data-rich cells when tau is small.
`models.hierarchical` samples whitened coordinates instead: if cell (m, j)'s likelihood on the
link scale eta (beta_0 itself; log beta for the positive families) were Gaussian, with data
precision p[m, j] and location ehat[m, j], then

    mu_j | tau_j        ~ N(M_j, 1 / prec_j),  prec_j = 1/sd_j^2 + sum_m p_mj / (1 + p_mj tau_j^2)
    eta_mj | mu_j, tau_j ~ N((mu_j + a ehat_mj) / (1 + a), tau_j^2 / (1 + a)),  a = p_mj tau_j^2

and the sampled coordinates z_mu, z (their standardised versions) would be independent N(0, 1)
given tau. The map from (z_mu, z) to (mu, e) is an exact, triangular change of variables for
any p >= 0 and ehat: the posterior is the model's whatever numbers are used; good numbers only
make it rounder. p = 0 everywhere is the plain non-centred form.

The population scales get the same treatment against their prior: tau = sd F^-1(Phi(z_tau)),
F the N+(0, 1) distribution function, so z_tau ~ N(0, 1) gives exactly tau ~ N+(0, sd). Where
the data say little about tau (most populations of a sparse season) its posterior is close to
that prior and z_tau close to N(0, 1), which NUTS crosses in a few steps; on log tau the same
posterior has a long left tail (ESS 590-780 of 4,000 on the simulated season, against
1,055-1,119 with z_tau: benchmarks/experiments/hierarchical_geometry).

`Whitening.from_stats` takes the numbers from the sufficient statistics alone: per matchup a
Gauss-Newton fit of the touched columns on the link scale with a weak ridge toward the pooled
least-squares fit, whose precision with the ridge taken out gives each cell's marginal data
precision and location.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import erfinv, ndtr, ndtri

from lineup_numpyro import names
from lineup_numpyro.data.suffstats import SuffStats

M, P = names.N_MATCHUPS, names.N_FEATURES
EXP_LINK = np.arange(P) > 0  # beta_off, beta_def = exp(eta); beta_0 = eta
# Ridge of the per-matchup fits toward the pooled fit, on the link scale: only keeps a fit
# of a matchup with few possessions finite; its information is taken out again.
RIDGE_SD = np.array([0.25] + [1.0] * (P - 1))
SMALLEST_EFFECT = 0.005  # where a pooled effect <= 0 is placed on the log scale
# Columns whose tau about k cells see (_thinly_seen): 1 <= k < 5 non-centred, 5 <= k < 10
# non-centred where a cell's p < WEAK_CELL_PRECISION.
THINLY_SEEN = (1.0, 5.0, 10.0)
WEAK_CELL_PRECISION = 2.0
# Wall cells (_walled): in matchups of fewer than SPARSE_MATCHUP possessions, exp-link cells with
# a flat plug-in view (p < FLAT_VIEW) whose data bound beta below WALL_BETA.
SPARSE_MATCHUP = 50
FLAT_VIEW = 0.1
WALL_BETA = 0.2
WALL_PRECISION = 1.0
LOWEST_Z_TAU = -30.0  # tau = 6e-198 there; below, Phi(z) underflows and tau would be 0


def half_normal_from_standard(z: jnp.ndarray) -> jnp.ndarray:
    """tau = F^-1(Phi(z)), F the N+(0, 1) distribution function: z ~ N(0, 1) gives tau ~ N+(0, 1).

    Two branches keep full relative precision: sqrt(2) erfinv(Phi(z)) for z < 0 (tau ~ Phi(z)
    as z -> -inf), -Phi^-1(Phi(-z) / 2) for z >= 0 (tau ~ z as z -> inf).
    """
    negative = z < 0
    low = jnp.maximum(jnp.where(negative, z, -1.0), LOWEST_Z_TAU)
    high = jnp.where(negative, 1.0, z)
    return jnp.where(negative, jnp.sqrt(2.0) * erfinv(ndtr(low)), -ndtri(0.5 * ndtr(-high)))


@partial(jax.tree_util.register_dataclass, data_fields=["precision", "location"], meta_fields=[])
@dataclass(frozen=True)
class Whitening:
    """Per cell (M, 17): data precision and location on the link scale (0 / anything: untouched).

    A JAX pytree, so that compiled programs take it as an argument (models.data_arguments)."""

    precision: np.ndarray
    location: np.ndarray

    @classmethod
    def none(cls) -> Whitening:
        """No data information: the plain non-centred form."""
        return cls(np.zeros((M, P)), np.zeros((M, P)))

    @classmethod
    def from_stats(cls, stats: SuffStats, tau_scale: float = 1.0) -> Whitening:
        """Each touched cell's plug-in view (`plug_in_view`), with the cells of `_thinly_seen`
        columns made non-centred; `tau_scale` is the prior scale of tau (Priors.tau)."""
        precision, location = plug_in_view(stats)
        precision, location = _walled(stats, _thinly_seen(precision, tau_scale), location)
        return cls(precision, location)

    def family(self, family: str, flat_index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(precision, location) of the cells `flat_index` (cells.Cells.index(family)) of `family`."""
        return self.precision.reshape(-1)[flat_index], self.location.reshape(-1)[flat_index]


def plug_in_view(stats: SuffStats) -> tuple[np.ndarray, np.ndarray]:
    """(M, 17) data precision and location of each touched cell on the link scale (0 / 0 where
    untouched), from a per-matchup Gauss-Newton fit."""
    xtx, xty = np.asarray(stats.xtx, dtype=np.float64), np.asarray(stats.xty, dtype=np.float64)
    pooled, s2 = pooled_fit(stats)
    start = np.concatenate([[pooled[0]], np.log(np.maximum(pooled[1:], SMALLEST_EFFECT))])
    precision, location = np.zeros((M, P)), np.zeros((M, P))
    for m in range(M):
        touched = np.diag(xtx[m]) > 0
        if touched.any():
            precision[m, touched], location[m, touched] = _cell_approximation(
                xtx[m][np.ix_(touched, touched)] / s2,
                xty[m, touched] / s2,
                EXP_LINK[touched],
                start[touched],
                RIDGE_SD[touched],
            )
    return precision, location


def _thinly_seen(precision: np.ndarray, tau_scale: float) -> np.ndarray:
    """Cells of exp-link columns whose tau only a few cells see get p = 0 (non-centred).

    k_j = sum_m (a / (1 + a))^2, a = p_mj tau_scale^2, counts about how many cells of column j
    inform tau_j (a cell with a >> 1 counts one). Where 1 <= k_j < 5, centring those few cells
    ties tau_j to them, and its posterior, barely informed, gets a long left tail that NUTS
    crosses slowly (min ESS_bulk 717-982 of 4,000 on the season of a three-season file); the
    whole column non-centred mixes better. Where 5 <= k_j < 10, only the column's weakly
    informed cells (p < 2) go non-centred. Columns that no cell sees (k_j < 1, the sparse real
    samples) and well-seen ones keep their view. Any p is exact (the map is a change of
    variables), so this only picks coordinates
    (benchmarks/experiments/hierarchical_geometry, rule `band:1:5:10:2`)."""
    a = precision * tau_scale**2
    k = ((a / (1.0 + a)) ** 2).sum(axis=0)
    few = EXP_LINK & (k >= THINLY_SEEN[0]) & (k < THINLY_SEEN[1])
    some = EXP_LINK & (k >= THINLY_SEEN[1]) & (k < THINLY_SEEN[2])
    out = precision.copy()
    out[:, few] = 0.0
    out[(out < WEAK_CELL_PRECISION) & some[None, :]] = 0.0
    return out


def _walled(stats: SuffStats, precision: np.ndarray, location: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exp-link cells of sparse matchups viewed at the wall their data put above beta.

    With a few possessions, a cell whose design column is large (c = X'X[j, j] / s2) bounds
    beta from above near beta_w = 1 / sqrt(c), where its penalty c beta^2 / 2 reaches 1/2, but
    its plug-in view, taken at a tiny beta, sees only the flat side (p ~ 0). Non-centred, its
    wall in e steepens with tau (d log beta / de = tau), and NUTS hit it when tau wandered into
    its upper tail: 1-3 divergent transitions in 4,000 on some seeds of stratified_sample_10k at
    target acceptance 0.95-0.98 (matchups of 1-24 possessions). Viewed at the wall (p =
    WALL_PRECISION, ehat = log beta_w), 0 in 10 seeds at 0.97. In data-rich matchups the same
    view costs the populations' taus ESS (130 cells of the three-season file: min ESS_bulk
    276-564), so only matchups of fewer than SPARSE_MATCHUP possessions get it."""
    _, s2 = pooled_fit(stats)
    c = np.einsum("mjj->mj", np.asarray(stats.xtx, dtype=np.float64)) / s2
    beta_w = 1.0 / np.sqrt(np.where(c > 0, c, 1.0))
    sparse = (np.asarray(stats.n) > 0) & (np.asarray(stats.n) < SPARSE_MATCHUP)
    wall = EXP_LINK & sparse[:, None] & (c > 0) & (precision < FLAT_VIEW) & (beta_w < WALL_BETA)
    return np.where(wall, WALL_PRECISION, precision), np.where(wall, np.log(beta_w), location)


def pooled_fit(stats: SuffStats) -> tuple[np.ndarray, float]:
    """Least squares of all matchups together (a whisper of ridge for empty columns) and its
    residual variance."""
    xtx, xty = np.asarray(stats.xtx).sum(0), np.asarray(stats.xty).sum(0)
    ridge = 1e-6 * np.trace(xtx) / P + 1e-12
    b = np.linalg.solve(xtx + ridge * np.eye(P), xty)
    n = max(float(np.sum(stats.n)), 1.0)
    s2 = (float(np.sum(stats.yty)) - 2 * b @ xty + b @ xtx @ b) / n
    return b, max(s2, 1e-6)


def _cell_approximation(
    a: np.ndarray, g: np.ndarray, exp_link: np.ndarray, start: np.ndarray, ridge_sd: np.ndarray, iterations: int = 200
) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian approximation on the link scale of one matchup's likelihood
    exp(-b'Ab/2 + b'g), b = link(eta): each cell's marginal precision and location."""

    def beta(eta: np.ndarray) -> np.ndarray:
        return np.where(exp_link, np.exp(np.minimum(eta, 30.0)), eta)

    def objective(eta: np.ndarray) -> float:
        b = beta(eta)
        return 0.5 * b @ a @ b - b @ g + 0.5 * np.sum(((eta - start) / ridge_sd) ** 2)

    eta, f = start.copy(), objective(start)
    for _ in range(iterations):  # damped Gauss-Newton
        b = beta(eta)
        jac = np.where(exp_link, b, 1.0)
        grad = jac * (a @ b - g) + (eta - start) / ridge_sd**2
        hess = jac[:, None] * a * jac[None, :] + np.diag(ridge_sd**-2.0)
        step, t = np.linalg.solve(hess, grad), 1.0
        while True:
            new = eta - t * step
            f_new = objective(new)
            if f_new <= f or t < 1e-8:
                break
            t *= 0.5
        done = f - f_new < 1e-12 * (1 + abs(f))
        if f_new <= f:
            eta, f = new, f_new
        if done:
            break
    jac = np.where(exp_link, beta(eta), 1.0)
    cov = np.linalg.inv(jac[:, None] * a * jac[None, :] + np.diag(ridge_sd**-2.0))
    marginal = 1.0 / np.diag(cov)  # the fit's marginal precision; remove the ridge's share
    precision = np.maximum(marginal - ridge_sd**-2.0, 0.0)
    informed = precision > 1e-8
    location = np.where(informed, (eta * marginal - start * ridge_sd**-2.0) / np.where(informed, precision, 1.0), eta)
    return np.where(informed, precision, 0.0), location
