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
from functools import lru_cache, partial
from typing import NamedTuple

import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from scipy.special import ndtri

from lineup_numpyro import names
from lineup_numpyro.config import Priors
from lineup_numpyro.data.possessions import Possessions
from lineup_numpyro.data.suffstats import SuffStats
from lineup_numpyro.models.cells import Cells
from lineup_numpyro.models.whitening import Whitening, half_normal_from_standard, plug_in_view, pooled_fit

M, A, P = names.N_MATCHUPS, names.N_ARCHETYPES, names.N_FEATURES
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

    def observations(self) -> jnp.ndarray:
        """How many possessions the statistics hold (at least 1)."""
        return jnp.maximum(jnp.sum(self.n), 1.0)

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

    def observations(self) -> int:
        """How many possessions (at least 1)."""
        return max(int(self.y.shape[0]), 1)

    def mean(self, b: jnp.ndarray) -> jnp.ndarray:
        """mu_i = x_i . b_{m_i}, shape (N,)."""
        if b.ndim == 1:
            return self.x @ b
        return jnp.sum(self.x * b[self.matchup], axis=-1)

    def observe(self, b: jnp.ndarray, sigma: jnp.ndarray) -> None:
        numpyro.sample("y", dist.Normal(self.mean(b), sigma), obs=self.y)


Likelihood = SuffStatsLikelihood | RowsLikelihood


def predict(coef: np.ndarray, matchup: np.ndarray, x: np.ndarray) -> np.ndarray:
    """The linear predictor, E[y_i] = x_i . b[m_i], for rows x (n, 17) = [1, z_off, -z_def] in
    matchups `matchup` (n,): coef (S, M, 17) gives (S, n); (M, 17) gives (n,); a pooled (17,) or
    (S, 17) serves every matchup. The one place validation, valuation, simulation and the report
    compute it (RowsLikelihood.mean is its JAX twin inside the model, tested equal)."""
    coef, x, matchup = np.asarray(coef), np.asarray(x, dtype=np.float64), np.asarray(matchup)
    if coef.ndim == 1 or (coef.ndim == 2 and coef.shape[0] != M):  # pooled: (17,) or (S, 17)
        return coef @ x.T
    out = np.empty((*coef.shape[:-2], len(x)))
    for m in np.unique(matchup):  # one product per matchup: no (S, n, 17) temporary
        mine = matchup == m
        out[..., mine] = coef[..., m, :] @ x[mine].T
    return out


DEFAULT_PRIORS = Priors()  # ../shared/MODELS.md's; a run's own are config.RunConfig.priors

# Width of each coefficient family's central 90% prior interval, on the coefficient scale: the
# yardstick for how far the data moved a coefficient (outputs.prior_width_ratios). Normal and
# half-normal priors have closed forms; the hierarchical model's beta = exp(mu + tau e) (whose
# prior variance is infinite) is integrated by Monte Carlo once per set of priors, with a fixed seed.


def prior_width(model: str, family: str, priors: Priors = DEFAULT_PRIORS) -> float:
    """q95 - q05 of the marginal prior of one coefficient of `family` in `model` under `priors`."""

    if model in ("simplified", "matchup"):
        if family == "beta_0":  # N(0, s): s (z_.95 - z_.05)
            return priors.beta_0 * float(ndtri(0.95) - ndtri(0.05))
        # N+(0, s): its p-quantile is s z_{(1+p)/2}
        return priors.beta * float(ndtri(0.975) - ndtri(0.525))
    if model == "hierarchical":
        return _hierarchical_prior_widths(priors)[family]
    raise ValueError(f"unknown model {model!r}; expected one of {', '.join(names.MODELS)}")


@lru_cache(maxsize=16)
def _hierarchical_prior_widths(priors: Priors) -> dict[str, float]:
    rng = np.random.default_rng(20230)
    n = 400_000
    tau = np.abs(rng.normal(0.0, priors.tau, n))
    beta_0 = rng.normal(0.0, priors.beta_0, n) + tau * rng.normal(size=n)
    beta = np.exp(rng.normal(priors.mu_loc, priors.mu_sd, n) + tau * rng.normal(size=n))
    widths = {}
    for family, draws in (("beta_0", beta_0), ("beta_off", beta), ("beta_def", beta)):
        lo, hi = np.quantile(draws, [0.05, 0.95])
        widths[family] = float(hi - lo)
    return widths


