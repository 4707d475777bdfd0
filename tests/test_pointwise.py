"""posterior.nc is ArviZ-native: observed_data, log_likelihood and posterior_predictive are
written chunk by chunk, and az.loo, az.compare and az.plot_ppc work on the file as it is."""

from __future__ import annotations

import json

import arviz as az
import arviz_stats  # ArviZ 1.x's statistics (a dev dependency): run files must open there too
import numpy as np
import pytest
import xarray as xr
from typer.testing import CliRunner

from lineup_numpyro.analysis.comparison import compare_runs
from lineup_numpyro.cli import app
from lineup_numpyro.config import DataConfig, RunConfig, SamplerConfig
from lineup_numpyro.data.possessions import load_possessions
from lineup_numpyro.models.simulate import simulate_season, write_season
from lineup_numpyro.run import pointwise
from lineup_numpyro.run.rundir import RunDir
from lineup_numpyro.run.train import train

SMALL = SamplerConfig(chains=2, warmup=150, draws=150, seed=3)
runner = CliRunner()


@pytest.fixture(scope="module")
def season(tmp_path_factory):
    path = tmp_path_factory.mktemp("pointwise") / "season.csv"
    data, truth = simulate_season(3_000, model="matchup", seed=5)
    write_season(data, truth, path)
    return path


def _train(season, out, model):
    """A small run; CHUNK_ROWS small so the groups are written in several chunks, and the file
    read in chunks that do not line up with them."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(pointwise, "CHUNK_ROWS", 700)
        train(RunConfig(model=model, data=DataConfig(path=str(season), chunksize=1_100), sampler=SMALL), out)
    return out


@pytest.fixture(scope="module")
def runs(season, tmp_path_factory):
    """The pooled and the matchup model on the same possessions (the hierarchical model joins
    them in the slow test)."""
    base = tmp_path_factory.mktemp("pointwise_runs")
    return {model: _train(season, base / model, model) for model in ("simplified", "matchup")}


def _idata(run) -> az.InferenceData:
    return az.from_netcdf(str(run / RunDir.POSTERIOR))


def test_groups_hold_the_log_likelihood_and_replicates_of_every_possession(runs, season):
    idata = _idata(runs["matchup"])
    rows = load_possessions(season)
    n, s = len(rows), SMALL.chains * SMALL.draws
    assert {"observed_data", "log_likelihood", "posterior_predictive"} <= set(idata.groups())
    np.testing.assert_array_equal(idata.observed_data["y"].values, rows.y)
    np.testing.assert_array_equal(idata.constant_data["possession_matchup"].values, rows.matchup)
    ll = idata.log_likelihood["y"]
    assert ll.dims == ("chain", "draw", "possession") and ll.shape == (SMALL.chains, SMALL.draws, n)
    # the same numbers as one pass over the whole array
    post = pointwise.posterior_of(idata)
    whole = pointwise.log_likelihood(post, rows)
    np.testing.assert_allclose(ll.values.reshape(s, n), whole, rtol=1e-12)
    # replicates: y_rep = mu + sigma * eps, eps standard normal; its mean and variance within
    # 5 Monte Carlo standard errors of 0 and 1 over n x s values
    mu = pointwise.predicted_means(post, rows)
    eps = (idata.posterior_predictive["y"].values.reshape(s, n) - mu) / post.sigma[:, None]
    k = eps.size
    assert abs(eps.mean()) < 5 / np.sqrt(k)
    assert abs(eps.var() - 1.0) < 5 * np.sqrt(2.0 / k) + 1e-6  # float32 storage: ~1e-7 relative
    assert idata.posterior_predictive["y"].dtype == np.float32


def _agree_with_compare(runs: dict) -> None:
    """az.compare on the files ranks the runs as `lineup-numpyro compare` does, with the same
    elpd_loo and p_loo: the same pointwise log-likelihood and relative efficiency."""
    ranked = az.compare({model: _idata(run) for model, run in runs.items()})
    ours = compare_runs(list(runs.values()), use_split=False).table.set_index("model")
    for model in runs:
        assert ranked.loc[model, "elpd_loo"] == pytest.approx(ours.loc[model, "elpd_loo"], rel=1e-9)
        assert ranked.loc[model, "p_loo"] == pytest.approx(ours.loc[model, "p_loo"], rel=1e-6)
    assert list(ranked.index) == list(ours.sort_values("elpd_loo", ascending=False).index)


def test_arviz_loo_compare_and_ppc_work_on_the_file(runs):
    idatas = {model: _idata(run) for model, run in runs.items()}
    loo = az.loo(idatas["matchup"])
    assert np.isfinite(loo.elpd_loo) and loo.n_data_points == 3_000
    _agree_with_compare(runs)
    import matplotlib

    matplotlib.use("Agg")
    ax = az.plot_ppc(idatas["simplified"], num_pp_samples=20, random_seed=1)
    assert len(np.atleast_1d(ax)[0].lines) >= 20
    matplotlib.pyplot.close("all")


@pytest.mark.slow
def test_arviz_compare_of_three_models_agrees_with_ours(runs, season, tmp_path):
    _agree_with_compare({**runs, "hierarchical": _train(season, tmp_path / "hierarchical", "hierarchical")})


def test_size_limit_and_the_command_line_choice(season, tmp_path, monkeypatch):
    monkeypatch.setattr(pointwise, "POINTWISE_MAX_BYTES", 1_000)
    common = ["train", "--model", "simplified", "--data", str(season), "--chains", "1", "--warmup", "20"]
    common += ["--draws", "10"]
    # over the limit: not written by default, and the run says why and how to get it
    result = runner.invoke(app, [*common, "--out", str(tmp_path / "auto")])
    assert result.exit_code == 0, result.output
    assert "log_likelihood" not in _idata(tmp_path / "auto").groups()
    why = json.loads((tmp_path / "auto" / RunDir.DIAGNOSTICS).read_text())["log_likelihood"]
    assert "not written" in why and "--log-likelihood" in why
    assert "not written" in result.output
    # asked for: written whatever the size
    result = runner.invoke(app, [*common, "--out", str(tmp_path / "on"), "--log-likelihood"])
    assert result.exit_code == 0, result.output
    assert _idata(tmp_path / "on").log_likelihood["y"].shape == (1, 10, 3_000)


def test_decision_by_size():
    assert pointwise.pointwise_decision(None, 10_000, 4_000)[0]  # the real samples at default draws
    assert not pointwise.pointwise_decision(None, 96_837, 4_000)[0]  # the full season is not, by default
    assert pointwise.pointwise_decision(True, 96_837, 4_000)[0]
    refused, why = pointwise.pointwise_decision(False, 10, 10)
    assert not refused and "--no-log-likelihood" in why


def test_the_file_opens_in_arviz_1(runs):
    """ArviZ 1.x (arviz-base, arviz-stats: DataTree in place of InferenceData) reads the same
    file and finds the same elpd_loo, to PSIS's own Monte Carlo differences between versions."""
    tree = xr.open_datatree(str(runs["matchup"] / RunDir.POSTERIOR), engine="h5netcdf")
    assert {"posterior", "log_likelihood", "observed_data", "posterior_predictive"} <= set(tree.children)
    new = arviz_stats.loo(tree)
    old = az.loo(_idata(runs["matchup"]))
    # both smooth the same weights; they differ only in how r_eff and k's cut-offs are computed
    assert new.elpd == pytest.approx(old.elpd_loo, abs=max(0.5, 0.01 * old.se))
    assert tree.posterior["beta_off"].sel(matchup=7, archetype=4).shape == (SMALL.chains, SMALL.draws)
