"""Priors you can set (issue 17, point 5): the defaults are the seed's, a chosen scale moves the
log density by exactly its prior terms, untouched cells and prior widths follow the run's
priors, and a run records its priors and keeps them on resume."""

from __future__ import annotations

import json
import subprocess
from dataclasses import replace

import arviz as az
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from numpyro.infer.util import log_density
from scipy import stats as sps
from typer.testing import CliRunner

from lineup_numpyro import files, names
from lineup_numpyro.cli import app
from lineup_numpyro.config import PRIORS_OF_MODEL, Priors, RunConfig
from lineup_numpyro.data.suffstats import SuffStats
from lineup_numpyro.errors import ConfigError
from lineup_numpyro.models.cells import Cells
from lineup_numpyro.models.model import SuffStatsLikelihood, complete, get_model, prior_width
from lineup_numpyro.models.simulate import simulate_season
from lineup_numpyro.run.outputs import prior_width_ratios
from lineup_numpyro.run.rundir import RunDir

M, A, P = names.N_MATCHUPS, names.N_ARCHETYPES, names.N_FEATURES
# ../shared/MODELS.md's numbers, written out here rather than read from the package
SEED = dict(beta_0=5.0, beta=5.0, sigma=2.5, mu_loc=-4.0, mu_sd=2.0, tau=1.0)
OTHER = Priors(beta_0=2.0, beta=0.5, sigma=1.0, mu_loc=-3.0, mu_sd=0.7, tau=0.3)  # every field changed
runner = CliRunner()


@pytest.fixture(scope="module")
def season():
    """A small season with two empty matchups: its cells and likelihood."""
    data, _ = simulate_season(1_500, model="matchup", seed=4, empty_matchups=2)
    stats = SuffStats.from_possessions(data)
    return Cells.from_stats(stats), SuffStatsLikelihood.from_stats(stats)


def _point(model: str, cells: Cells, seed: int = 0) -> dict[str, np.ndarray]:
    """A random point of `model`'s constrained parameters (the hierarchical model's as tau, mu, e)."""
    rng = np.random.default_rng(seed)
    if model == "simplified":
        return {"beta_0": rng.normal(0, 0.3), "beta": rng.uniform(0.01, 0.1, 2 * A), "sigma": rng.uniform(0.4, 0.8)}
    if model == "matchup":
        k = cells.count("beta_off") + cells.count("beta_def")
        return {"beta_0": rng.normal(0, 0.3, cells.count("beta_0")), "beta": rng.uniform(0.01, 0.1, k), "sigma": 0.6}
    point = {"sigma": rng.uniform(0.4, 0.8)}
    for short, family in (("0", "beta_0"), ("off", "beta_off"), ("def", "beta_def")):
        shape = () if short == "0" else (A,)
        point[f"tau_{short}"] = rng.uniform(0.05, 0.8, shape)
        point[f"mu_{short}"] = rng.normal(1.0, 0.1, shape) if short == "0" else rng.normal(-3.5, 0.5, shape)
        point[f"e_{short}"] = rng.normal(0, 1, cells.count(family))
    return point


def _populations(p: dict) -> tuple[tuple[str, float, float], ...]:
    """The hierarchical model's populations: (short name, mu's prior location and sd)."""
    return (("0", 0.0, p["beta_0"]), ("off", p["mu_loc"], p["mu_sd"]), ("def", p["mu_loc"], p["mu_sd"]))


def _sites(model: str, point: dict, cells: Cells, priors: Priors) -> dict[str, jnp.ndarray]:
    """The point as the model's sample sites; the hierarchical model in its plain non-centred
    coordinates (no whitening): z_mu = (mu - loc) / sd, z = e."""
    if model == "simplified":
        out = {"beta_0": point["beta_0"], "beta_off": point["beta"][:A], "beta_def": point["beta"][A:]}
    elif model == "matchup":
        k = cells.count("beta_off")
        out = {"beta_0_data": point["beta_0"], "beta_off_data": point["beta"][:k], "beta_def_data": point["beta"][k:]}
    else:
        out = {}
        for short, loc, sd in _populations(priors.to_dict()):
            out[f"tau_{short}"] = point[f"tau_{short}"]
            out[f"z_mu_{short}"] = (point[f"mu_{short}"] - loc) / sd
            out[f"z_{short}_data"] = point[f"e_{short}"]
    return {k: jnp.asarray(v) for k, v in {**out, "sigma": point["sigma"]}.items()}