def _coefficients(beta_0: jnp.ndarray, beta_off: jnp.ndarray, beta_def: jnp.ndarray) -> jnp.ndarray:
    """b = [beta_0, beta_off, beta_def] along the last axis: (17,) or (M, 17)."""
    return jnp.concatenate([beta_0[..., None], beta_off, beta_def], axis=-1)


def _touched_coefficients(
    cells: Cells, beta_0: jnp.ndarray, beta_off: jnp.ndarray, beta_def: jnp.ndarray
) -> jnp.ndarray:
    """The (M, 17) coefficient matrix with the touched cells' values and 0 elsewhere; a cell the
    data never touch has a zero design column, so any value there gives the same likelihood."""
    b = jnp.zeros(M * P)
    for family, values in (("beta_0", beta_0), ("beta_off", beta_off), ("beta_def", beta_def)):
        b = b.at[cells.index(family)].set(values, indices_are_sorted=True, unique_indices=True)
    return b.reshape(M, P)


def _touched(name: str, distribution: dist.Distribution, cells: Cells, family: str) -> jnp.ndarray:
    """One sample site over the touched cells of `family` (empty when there are none)."""
    k = cells.count(family)
    if k == 0:
        return jnp.zeros(0)
    return numpyro.sample(name, distribution.expand([k]).to_event(1))


def simplified(likelihood: Likelihood, cells: Cells | None = None, priors: Priors = DEFAULT_PRIORS) -> None:
    """Pooled model: one coefficient vector for every matchup (18 parameters)."""
    beta_0 = numpyro.sample("beta_0", dist.Normal(0.0, priors.beta_0))
    beta_off = numpyro.sample("beta_off", dist.HalfNormal(priors.beta).expand([A]).to_event(1))  # (8,)
    beta_def = numpyro.sample("beta_def", dist.HalfNormal(priors.beta).expand([A]).to_event(1))  # (8,)
    sigma = numpyro.sample("sigma", dist.HalfCauchy(priors.sigma))
    likelihood.observe(_coefficients(beta_0, beta_off, beta_def), sigma)


def matchup(likelihood: Likelihood, cells: Cells, priors: Priors = DEFAULT_PRIORS) -> None:
    """Matchup-specific model: independent coefficients per matchup (36 x 17 + 1 = 613).

    Only the cells the data touch are sampled (sites `*_data`, one value per touched cell in
    row-major (matchup, column) order); the others are exactly their prior and are drawn by
    `complete`.
    """
    beta_0 = _touched("beta_0_data", dist.Normal(0.0, priors.beta_0), cells, "beta_0")
    beta_off = _touched("beta_off_data", dist.HalfNormal(priors.beta), cells, "beta_off")
    beta_def = _touched("beta_def_data", dist.HalfNormal(priors.beta), cells, "beta_def")
    sigma = numpyro.sample("sigma", dist.HalfCauchy(priors.sigma))
    likelihood.observe(_touched_coefficients(cells, beta_0, beta_off, beta_def), sigma)


