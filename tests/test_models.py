"""The suffstats and rows likelihoods define the same posterior density, for every model."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numpyro.infer.util import initialize_model

from lineup_numpyro import names
from lineup_numpyro.data.suffstats import SuffStats
from lineup_numpyro.models.cells import Cells
from lineup_numpyro.models.model import RowsLikelihood, SuffStatsLikelihood, complete, get_model, predict
from lineup_numpyro.models.simulate import simulate_season

N_POINTS = 20


@pytest.fixture(scope="module")
def season():
    data, _ = simulate_season(4_000, seed=11, empty_matchups=2)
    return data


def potential_and_grad(model_name, likelihood, seed=0):
    """NumPyro's potential energy (negative log density, unconstrained) and its gradient."""
    info = initialize_model(jax.random.PRNGKey(seed), get_model(model_name), model_args=(likelihood,))
    potential = jax.jit(jax.value_and_grad(info.potential_fn))
    return potential, info.param_info.z


@pytest.mark.parametrize("model_name", names.MODELS)
def test_suffstats_and_rows_agree(model_name, season):
    ss = SuffStatsLikelihood.from_stats(SuffStats.from_possessions(season))
    rows = RowsLikelihood.from_possessions(season)
    pot_ss, z0 = potential_and_grad(model_name, ss)
    pot_rows, _ = potential_and_grad(model_name, rows)
    rng = np.random.default_rng(5)
    for _ in range(N_POINTS):
        # random unconstrained points around the origin, as NUTS explores them
        z = {k: jnp.asarray(rng.normal(0.0, 1.0, np.shape(v))) for k, v in z0.items()}
        u_ss, g_ss = pot_ss(z)
        u_rows, g_rows = pot_rows(z)
        assert np.isfinite(float(u_ss))
        np.testing.assert_allclose(float(u_ss), float(u_rows), rtol=1e-8)
        for k in z:
            scale = np.max(np.abs(np.asarray(g_rows[k]))) + 1e-300
            np.testing.assert_allclose(np.asarray(g_ss[k]), np.asarray(g_rows[k]), rtol=1e-8, atol=1e-8 * scale)


@pytest.mark.parametrize("model_name", names.MODELS)
def test_sites_carry_the_stan_names(model_name, season):
    from numpyro.handlers import seed, trace

    stats = SuffStats.from_possessions(season)
    cells = Cells.from_stats(stats)
    tr = trace(seed(get_model(model_name, cells), 0)).get_trace(SuffStatsLikelihood.from_stats(stats))
    # what NUTS returns: the sampled sites and the recorded ones (the hierarchical model's mu, e)
    sampled = {
        k: np.asarray(v["value"])[None, None]
        for k, v in tr.items()
        if v["type"] == "deterministic" or (v["type"] == "sample" and not v["is_observed"])
    }
    full = complete(model_name, sampled, cells)  # plus the generated untouched cells
    assert set(full) == set(names.POSTERIOR_DIMS[model_name])
    for var, dims in names.POSTERIOR_DIMS[model_name].items():
        shape = tuple(len(names.COORDS[d]) for d in dims)
        assert full[var].shape == (1, 1, *shape), var


def test_suffstats_loglik_matches_scipy(season):
    """The quadratic-form likelihood equals the sum of normal log densities."""
    from scipy.stats import norm

    ss = SuffStatsLikelihood.from_stats(SuffStats.from_possessions(season))
    rng = np.random.default_rng(0)
    b = rng.normal(0, 0.05, (names.N_MATCHUPS, names.N_FEATURES))
    sigma = 0.6
    mu = np.sum(season.design() * b[season.matchup], axis=1)
    expected = norm.logpdf(season.y, mu, sigma).sum()
    np.testing.assert_allclose(float(ss.log_likelihood(jnp.asarray(b), sigma)), expected, rtol=1e-10)


def test_predict_is_the_models_linear_predictor(season):
    """models.predict (validation, valuation, simulation, report) equals the mean the rows
    likelihood puts into the model, per matchup and pooled, for one draw and for several."""
    rows = RowsLikelihood.from_possessions(season)
    rng = np.random.default_rng(4)
    draws = rng.normal(0.0, 0.3, (3, names.N_MATCHUPS, names.N_FEATURES))
    got = predict(draws, season.matchup, season.design())
    assert got.shape == (3, len(season))
    for s in range(3):
        np.testing.assert_allclose(got[s], np.asarray(rows.mean(jnp.asarray(draws[s]))), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(predict(draws[s], season.matchup, season.design()), got[s], rtol=1e-12)
    pooled = draws[:, 0, :]
    np.testing.assert_allclose(
        predict(pooled, season.matchup, season.design())[1],
        np.asarray(rows.mean(jnp.asarray(pooled[1]))),
        rtol=1e-12,
        atol=1e-12,
    )


def test_plug_in_start_is_the_laplace_view_without_its_mode_search():
    """`plug_in_start` (train --init plugin) puts the chains where the posterior is and gives
    NUTS about the Laplace approximation's variances, from the statistics alone: checked against
    the mode and inverse Hessian of the matchup model's own log density."""
    from jax.flatten_util import ravel_pytree

    from lineup_numpyro.config import ApproxConfig
    from lineup_numpyro.inference.approx import find_mode, flatten_model, laplace_inverse_mass
    from lineup_numpyro.models.model import DEFAULT_PRIORS, make_likelihood, plug_in_start

    data, _ = simulate_season(30_000, model="matchup", seed=12, empty_matchups=3)
    stats = SuffStats.from_possessions(data)
    cells = Cells.from_stats(stats)
    flat = flatten_model(get_model("matchup", cells), make_likelihood("suffstats", stats=stats))
    mode = find_mode(flat, ApproxConfig(seed=0))
    laplace = laplace_inverse_mass(flat, mode.x)
    start = plug_in_start(stats, cells, DEFAULT_PRIORS, chains=4, seed=0)

    assert sorted(start.inits) == ["beta_0_data", "beta_def_data", "beta_off_data", "sigma"]
    assert all(v.shape[0] == 4 for v in start.inits.values())
    rows = np.stack([np.asarray(ravel_pytree({k: v[c] for k, v in start.inits.items()})[0]) for c in range(4)])
    assert rows.shape[1] == start.inverse_mass.size == mode.x.size  # NumPyro's flat order of the sites
    ratio = start.inverse_mass / laplace
    assert 0.5 < np.median(ratio) < 2.0 and np.mean((ratio > 0.2) & (ratio < 5.0)) > 0.9
    # where the data speak, the chains start within about a posterior sd of the mode (their mean
    # over 4 chains); where they barely do, near the prior's centre on the log scale, which is a
    # few of the skewed posterior's sds from its mode; the chains start apart
    z = np.abs(rows.mean(axis=0) - mode.x) / np.sqrt(laplace)
    informed = laplace < 0.1
    assert informed.sum() > 100 and np.median(z[informed]) < 1.0 and np.mean(z[informed] < 2.5) > 0.9
    assert np.mean(z < 5.0) > 0.9
    assert np.all(rows.std(axis=0) > 0)