def _log_density(model: str, point: dict, cells: Cells, likelihood, priors: Priors) -> float:
    sites = _sites(model, point, cells, priors)
    return float(log_density(get_model(model, cells, None, priors), (likelihood,), {}, sites)[0])


def _coefficients(model: str, point: dict, cells: Cells) -> np.ndarray:
    """The (M, 17) or (17,) coefficients of the point, built with numpy."""
    if model == "simplified":
        return np.concatenate([[point["beta_0"]], point["beta"]])
    b = np.zeros(M * P)
    if model == "matchup":
        k = cells.count("beta_off")
        values = {"beta_0": point["beta_0"], "beta_off": point["beta"][:k], "beta_def": point["beta"][k:]}
    else:
        values = {}
        for short, family in (("0", "beta_0"), ("off", "beta_off"), ("def", "beta_def")):
            _, j = cells.matchup_archetype(family)
            mu, tau = np.atleast_1d(point[f"mu_{short}"]), np.atleast_1d(point[f"tau_{short}"])
            eta = mu[j] + tau[j] * point[f"e_{short}"]
            values[family] = eta if short == "0" else np.exp(eta)
    for family, v in values.items():
        b[cells.index(family)] = v
    return b.reshape(M, P)


def _prior_terms(model: str, point: dict, p: dict) -> float:
    """The priors of MODELS.md in closed form, with scales `p`. The hierarchical model's mu
    enters as z_mu = (mu - loc) / sd ~ N(0, 1), the coordinate NUTS samples: log N(mu | loc, sd)
    + log sd."""
    lp = sps.halfcauchy(scale=p["sigma"]).logpdf(point["sigma"])
    if model != "hierarchical":
        lp += (
            sps.norm(0, p["beta_0"]).logpdf(point["beta_0"]).sum()
            + sps.halfnorm(scale=p["beta"]).logpdf(point["beta"]).sum()
        )
        return float(lp)
    for short, loc, sd in _populations(p):
        lp += sps.halfnorm(scale=p["tau"]).logpdf(point[f"tau_{short}"]).sum()
        lp += (sps.norm(loc, sd).logpdf(point[f"mu_{short}"]) + np.log(sd)).sum()
        lp += sps.norm(0, 1).logpdf(point[f"e_{short}"]).sum()
    return float(lp)


@pytest.mark.parametrize("model", names.MODELS)
def test_priors_move_the_density_by_their_prior_terms_only(model, season):
    """Priors() gives MODELS.md's density, computed here from scratch with its literal numbers;
    changing one family's prior changes the log density at the same parameters by exactly the
    closed-form difference of that family's prior terms; families the model lacks change nothing."""
    cells, likelihood = season
    assert Priors().to_dict() == SEED
    point = _point(model, cells)
    default = _log_density(model, point, cells, likelihood, Priors())
    loglik = float(likelihood.log_likelihood(jnp.asarray(_coefficients(model, point, cells)), point["sigma"]))
    np.testing.assert_allclose(default, _prior_terms(model, point, SEED) + loglik, rtol=1e-12)
    for family in PRIORS_OF_MODEL[model]:
        chosen = replace(Priors(), **{family: getattr(OTHER, family)})
        change = _log_density(model, point, cells, likelihood, chosen) - default
        expected = _prior_terms(model, point, chosen.to_dict()) - _prior_terms(model, point, SEED)
        assert abs(expected) > 0.01, family  # the change is visible
        np.testing.assert_allclose(change, expected, rtol=1e-9, atol=1e-9, err_msg=family)
    others = {k: v for k, v in OTHER.to_dict().items() if k not in PRIORS_OF_MODEL[model]}
    assert Priors(**others).unused(model) == list(others)
    assert _log_density(model, point, cells, likelihood, Priors(**others)) == default