def hierarchical(
    likelihood: Likelihood, cells: Cells, whitening: Whitening | None = None, priors: Priors = DEFAULT_PRIORS
) -> None:
    """Partial pooling: each matchup's effect a multiplicative deviation from a league-wide one,
    beta_off[m, a] = exp(mu_off[a] + tau_off[a] * e_off[m, a]), e ~ N(0, 1).

    NUTS moves whitened coordinates (`z_tau_*`, `z_mu_*`, `z_*_data`; whitening.py): an exact
    change of variables to tau, mu and the touched cells' e, which are recorded under their own
    names. With `whitening` None the coordinates are the plain non-centred form (tau sampled
    on the log scale, p = 0). Untouched cells' e are N(0, 1) draws in `complete`.

    The 17 populations (beta_0's, then one per archetype of beta_off and of beta_def: the
    columns of b) are computed as one vector, and the touched cells as one, so that a gradient
    is a few dozen array operations whatever the number of cells (what a NUTS step costs on a
    CPU: benchmarks/experiments/step_cost).
    """
    w = whitening if whitening is not None else Whitening.none()
    tau = _scales(priors.tau, whitened=whitening is not None)  # (17,): tau_0, tau_off, tau_def
    sigma = numpyro.sample("sigma", dist.HalfCauchy(priors.sigma))
    index = np.concatenate([cells.index(family) for family in names.FAMILY_SHORT])  # touched cells, flat (M, 17)
    column = index % P  # each cell's population: its column of b
    loc = np.where(np.arange(P) == 0, 0.0, priors.mu_loc)  # mu_0 ~ N(0, beta_0); the others' mu ~ N(mu_loc, mu_sd)
    sd = np.where(np.arange(P) == 0, priors.beta_0, priors.mu_sd)
    z_mu = jnp.concatenate(
        [
            numpyro.sample("z_mu_0", dist.Normal(0.0, 1.0))[None],
            numpyro.sample("z_mu_off", dist.Normal(0.0, 1.0).expand([A]).to_event(1)),
            numpyro.sample("z_mu_def", dist.Normal(0.0, 1.0).expand([A]).to_event(1)),
        ]
    )
    z = jnp.concatenate(
        [_touched(f"z_{short}_data", dist.Normal(0.0, 1.0), cells, f) for f, short in names.FAMILY_SHORT.items()]
    )
    p = jnp.reshape(w.precision, (-1,))[index]
    ehat = jnp.reshape(w.location, (-1,))[index]
    mu, e = _unwhiten(tau, z_mu, z, p, ehat, column, loc, sd)
    eta = mu[column] + tau[column] * e
    counts = np.cumsum([cells.count(family) for family in names.FAMILY_SHORT])[:-1]
    for short, e_family in zip(names.FAMILY_SHORT.values(), jnp.split(e, counts), strict=True):
        numpyro.deterministic(f"e_{short}_data", e_family)
    numpyro.deterministic("mu_0", mu[0])
    numpyro.deterministic("mu_off", mu[names.FAMILY_COLUMNS["beta_off"]])
    numpyro.deterministic("mu_def", mu[names.FAMILY_COLUMNS["beta_def"]])
    exp_link = column > 0  # beta_off, beta_def = exp(eta); beta_0 = eta
    beta = jnp.where(exp_link, jnp.exp(jnp.where(exp_link, eta, 0.0)), eta)  # no exp of beta_0's eta
    likelihood.observe(jnp.zeros(M * P).at[index].set(beta, unique_indices=True).reshape(M, P), sigma)


def _scales(sd: float, whitened: bool) -> jnp.ndarray:
    """The populations' scales tau ~ N+(0, sd), (17,) in the columns' order: sampled as they
    stand (`tau_0`, `tau_off`, `tau_def`), or, whitened, through z_tau ~ N(0, 1) (`z_tau_*`)
    with tau recorded as deterministics under their own names."""
    shapes = {"tau_0": (), "tau_off": (A,), "tau_def": (A,)}
    if not whitened:
        draws = [numpyro.sample(name, _iid(dist.HalfNormal(sd), shape)) for name, shape in shapes.items()]
        return jnp.concatenate([jnp.reshape(x, (-1,)) for x in draws])
    standard = [numpyro.sample(f"z_{name}", _iid(dist.Normal(0.0, 1.0), shape)) for name, shape in shapes.items()]
    z = jnp.concatenate([jnp.reshape(x, (-1,)) for x in standard])
    tau = sd * half_normal_from_standard(z)
    numpyro.deterministic("tau_0", tau[0])
    numpyro.deterministic("tau_off", tau[names.FAMILY_COLUMNS["beta_off"]])
    numpyro.deterministic("tau_def", tau[names.FAMILY_COLUMNS["beta_def"]])
    return tau


def _iid(distribution: dist.Distribution, shape: tuple[int, ...]) -> dist.Distribution:
    return distribution.expand(list(shape)).to_event(len(shape)) if shape else distribution


def _unwhiten(
    tau: jnp.ndarray,
    z_mu: jnp.ndarray,
    z: jnp.ndarray,
    p: jnp.ndarray,
    ehat: jnp.ndarray,
    column: np.ndarray,
    loc: np.ndarray,
    sd: np.ndarray,
) -> tuple[jnp.ndarray, jnp.ndarray]:
    """mu (17,) and the touched cells' e from the whitened coordinates z_mu (17,), z (cells,),
    given tau; adds their density: mu ~ N(loc, sd), e ~ N(0, 1), and the log Jacobian."""
    t = tau[column]
    a = p * t**2  # data precision x population variance, per cell
    prec = 1.0 / sd**2 + jnp.zeros(P).at[column].add(p / (1.0 + a))  # of mu given tau, cells integrated
    mean = (loc / sd**2 + jnp.zeros(P).at[column].add(p * ehat / (1.0 + a))) / prec
    mu = mean + z_mu / jnp.sqrt(prec)
    e = p * t * (ehat - mu[column]) / (1.0 + a) + z / jnp.sqrt(1.0 + a)  # = (eta - mu) / tau, without cancellation
    log_jacobian = -0.5 * jnp.sum(jnp.log(prec)) - 0.5 * jnp.sum(jnp.log1p(a))
    # the sites were drawn as N(0, 1): swap that density for the model's
    numpyro.factor(
        "whitening",
        jnp.sum(dist.Normal(loc, sd).log_prob(mu))
        + jnp.sum(dist.Normal(0.0, 1.0).log_prob(e))
        + log_jacobian
        - jnp.sum(dist.Normal(0.0, 1.0).log_prob(z_mu))
        - jnp.sum(dist.Normal(0.0, 1.0).log_prob(z)),
    )
    return mu, e


