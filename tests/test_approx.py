"""MAP, Laplace and ADVI (optax): recovery of a simulated truth, agreement with NUTS, outputs
that open in ArviZ, and NUTS started from the MAP."""

from __future__ import annotations

import json

import arviz as az
import jax
import numpy as np
import pytest
from typer.testing import CliRunner

from lineup_numpyro import names
from lineup_numpyro.cli import app
from lineup_numpyro.config import ApproxConfig, SamplerConfig
from lineup_numpyro.data.suffstats import SuffStats
from lineup_numpyro.inference.approx import (
    PARETO_K_OK,
    Flat,
    approximate,
    flatten_model,
    laplace_inverse_mass,
    map_inits,
)
from lineup_numpyro.inference.sampling import _Programs, sample_posterior
from lineup_numpyro.models.model import get_model, make_likelihood
from lineup_numpyro.models.simulate import simulate_season

runner = CliRunner()
SCALARS = ("beta_0", "beta_off", "beta_def", "sigma")


@pytest.fixture(scope="module")
def pooled():
    """A pooled season, its likelihood, truth, and a NUTS fit to compare with."""
    data, truth = simulate_season(20_000, model="simplified", seed=5)
    likelihood = make_likelihood("suffstats", stats=SuffStats.from_possessions(data))
    nuts = sample_posterior(get_model("simplified"), likelihood, SamplerConfig(chains=4, warmup=500, draws=500, seed=2))
    return likelihood, truth, nuts


def _flat(samples: dict[str, np.ndarray]) -> np.ndarray:
    """(draws, 18): every scalar parameter of the pooled model, chains pooled."""
    return np.concatenate(
        [samples[k].reshape(-1, int(np.prod(samples[k].shape[2:], dtype=int))) for k in SCALARS], axis=1
    )


def test_map_recovers_the_truth(pooled):
    likelihood, truth, nuts = pooled
    fit = approximate("map", get_model("simplified"), likelihood, ApproxConfig())
    assert fit.converged and fit.evidence["grad_max"] < ApproxConfig().grad_tol
    mode = _flat(fit.samples)[0]
    true = np.concatenate([np.ravel(truth.params[k]) for k in SCALARS])
    sd = _flat(nuts.samples).std(axis=0)
    # the mode sits within the posterior's spread of the truth: 4 sd bounds each of 18
    # parameters (a miss has probability ~1e-4 each under a Gaussian posterior)
    assert np.all(np.abs(mode - true) < 4 * sd), np.abs(mode - true) / sd


# ADVI: the criterion. Laplace centres a Gaussian at the mode on the log scale, so the
# means of skewed coefficients (half-normal, near 0) land up to ~0.8 sd from NUTS's here; its
# Pareto k says so (above 0.7), and the bound only guards against gross errors.
@pytest.mark.parametrize("method,within", [("advi", 0.5), ("laplace", 1.0)])
@pytest.mark.slow
def test_approximations_agree_with_nuts_on_the_pooled_model(pooled, method, within):
    likelihood, _, nuts = pooled
    fit = approximate(method, get_model("simplified"), likelihood, ApproxConfig(draws=4000, seed=3))
    assert fit.converged
    ours, reference = _flat(fit.samples), _flat(nuts.samples)
    z = np.abs(ours.mean(axis=0) - reference.mean(axis=0)) / reference.std(axis=0)
    assert z.max() < within, z  # in NUTS posterior sds
    k = fit.evidence["pareto_k"]
    assert np.isfinite(k) and fit.evidence["pareto_k_ok"] == (k <= PARETO_K_OK)


def test_map_inits_start_each_chain_near_the_mode(pooled):
    likelihood, _, _ = pooled
    inits, opt = map_inits(get_model("simplified"), likelihood, chains=4, seed=0, jitter=0.1)
    flat = flatten_model(get_model("simplified"), likelihood)
    starts = np.stack([jax.flatten_util.ravel_pytree(jax.tree.map(lambda v, c=c: v[c], inits))[0] for c in range(4)])
    assert starts.shape == (4, opt.x.size)
    offsets = starts - opt.x
    assert 0.05 < offsets.std() < 0.15 and not np.allclose(starts[0], starts[1])
    assert np.isfinite([float(flat.potential(s)) for s in starts]).all()


def _quadratic(a: np.ndarray) -> Flat:
    return Flat(np.zeros(len(a)), lambda x: 0.5 * x @ a @ x, lambda x: {"x": x}, lambda x: {"x": x})


def test_laplace_inverse_mass_is_the_gaussian_marginal_variances():
    # a correlated Gaussian: the variances are diag(A^-1), not 1/diag(A)
    a = np.array([[4.0, 1.9, 0.0], [1.9, 1.0, 0.0], [0.0, 0.0, 0.25]])
    got = laplace_inverse_mass(_quadratic(a), np.zeros(3))
    np.testing.assert_allclose(got, np.diag(np.linalg.inv(a)), rtol=1e-10)
    assert got[0] > 2 / a[0, 0]  # the correlation matters here
    # not positive definite at x (a saddle): each coordinate's own curvature, floored
    saddle = np.array([[1.0, 0.0, 0.0], [0.0, -2.0, 0.0], [0.0, 0.0, 4.0]])
    np.testing.assert_allclose(laplace_inverse_mass(_quadratic(saddle), np.zeros(3)), [1.0, 1e8, 0.25])