def test_untouched_cells_are_drawn_from_the_runs_priors(season):
    cells, _ = season
    chains, draws = 2, 2000
    rng = np.random.default_rng(0)
    sampled = {
        f"{f}_data": rng.uniform(size=(chains, draws, cells.count(f))) for f in ("beta_0", "beta_off", "beta_def")
    }
    sampled["sigma"] = np.ones((chains, draws))
    out = complete("matchup", sampled, cells, seed=5, priors=OTHER)
    unseen = ~cells.touched.reshape(M, P)
    b0 = out["beta_0"][..., unseen[:, 0]].ravel()
    bo = out["beta_off"][..., unseen[:, 1 : 1 + A]].ravel()
    assert b0.size >= 2 * chains * draws and bo.size >= 2 * chains * draws
    # moments within 5 Monte Carlo standard errors
    assert abs(b0.mean()) < 5 * OTHER.beta_0 / np.sqrt(b0.size)
    assert b0.std() == pytest.approx(OTHER.beta_0, rel=5 * np.sqrt(0.5 / b0.size))
    half_mean, half_sd = OTHER.beta * np.sqrt(2 / np.pi), OTHER.beta * np.sqrt(1 - 2 / np.pi)
    assert abs(bo.mean() - half_mean) < 5 * half_sd / np.sqrt(bo.size)
    assert sps.kstest(bo, sps.halfnorm(scale=OTHER.beta).cdf).pvalue > 1e-3
    default = complete("matchup", sampled, cells, seed=5)  # the same draws, at the seed's scale
    np.testing.assert_allclose(default["beta_off"][..., unseen[:, 1 : 1 + A]], bo.reshape(chains, draws, -1) * 10)


def test_prior_width_follows_the_priors():
    for model in ("simplified", "matchup"):
        assert prior_width(model, "beta_0", OTHER) == pytest.approx(prior_width(model, "beta_0") * 2 / 5, rel=1e-14)
        assert prior_width(model, "beta_off", OTHER) == pytest.approx(prior_width(model, "beta_off") / 10, rel=1e-14)
    # hierarchical, tau tiny: beta_0 ~ N(0, beta_0), beta ~ exp(N(mu_loc, mu_sd)), up to Monte Carlo error
    narrow = Priors(beta_0=2.0, mu_loc=-3.0, mu_sd=0.7, tau=1e-9)
    z = sps.norm.ppf([0.05, 0.95])
    assert prior_width("hierarchical", "beta_0", narrow) == pytest.approx(2.0 * (z[1] - z[0]), rel=0.01)
    assert prior_width("hierarchical", "beta_off", narrow) == pytest.approx(np.ptp(np.exp(-3.0 + 0.7 * z)), rel=0.01)
    # the same draws shifted by mu_loc: beta scales by exp(shift)
    shifted = replace(narrow, mu_loc=-2.0)
    assert prior_width("hierarchical", "beta_def", shifted) == pytest.approx(
        np.e * prior_width("hierarchical", "beta_def", narrow), rel=1e-9
    )
    draws = {"beta_0": np.zeros((1, 3)), "beta_off": np.zeros((1, 3, A)), "beta_def": np.zeros((1, 3, A))}
    draws["beta_0"][0] = [0.0, 1.0, 2.0]
    width = np.ptp(np.quantile([0.0, 1.0, 2.0], [0.05, 0.95]))
    ratio = prior_width_ratios(draws, "simplified", OTHER)["beta_0"]
    assert ratio == pytest.approx(width / prior_width("simplified", "beta_0", OTHER))