MODEL_FUNCTIONS: dict[str, Callable[..., None]] = {
    "simplified": simplified,
    "matchup": matchup,
    "hierarchical": hierarchical,
}


def get_model(
    name: str, cells: Cells | None = None, whitening: Whitening | None = None, priors: Priors = DEFAULT_PRIORS
) -> Callable[[Likelihood], None]:
    """The NumPyro model `name` under `priors` for data whose touched cells are `cells` (all cells
    if None); the hierarchical model in `whitening`'s coordinates (None: plain non-centred)."""
    try:
        fn = MODEL_FUNCTIONS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; expected one of {', '.join(names.MODELS)}") from None
    cells = cells if cells is not None else Cells.everywhere()
    if name == "hierarchical":
        return partial(fn, cells=cells, whitening=whitening, priors=priors)
    return partial(fn, cells=cells, priors=priors)


# A model's keyword arguments that hold arrays computed from the data (not its shapes):
# compiled programs take them as arguments, so that one program serves any data set whose
# touched cells are the same, and JAX's persistent cache finds it again.
DATA_KEYWORDS = ("whitening",)


def data_arguments(model: Callable[[Likelihood], None]) -> tuple[Callable[..., None], dict]:
    """`model` without its data arrays, and those arrays as keyword arguments: calling the
    first with the likelihood and the second is calling `model` with the likelihood."""
    if not isinstance(model, partial):
        return model, {}
    data = {k: v for k, v in model.keywords.items() if k in DATA_KEYWORDS and v is not None}
    if not data:
        return model, {}
    rest = {k: v for k, v in model.keywords.items() if k not in data}
    return partial(model.func, *model.args, **rest), data


# Per model and coefficient family: the site NUTS samples over the touched cells, and what
# the untouched ones are exactly (drawn by `complete`: the matchup model's prior, the
# hierarchical model's e ~ N(0, 1)), as draw(rng, shape, priors).
SAMPLED_CELLS = {
    "matchup": {
        "beta_0": ("beta_0_data", lambda rng, shape, priors: rng.normal(0.0, priors.beta_0, shape)),
        "beta_off": ("beta_off_data", lambda rng, shape, priors: np.abs(rng.normal(0.0, priors.beta, shape))),
        "beta_def": ("beta_def_data", lambda rng, shape, priors: np.abs(rng.normal(0.0, priors.beta, shape))),
    },
    "hierarchical": {
        "beta_0": ("e_0_data", lambda rng, shape, priors: rng.standard_normal(shape)),
        "beta_off": ("e_off_data", lambda rng, shape, priors: rng.standard_normal(shape)),
        "beta_def": ("e_def_data", lambda rng, shape, priors: rng.standard_normal(shape)),
    },
}


def _fill(
    cells: Cells, family: str, touched: np.ndarray | None, draw_rest, rng: np.random.Generator, lead: tuple[int, ...]
) -> np.ndarray:
    """Full (*lead, M) or (*lead, M, A) array of a family: the sampled values at touched cells,
    `draw_rest(rng, shape)` elsewhere."""
    mask = cells.family_mask(family)
    out = draw_rest(rng, (*lead, mask.size))
    if touched is not None:
        out[..., mask] = np.asarray(touched)
    return out if family == "beta_0" else out.reshape(*lead, M, A)


class Start(NamedTuple):
    """Where NUTS's chains start and its first inverse mass matrix (diagonal, flat in NumPyro's
    order of the sample sites: by name), on the unconstrained scale."""

    inits: dict[str, np.ndarray]  # site -> (chains, ...)
    inverse_mass: np.ndarray


# A positive coefficient's prior on NumPyro's unconstrained scale: log |Z| for Z ~ N(0, s) has
# mean log s - (Euler's gamma + log 2) / 2 and variance pi^2 / 8, whatever s.
LOG_HALF_NORMAL_VAR = float(np.pi**2 / 8)
LOG_HALF_NORMAL_SHIFT = float((np.euler_gamma + np.log(2.0)) / 2.0)