@pytest.mark.parametrize("chain_method", ["parallel", "vectorized"])
def test_nuts_starts_warm_up_with_the_given_inverse_mass(pooled, chain_method):
    likelihood, _, _ = pooled
    model = get_model("simplified")
    inits, opt = map_inits(model, likelihood, chains=4, seed=0)
    imm = laplace_inverse_mass(flatten_model(model, likelihood), opt.x)
    programs = _Programs(model, SamplerConfig(chains=4, chain_method=chain_method), chain_method)
    state = programs.init(likelihood, inits, jax.numpy.asarray(imm))
    (started,) = state.adapt_state.inverse_mass_matrix.values()
    np.testing.assert_allclose(np.asarray(started), np.broadcast_to(imm, (4, imm.size)), rtol=1e-12)
    (default,) = programs.init(likelihood, inits).adapt_state.inverse_mass_matrix.values()
    np.testing.assert_array_equal(np.asarray(default), 1.0)  # without it: the identity
    noise = _Programs(model, SamplerConfig(chains=4, chain_method=chain_method, first_mass="noise"), chain_method)
    for start in (inits, None):  # or, first_mass 'noise': 1 but log sigma (the last site) at 1 / (2 N)
        (scaled,) = noise.init(likelihood, start).adapt_state.inverse_mass_matrix.values()
        expected = np.ones(imm.size)
        expected[-1] = 0.5 / float(np.sum(likelihood.n))
        np.testing.assert_allclose(np.asarray(scaled), np.broadcast_to(expected, (4, imm.size)), rtol=1e-12)
    with pytest.raises(ValueError, match="needs initial parameters"):
        programs.init(likelihood, None, jax.numpy.asarray(imm))


@pytest.mark.slow
@pytest.mark.parametrize("init", ["map", "laplace"])
def test_nuts_from_the_map_samples_the_same_posterior(pooled, init):
    likelihood, _, nuts = pooled
    config = SamplerConfig(chains=4, warmup=500, draws=500, seed=2, init=init)
    started = sample_posterior(get_model("simplified"), likelihood, config)
    a, b = _flat(started.samples), _flat(nuts.samples)
    # two independent NUTS runs: means differ by MC error, sqrt(2) x sd / sqrt(ESS ~ 1,000)
    z = np.abs(a.mean(axis=0) - b.mean(axis=0)) / b.std(axis=0)
    assert z.max() < 5 * np.sqrt(2 / 1000), z
    assert not started.stats["diverging"].any()


@pytest.fixture(scope="module")
def season(simulated_season):
    return simulated_season(3_000, model="matchup", seed=9)


# make test: the pooled model; make test-slow adds the matchup and hierarchical models
@pytest.mark.parametrize(
    "model", [m if m == "simplified" else pytest.param(m, marks=pytest.mark.slow) for m in names.MODELS]
)
@pytest.mark.parametrize("method", ["map", "laplace", "advi"])
def test_every_method_writes_outputs_that_open_in_arviz(season, tmp_path, model, method):
    run = tmp_path / "run"
    result = runner.invoke(
        app,
        [
            "train",
            "--model",
            model,
            "--method",
            method,
            "--data",
            str(season),
            "--chains",
            "2",
            "--draws",
            "200",
            "--out",
            str(run),
            "--no-progress",
        ],
    )
    assert result.exit_code == 0, result.output
    idata = az.from_netcdf(str(run / "posterior.nc"))
    assert idata.attrs["method"] == method
    assert set(names.POSTERIOR_DIMS[model]) <= set(idata.posterior.data_vars)
    assert idata.posterior.sizes["draw"] == (1 if method == "map" else 400)
    assert {"lp", "log_weight"} <= set(idata.sample_stats.data_vars)
    diag = json.loads((run / "diagnostics.json").read_text())
    assert diag["method"] == method and isinstance(diag["converged"], bool)
    assert ("pareto_k" in diag["evidence"]) == (method != "map")
    table = (run / "coefficients.csv").read_text().splitlines()
    assert table[0].startswith("parameter,mean,sd")
    assert json.loads((run / "status.json").read_text())["state"] == "complete"
    assert method.upper() in result.output


@pytest.mark.slow
def test_advi_with_a_low_rank_guide(season, tmp_path):
    run = tmp_path / "lowrank"
    result = runner.invoke(
        app,
        [
            "train",
            "--model",
            "simplified",
            "--method",
            "advi",
            "--guide",
            "lowrank",
            "--data",
            str(season),
            "--chains",
            "1",
            "--draws",
            "300",
            "--out",
            str(run),
            "--no-progress",
        ],
    )
    assert result.exit_code == 0, result.output
    diag = json.loads((run / "diagnostics.json").read_text())
    assert diag["evidence"]["guide"] == "lowrank" and diag["draws"] == 300


def test_nuts_only_commands_refuse_approximations(season, tmp_path):
    run = tmp_path / "map"
    assert (
        runner.invoke(
            app,
            [
                "train",
                "--model",
                "matchup",
                "--method",
                "map",
                "--data",
                str(season),
                "--out",
                str(run),
                "--no-progress",
            ],
        ).exit_code
        == 0
    )
    for args in (["compare", str(run), str(run)], ["export", str(run), "--pooled", str(run)], ["report", str(run)]):
        result = runner.invoke(app, args)
        assert result.exit_code == 2 and "a map approximation" in result.output and "needs a NUTS run" in result.output


def test_approx_config_is_checked():
    with pytest.raises(ValueError, match="grad_tol must be positive"):
        ApproxConfig(grad_tol=0.0)
    with pytest.raises(ValueError, match="draws must be at least 1"):
        ApproxConfig(draws=0)
