"""The hierarchical model's whitened coordinates are an exact change of variables (issue 15)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numpyro.infer.util import constrain_fn, initialize_model, potential_energy
from scipy import special

from lineup_numpyro.data.suffstats import SuffStats
from lineup_numpyro.models import model as models
from lineup_numpyro.models.cells import Cells
from lineup_numpyro.models.model import SuffStatsLikelihood, get_model
from lineup_numpyro.models.simulate import simulate_season
from lineup_numpyro.models.whitening import (
    WALL_PRECISION,
    Whitening,
    _thinly_seen,
    _walled,
    half_normal_from_standard,
    plug_in_view,
    pooled_fit,
)

PRIORS = models.DEFAULT_PRIORS
FAMILIES = (("0", 0.0, PRIORS.beta_0), ("off", PRIORS.mu_loc, PRIORS.mu_sd), ("def", PRIORS.mu_loc, PRIORS.mu_sd))


@pytest.fixture(scope="module")
def sparse():
    """A season with empty and thin matchups, its cells and its whitening."""
    data, _ = simulate_season(6_000, model="hierarchical", seed=3, empty_matchups=3)
    stats = SuffStats.from_possessions(data)
    return stats, Cells.from_stats(stats), Whitening.from_stats(stats)


def test_whitening_is_informative_only_where_the_data_touch(sparse):
    stats, cells, w = sparse
    touched = np.einsum("mjj->mj", stats.xtx) > 0
    precision, location = plug_in_view(stats)
    assert np.all(w.precision[~touched] == 0) and np.all(precision[~touched] == 0)
    assert np.all(w.precision >= 0) and np.all(np.isfinite(w.location))
    assert (precision[touched] > 0).mean() > 0.9
    walled_p, walled_loc = _walled(stats, _thinly_seen(precision, 1.0), location)
    np.testing.assert_array_equal(w.location, walled_loc)
    np.testing.assert_array_equal(w.precision, walled_p)
    # data-rich intercepts: precision about n / residual variance (beta_0 is on its own scale)
    rich = stats.n > 400
    ratio = w.precision[rich, 0] / (stats.n[rich] / np.var([0.0] * 89 + [1.0] * 7 + [2.0] * 3 + [3.0] * 2))
    assert np.all((ratio > 0.2) & (ratio < 5)), ratio


def test_columns_whose_tau_few_cells_see_go_non_centred():
    """k_j = sum_m (a/(1+a))^2 with a = p tau_scale^2 counts the cells that see tau_j."""
    p = np.zeros((36, 17))
    p[:3, 0] = 100.0  # the intercept column is never changed
    p[:3, 1] = 100.0  # k ~ 3: a few cells see tau -> the whole column non-centred
    p[:7, 2] = 100.0  # k ~ 7: only its weak cells (p < 2) go non-centred
    p[7:10, 2] = 1.0
    p[:20, 3] = 100.0  # k ~ 20: well seen, kept
    p[:20, 4] = 0.5  # k = 20 x 1/9 ~ 2.2: few see it (weak cells count little) -> non-centred
    p[:3, 5] = 0.1  # k < 1: no cell sees tau -> kept
    out = _thinly_seen(p, tau_scale=1.0)
    assert np.array_equal(out[:, 0], p[:, 0])
    assert not out[:, 1].any() and not out[:, 4].any()
    assert np.array_equal(out[:7, 2], p[:7, 2]) and not out[7:, 2].any()
    assert np.array_equal(out[:, [3, 5]], p[:, [3, 5]])
    # tau's prior scale enters a = p tau^2: at scale 0.1, column 1 is no longer seen (k < 1)
    assert np.array_equal(_thinly_seen(p, tau_scale=0.1)[:, 1], p[:, 1])


def test_sparse_matchups_cells_are_viewed_at_the_wall_their_data_put_above_beta(sparse):
    """Ten possessions with archetype 0 of the offence at skill 5.5 and outcome 0 bound
    beta_off[m, 0] from above (its plug-in view at beta ~ 0 is flat); in a data-rich matchup the
    same cell keeps its view."""
    stats, _, _ = sparse
    xtx, xty, yty, n = stats.xtx.copy(), stats.xty.copy(), stats.yty.copy(), stats.n.copy()
    sparse_m, rich_m = int(np.flatnonzero(stats.n == 0)[0]), int(np.argmax(stats.n))
    xtx[sparse_m] = 0.0
    xtx[sparse_m][np.ix_([0, 1], [0, 1])] = [[10.0, 55.0], [55.0, 302.5]]
    xty[sparse_m], yty[sparse_m], n[sparse_m] = 0.0, 0.0, 10
    edited = SuffStats(n, xtx, xty, yty, stats.nonzero)
    precision, location = plug_in_view(edited)
    assert precision[sparse_m, 1] < 0.1  # the flat side
    p, loc = _walled(edited, precision, location)
    _, s2 = pooled_fit(edited)
    assert p[sparse_m, 1] == WALL_PRECISION
    np.testing.assert_allclose(loc[sparse_m, 1], np.log(np.sqrt(s2 / 302.5)))
    assert p[sparse_m, 0] == precision[sparse_m, 0]  # the intercept has no wall
    np.testing.assert_array_equal(p[rich_m], precision[rich_m])
    w = Whitening.from_stats(edited)
    assert w.precision[sparse_m, 1] == WALL_PRECISION


def _nc_coordinates(z: dict, constrained: dict) -> dict:
    """The plain non-centred coordinates of the same (tau, mu, e, sigma): log tau, and mu, e
    as the p = 0 whitening has them."""
    out = {k: v for k, v in z.items() if not k.startswith("z_tau_")}
    for short, loc, sd in FAMILIES:
        out[f"tau_{short}"] = jnp.log(constrained[f"tau_{short}"])
        out[f"z_mu_{short}"] = (constrained[f"mu_{short}"] - loc) / sd
        out[f"z_{short}_data"] = constrained[f"e_{short}_data"]
    return out


def _plain_name(key: str) -> str:
    return key[2:] if key.startswith("z_tau_") else key


def test_whitened_density_is_the_model_density_times_the_jacobian(sparse):
    """log p_w(z) = log p_nc(T(z)) + log |det dT/dz|, with the Jacobian of the map T from the
    whitened to the non-centred coordinates computed by JAX (not by the formula in the model)."""
    stats, cells, w = sparse
    lik = SuffStatsLikelihood.from_stats(stats)
    whitened, plain = get_model("hierarchical", cells, w), get_model("hierarchical", cells, None)
    info = initialize_model(jax.random.PRNGKey(0), whitened, model_args=(lik,))
    keys = sorted(k for k in info.param_info.z if k.startswith("z_"))
    rng = np.random.default_rng(1)
    for _ in range(5):
        z = {k: jnp.asarray(rng.normal(0.0, 1.0, np.shape(v))) for k, v in info.param_info.z.items()}

        def mapped(flat, z=z):
            parts, i = {}, 0
            for k in keys:
                size = int(np.size(z[k]))
                parts[k] = flat[i : i + size].reshape(np.shape(z[k]))
                i += size
            zz = {**z, **parts}
            nc = _nc_coordinates(zz, constrain_fn(whitened, (lik,), {}, zz, return_deterministic=True))
            return jnp.concatenate([jnp.ravel(nc[_plain_name(k)]) for k in keys])

        flat = jnp.concatenate([jnp.ravel(z[k]) for k in keys])
        _, logdet = jnp.linalg.slogdet(jax.jacfwd(mapped)(flat))
        z_nc = _nc_coordinates(z, constrain_fn(whitened, (lik,), {}, z, return_deterministic=True))
        lp_w = -float(potential_energy(whitened, (lik,), {}, z))
        lp_nc = -float(potential_energy(plain, (lik,), {}, z_nc))
        assert np.isfinite(lp_w)
        np.testing.assert_allclose(lp_w, lp_nc + float(logdet), rtol=1e-10, atol=1e-8)


def test_population_scales_are_half_normal_through_a_standard_normal():
    """tau = F^-1(Phi(z)) inverts F(tau) = Phi(z) to full relative precision, tails included, so
    z ~ N(0, 1) gives tau ~ N+(0, 1) exactly."""
    z = np.concatenate([np.linspace(-29.0, 0.0, 300, endpoint=False), np.linspace(0.0, 8.0, 100)])
    tau = np.asarray(half_normal_from_standard(jnp.asarray(z)))
    assert np.all(np.diff(tau) > 0) and tau[0] > 0
    low, high = z < 0, z >= 0
    np.testing.assert_allclose(special.erf(tau[low] / np.sqrt(2)), special.ndtr(z[low]), rtol=1e-12)
    np.testing.assert_allclose(special.erfc(tau[high] / np.sqrt(2)), special.ndtr(-z[high]), rtol=1e-12)
    # NUTS needs the gradient: d tau / dz = phi(z) / (2 phi(tau)), the ratio of the two densities
    at = jnp.asarray([-12.0, -3.0, 0.0, 0.5, 4.0])
    slope = np.asarray(jax.vmap(jax.grad(half_normal_from_standard))(at))
    np.testing.assert_allclose(
        slope, np.exp(-0.5 * np.asarray(at) ** 2) / (2 * np.exp(-0.5 * half_normal_from_standard(at) ** 2)), rtol=1e-10
    )


@pytest.mark.slow
def test_no_whitening_is_the_plain_non_centred_model(sparse):
    """p = 0: mu = loc + sd z_mu and e = z, the density the model had before whitening."""
    stats, cells, _ = sparse
    lik = SuffStatsLikelihood.from_stats(stats)
    model = get_model("hierarchical", cells, Whitening.none())
    info = initialize_model(jax.random.PRNGKey(0), model, model_args=(lik,))
    z = {k: jnp.asarray(np.random.default_rng(2).normal(0.0, 1.0, np.shape(v))) for k, v in info.param_info.z.items()}
    c = constrain_fn(model, (lik,), {}, z, return_deterministic=True)
    for short, loc, sd in FAMILIES:
        np.testing.assert_allclose(c[f"mu_{short}"], loc + sd * z[f"z_mu_{short}"], rtol=1e-14)
        np.testing.assert_allclose(c[f"e_{short}_data"], z[f"z_{short}_data"], rtol=1e-14)


@pytest.mark.slow
def test_cells_stay_exact_when_tau_is_tiny(sparse):
    """e = (eta - mu) / tau is computed without the cancellation that wrecks it as tau -> 0
    (a chain once stuck at log tau_0 = -50 because of it)."""
    stats, cells, w = sparse
    lik = SuffStatsLikelihood.from_stats(stats)
    model = get_model("hierarchical", cells, w)
    info = initialize_model(jax.random.PRNGKey(0), model, model_args=(lik,))
    z = {k: jnp.zeros(np.shape(v)) for k, v in info.param_info.z.items()}
    grads, points = [], (-10.0, -20.0, -29.0, -40.0)  # tau_0 = 8e-24 ... 6e-198 (held below -30)
    for z_tau in points:
        z["z_tau_0"] = jnp.asarray(z_tau)
        value, grad = jax.value_and_grad(lambda zz: potential_energy(model, (lik,), {}, zz))(z)
        assert np.isfinite(float(value))
        grads.append(float(grad["z_tau_0"]))
    # as tau_0 -> 0 the data stop depending on it: only z_tau_0's N(0, 1) prior is left, gradient z
    np.testing.assert_allclose(grads, points, atol=1e-6)


def test_runs_record_their_coordinates():
    """A run saves which coordinates it sampled; runs saved before whitening existed were plain."""
    from lineup_numpyro.config import RunConfig

    saved = RunConfig(model="hierarchical").to_dict()
    assert saved["parameterization"] == "whitened"
    assert RunConfig.from_dict(saved) == RunConfig(model="hierarchical")
    del saved["parameterization"]
    assert RunConfig.from_dict(saved).parameterization == "noncentred"