def plug_in_start(stats: SuffStats, cells: Cells, priors: Priors, chains: int, seed: int) -> Start:
    """The matchup model's start from the data alone (`train --init plugin`): each touched cell's
    plug-in view (`whitening.plug_in_view`: a per-matchup fit on the link scale, which is NumPyro's
    unconstrained scale here: beta_0 itself, log beta) gives its data precision p and location,
    combined with a Gaussian view of the prior there (mean m, precision q) as a posterior would
    be: location (p ehat + q m) / (p + q), variance 1 / (p + q). Each chain starts at that
    location plus N(0, 1) noise at the cell's scale, and the variances are NUTS's first inverse
    mass; sigma starts at the pooled residual sd, with variance 1 / (2 N). No mode search and no
    Hessian: on 10M possessions this removes the warm-ups that ran 3.5x longer
    (benchmarks/experiments/plugin_start). A cell the data barely see starts at its prior."""
    precision, location = plug_in_view(stats)
    _, s2 = pooled_fit(stats)
    loc, var = {}, {}
    for family, prior_mean, prior_var in (
        ("beta_0", 0.0, priors.beta_0**2),
        ("beta_off", np.log(priors.beta) - LOG_HALF_NORMAL_SHIFT, LOG_HALF_NORMAL_VAR),
        ("beta_def", np.log(priors.beta) - LOG_HALF_NORMAL_SHIFT, LOG_HALF_NORMAL_VAR),
    ):
        index = cells.index(family)
        p, ehat = precision.reshape(-1)[index], location.reshape(-1)[index]
        q = 1.0 / prior_var
        loc[f"{family}_data"] = (p * ehat + q * prior_mean) / (p + q)  # p ehat stays finite as p -> 0
        var[f"{family}_data"] = 1.0 / (p + q)
    loc["sigma"], var["sigma"] = np.asarray(0.5 * np.log(s2)), np.asarray(1.0 / (2.0 * max(float(stats.total), 1.0)))
    rng = np.random.default_rng([seed, 0x706C7567])
    inits = {k: loc[k] + np.sqrt(var[k]) * rng.normal(size=(chains, *np.shape(loc[k]))) for k in sorted(loc)}
    return Start(inits, np.concatenate([np.atleast_1d(var[k]) for k in sorted(var)]))


def start_for(init: str, stats: SuffStats, cells: Cells, priors: Priors, chains: int, seed: int) -> Start | None:
    """The start NUTS needs from the data for `init` (SamplerConfig.init): 'plugin' has one
    (`plug_in_start`); the others start at random, or find theirs in the sampler (map, laplace)."""
    return plug_in_start(stats, cells, priors, chains, seed) if init == "plugin" else None


def complete(
    model: str, samples: dict[str, np.ndarray], cells: Cells, seed: int = 0, priors: Priors = DEFAULT_PRIORS
) -> dict[str, np.ndarray]:
    """Every parameter of `model` under its Stan name, shaped (chains, draws, ...), from NUTS's
    draws of the touched cells plus exact draws for the rest (Stan's generated quantities):
    matchup model, from `priors`; hierarchical model, e ~ N(0, 1) given each draw of mu, tau.
    The extra draws depend only on `seed` and the shapes, so chunked and resumed runs agree."""
    if model == "simplified":
        return dict(samples)
    if model not in SAMPLED_CELLS:
        raise ValueError(f"unknown model {model!r}; expected one of {', '.join(names.MODELS)}")
    rng = np.random.default_rng([seed, 0x6C696E65])
    lead = np.shape(samples["sigma"])[:2]
    full = {
        family: _fill(cells, family, samples.get(site), partial(draw_rest, priors=priors), rng, lead)
        for family, (site, draw_rest) in SAMPLED_CELLS[model].items()
    }
    if model == "matchup":
        return {**full, "sigma": np.asarray(samples["sigma"])}
    out = {k: np.asarray(samples[k]) for k in ("mu_0", "tau_0", "mu_off", "tau_off", "mu_def", "tau_def")}
    out.update(e_0=full["beta_0"], e_off=full["beta_off"], e_def=full["beta_def"], sigma=np.asarray(samples["sigma"]))
    out["beta_0"] = out["mu_0"][..., None] + out["tau_0"][..., None] * out["e_0"]
    out["beta_off"] = np.exp(out["mu_off"][..., None, :] + out["tau_off"][..., None, :] * out["e_off"])
    out["beta_def"] = np.exp(out["mu_def"][..., None, :] + out["tau_def"][..., None, :] * out["e_def"])
    return out


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