def test_priors_are_checked_and_round_trip():
    config = RunConfig(priors=OTHER)
    assert RunConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    old = RunConfig().to_dict()
    del old["priors"]  # a run_config.json written before --prior
    assert RunConfig.from_dict(old).priors == Priors()
    assert Priors.parse(["beta=1", " tau = 0.5", "mu_loc=-2"]) == Priors(beta=1.0, tau=0.5, mu_loc=-2.0)
    assert Priors.parse(None) == Priors() and Priors.parse(["beta=1"]).changed() == {"beta": 1.0}
    for bad in (["gamma=1"], ["beta"], ["beta=x"], ["beta=0"], ["sigma=-1"], ["tau=inf"], ["mu_loc=nan"]):
        with pytest.raises(ConfigError, match="beta_0, beta, sigma, mu_loc, mu_sd, tau"):
            Priors.parse(bad)
    with pytest.raises(ConfigError, match="positive"):
        Priors(mu_sd=0.0)


TINY = ["--model", "simplified", "--chains", "1", "--warmup", "60", "--draws", "60", "--no-progress"]


@pytest.mark.parametrize(("option", "says"), [("gamma=1", "FAMILY one of"), ("beta=-1", "positive"), ("beta=", "")])
def test_a_bad_prior_exits_2_naming_the_families(option, says, tmp_path):
    result = runner.invoke(app, ["train", "--out", str(tmp_path / "run"), *TINY, "--prior", option])
    assert result.exit_code == 2, result.output
    assert "beta_0, beta, sigma, mu_loc, mu_sd, tau" in result.output and says in result.output
    assert not (tmp_path / "run").exists()


def test_a_run_records_its_priors_and_keeps_them_on_resume(simulated_season, tmp_path):
    data = tmp_path / "season.csv"
    data.write_text(simulated_season(1_500, model="simplified", seed=6).read_text())
    run_dir = tmp_path / "run"
    given = ["--prior", "beta=1", "--prior", "sigma=1", "--prior", "tau=0.5"]
    result = runner.invoke(app, ["train", "--data", str(data), "--out", str(run_dir), *TINY, *given])
    assert result.exit_code == 0, result.output
    assert "--prior tau: the simplified model has no such prior" in result.output
    assert "beta=1, sigma=1, tau=0.5" in result.output  # the summary names the priors that are not the defaults
    record = json.loads((run_dir / RunDir.RUN_CONFIG).read_text())
    assert record["config"]["priors"] == {**SEED, "beta": 1.0, "sigma": 1.0, "tau": 0.5}
    # the informed flags measure the posterior against the run's prior, not the default one
    idata = az.from_netcdf(str(run_dir / RunDir.POSTERIOR))
    draws = idata.posterior["beta_off"].values.reshape(-1, A)
    width = np.ptp(np.quantile(draws, [0.05, 0.95], axis=0), axis=0)
    ratio = idata.constant_data["prior_width_ratio_beta_off"].values
    np.testing.assert_allclose(ratio, width / prior_width("simplified", "beta_off", Priors(beta=1.0)), rtol=1e-6)

    run = RunDir(run_dir)
    run.set_status("running")  # as if its process had died mid-way
    dead = subprocess.Popen(["true"])
    dead.wait()
    files.write_json(run / RunDir.STATUS, {**json.loads((run / RunDir.STATUS).read_text()), "pid": dead.pid})
    resume = ["train", "--resume", str(run_dir)]
    result = runner.invoke(app, [*resume, "--prior", "beta=2", "--prior", "sigma=1", "--prior", "tau=0.5"])
    assert result.exit_code == 2 and "priors {'beta': 2.0} (the run has {'beta': 1.0})" in result.output
    result = runner.invoke(app, [*resume, "--prior", "beta=1"])  # the others back to their defaults
    assert result.exit_code == 2, result.output
    assert "priors {'sigma': 2.5, 'tau': 1.0} (the run has {'sigma': 1.0, 'tau': 0.5})" in result.output
    # the same priors typed again pass that check: the resume goes on to refuse the changed data
    frame = pd.read_csv(data)
    frame.loc[10, "outcome"] += 1.0  # the same number of rows, other data
    frame.to_csv(data, index=False)
    result = runner.invoke(app, [*resume, "--prior", "tau=0.5", "--prior", "sigma=1", "--prior", "beta=1"])
    assert result.exit_code == 2 and "other data" in result.output and "keeps the settings" not in result.output
