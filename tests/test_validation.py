"""Holdout scores, PSIS-LOO by chunks, the random split, and `validate`/`compare` end to end."""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import replace

import arviz as az
import numpy as np
import pytest
from typer.testing import CliRunner

from lineup_numpyro import names
from lineup_numpyro.analysis.comparison import compare_runs, write_comparison
from lineup_numpyro.analysis.validation import (
    Posterior,
    load_posterior,
    log_likelihood,
    predicted_means,
    psis_loo,
    score_holdout,
    validate_run,
)
from lineup_numpyro.cli import app
from lineup_numpyro.config import DataConfig, RunConfig, SamplerConfig, default_target_accept
from lineup_numpyro.data.possessions import Split, load_possessions
from lineup_numpyro.models.simulate import simulate_season, write_season
from lineup_numpyro.run.rundir import RunDir
from lineup_numpyro.run.train import train

runner = CliRunner()
FULL = SamplerConfig(seed=1)  # 4 x (1,000 + 1,000): compare recommends only converged fits
HOLDOUT = 0.5


# --- the random split ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def season_csv(tmp_path_factory):
    """60,000 possessions from the matchup model: at 10,000 the per-matchup effects (a few
    hundredths of a point) are too faint for 613 parameters to beat the pooled 18."""
    path = tmp_path_factory.mktemp("split") / "season.csv"
    data, truth = simulate_season(60_000, model="matchup", seed=11)
    write_season(data, truth, path)
    return path, data


def test_split_sides_partition_the_rows_whatever_the_chunks(season_csv):
    path, data = season_csv
    split = Split(HOLDOUT, seed=4)
    held = load_possessions(path, split=split.other_side())
    kept = load_possessions(path, split=split, chunksize=333)
    assert len(held) + len(kept) == len(data)
    mask = split.other_side().keep(0, len(data))
    np.testing.assert_array_equal(held.y, data.y[mask])
    np.testing.assert_array_equal(kept.z_off, data.z_off[~mask])
    # about HOLDOUT of the rows, within 5 binomial standard deviations
    sd = math.sqrt(len(data) * HOLDOUT * (1 - HOLDOUT))
    assert abs(len(held) - HOLDOUT * len(data)) < 5 * sd
    # another seed, another split
    assert not np.array_equal(mask, Split(HOLDOUT, seed=5, side="holdout").keep(0, len(data)))


def test_split_rejects_bad_fractions():
    for bad in (0.0, 1.0, -0.1):
        with pytest.raises(ValueError, match="fraction"):
            Split(bad)
    with pytest.raises(ValueError, match="holdout_fraction"):
        DataConfig(holdout_fraction=1.0)


# --- scores on a posterior that is known exactly --------------------------------------------------


def _point_posterior(coef: np.ndarray, sigma: float, draws: int = 40) -> Posterior:
    """Every draw the same: the predictive distribution is N(x . b, sigma) itself."""
    full = np.broadcast_to(coef, (draws, names.N_MATCHUPS, names.N_FEATURES)).copy()
    return Posterior("matchup", full, np.full(draws, sigma), reff=1.0)


def test_holdout_scores_of_the_true_model():
    data, truth = simulate_season(20_000, model="matchup", seed=3)
    coef = np.concatenate([truth.params["beta_0"][:, None], truth.params["beta_off"], truth.params["beta_def"]], 1)
    sigma = float(truth.params["sigma"])
    score = score_holdout(_point_posterior(coef, sigma), [data], "simulated")
    n = len(data)
    # residuals are N(0, sigma^2): MSE within 5 standard errors (sd of a squared normal: sqrt(2) sigma^2)
    assert abs(score.mse - sigma**2) < 5 * math.sqrt(2) * sigma**2 / math.sqrt(n)
    assert score.rmse == pytest.approx(math.sqrt(score.mse))
    # mean log density: E = -log(sigma) - log(2 pi)/2 - 1/2, sd of one term 1/sqrt(2)
    expected = -math.log(sigma) - 0.5 * math.log(2 * math.pi) - 0.5
    assert abs(score.mlpd - expected) < 5 / math.sqrt(2 * n)
    for p, got in ((0.5, score.coverage_50), (0.9, score.coverage_90)):
        assert abs(got - p) < 5 * math.sqrt(p * (1 - p) / n)
    assert score.n == n and score.outcome_var > score.mse


def test_predictions_and_log_likelihood_by_hand():
    rng = np.random.default_rng(0)
    coef = rng.normal(0, 0.05, (3, names.N_MATCHUPS, names.N_FEATURES))
    post = Posterior("matchup", coef, np.array([0.5, 0.6, 0.7]), reff=1.0)
    data, _ = simulate_season(50, seed=1)
    x = data.design()
    mu = predicted_means(post, data)
    ll = log_likelihood(post, data)
    for s in range(3):
        for i in (0, 17, 49):
            m = data.matchup[i]
            assert mu[s, i] == pytest.approx(x[i] @ coef[s, m], rel=1e-12)
            z = (data.y[i] - mu[s, i]) / post.sigma[s]
            assert ll[s, i] == pytest.approx(-0.5 * z**2 - math.log(post.sigma[s]) - 0.5 * math.log(2 * math.pi))


# --- real runs ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def runs(season_csv, tmp_path_factory):
    """The three models fitted to the training side of one random split."""
    path, _ = season_csv
    out = {}
    for model in names.MODELS:
        run_dir = tmp_path_factory.mktemp(model)
        data = DataConfig(path=str(path), holdout_fraction=HOLDOUT, split_seed=7)
        sampler = replace(FULL, target_accept=default_target_accept(model))  # as `train` on the command line
        train(RunConfig(model=model, data=data, sampler=sampler), run_dir, overwrite=True)
        out[model] = run_dir
    return out


@pytest.mark.slow
def test_loo_by_chunks_equals_arviz_on_the_whole_array(runs, season_csv):
    path, _ = season_csv
    post = load_posterior(runs["matchup"])
    rows = load_possessions(path, split=Split(HOLDOUT, 7)).subset(slice(0, 6_000))
    mine = psis_loo(post, [rows])  # taken CHUNK_ROWS at a time
    ll = log_likelihood(post, rows).reshape(FULL.chains, FULL.draws, len(rows))
    idata = az.from_dict(log_likelihood={"y": ll})
    theirs = az.loo(idata, pointwise=True, reff=post.reff)
    np.testing.assert_allclose(mine.elpd_i, theirs.loo_i.values, rtol=1e-10)
    np.testing.assert_allclose(mine.pareto_k, theirs.pareto_k.values, rtol=1e-10)
    assert mine.elpd == pytest.approx(theirs.elpd_loo, rel=1e-10)
    assert mine.se == pytest.approx(theirs.se, rel=1e-10)
    assert mine.p_loo == pytest.approx(theirs.p_loo, rel=1e-8)


@pytest.mark.slow
def test_validate_scores_the_held_out_rows(runs, season_csv):
    path, data = season_csv
    report, written = validate_run(runs["matchup"])
    held = Split(HOLDOUT, 7, "holdout").keep(0, len(data))
    h = report["holdout"]
    assert h["n"] == held.sum() and "holdout side" in h["source"]
    post = load_posterior(runs["matchup"])
    direct = score_holdout(post, [data.subset(held)], "direct")
    assert h["mse"] == pytest.approx(direct.mse, rel=1e-12) and h["mlpd"] == pytest.approx(direct.mlpd, rel=1e-12)
    assert report["loo"]["n"] == len(data) - held.sum()
    assert written == RunDir(runs["matchup"]).validation_path("holdout-split")
    assert json.loads(written.read_text())["holdout"]["n"] == h["n"]
    # the fitted model predicts its unseen possessions better than their mean does, and its
    # predictive intervals are calibrated (within 5 binomial standard errors)
    assert h["mse"] < h["outcome_var"]
    for p, got in ((0.5, h["coverage_50"]), (0.9, h["coverage_90"])):
        assert abs(got - p) < 5 * math.sqrt(p * (1 - p) / h["n"])


@pytest.mark.slow
def test_validate_on_a_file_and_overlap_warning(runs, season_csv, tmp_path):
    path, _ = season_csv
    with pytest.warns(UserWarning, match="include the run's training data"):
        report, _ = validate_run(runs["simplified"], DataConfig(path=str(path)), loo=False)
    assert report["holdout"]["n"] == 60_000 and "loo" not in report


@pytest.mark.slow
def test_compare_ranks_partial_pooling_first_on_matchup_data(runs, tmp_path):
    """Matchup effects drawn independently are still estimated better by shrinking them
    together: the hierarchical model has fewer effective parameters and a higher elpd; the
    pooled model, which has no matchup effects, is clearly worse than both."""
    result = compare_runs([runs[m] for m in names.MODELS])
    t = result.table
    assert list(t["model"]) == ["hierarchical", "matchup", "simplified"]
    assert list(t["verdict"]) == ["best", "worse", "worse"]
    assert (t["elpd_diff"][1:] > 2 * t["se_diff"][1:]).all()
    assert result.recommended == str(runs["hierarchical"])
    assert t.loc[0, "p_loo"] < t.loc[1, "p_loo"] and t.loc[2, "p_loo"] < 25  # 613 parameters against 18
    assert {"holdout_mse", "coverage_90", "divergences", "converged"} <= set(t.columns)
    assert t.loc[0, "holdout_mse"] < t.loc[2, "holdout_mse"]
    write_comparison(result, tmp_path)
    saved = json.loads((tmp_path / "comparison.json").read_text())
    assert saved["recommended"] == str(runs["hierarchical"]) and len(saved["runs"]) == 3


def _diverged_copy(run_dir, dest, divergences: int):
    """A copy of a run whose diagnostics say it had `divergences` divergent transitions."""
    shutil.copytree(run_dir, dest)
    diag = json.loads((dest / RunDir.DIAGNOSTICS).read_text())
    diag["divergences"]["count"], diag["converged"] = divergences, False
    (dest / RunDir.DIAGNOSTICS).write_text(json.dumps(diag))
    return dest


@pytest.mark.slow
def test_compare_never_recommends_a_fit_that_did_not_converge(runs, tmp_path):
    diverged = _diverged_copy(runs["hierarchical"], tmp_path / "hierarchical", 7)
    result = compare_runs([runs["simplified"], runs["matchup"], diverged], use_split=False)
    t = result.table.set_index("model")
    assert t.loc["hierarchical", "verdict"] == "best" and t.loc["hierarchical", "divergences"] == 7
    # among the converged runs only, the one with matchup effects is clearly better than the pooled one
    assert result.recommended == str(runs["matchup"])
    assert "not converged, so not considered: hierarchical (7 divergences" in result.verdict
    none = compare_runs([_diverged_copy(runs["simplified"], tmp_path / "simplified", 2), diverged], use_split=False)
    assert none.recommended is None and none.verdict.startswith("no run converged")


@pytest.mark.slow
def test_compare_keeps_the_pooled_model_for_pooled_data(tmp_path):
    path = tmp_path / "pooled.csv"
    data, truth = simulate_season(6_000, model="simplified", seed=12)
    write_season(data, truth, path)
    dirs = []
    for model in ("simplified", "matchup"):
        dirs.append(tmp_path / model)
        train(RunConfig(model=model, data=DataConfig(path=str(path)), sampler=FULL), dirs[-1])
    result = compare_runs(dirs)
    assert result.recommended == str(dirs[0])
    assert "holdout_mse" not in result.table  # no split, no holdout given


@pytest.mark.slow
def test_compare_refuses_runs_on_different_data(runs, season_csv, tmp_path):
    path, _ = season_csv
    other = tmp_path / "other"
    train(RunConfig(model="simplified", data=DataConfig(path=str(path)), sampler=FULL), other)
    result = runner.invoke(app, ["compare", str(runs["matchup"]), str(other)])
    assert result.exit_code == 2 and "same possessions" in result.output


@pytest.mark.slow
def test_cli_validate_and_compare(runs, tmp_path):
    result = runner.invoke(app, ["validate", str(runs["matchup"]), "--no-loo"])
    assert result.exit_code == 0, result.output
    assert "RMSE" in result.output and "held-out possessions" in result.output
    result = runner.invoke(app, ["compare", str(runs["simplified"]), str(runs["matchup"]), "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "verdict" in result.output and (tmp_path / "comparison.csv").exists()


@pytest.mark.slow
def test_cli_validate_errors(runs, tmp_path):
    no_split = tmp_path / "no_split"
    data, truth = simulate_season(2_000, model="simplified", seed=2)
    write_season(data, truth, tmp_path / "d.csv")
    train(RunConfig(model="simplified", data=DataConfig(path=str(tmp_path / "d.csv")), sampler=FULL), no_split)
    result = runner.invoke(app, ["validate", str(no_split)])
    assert result.exit_code == 2 and "held nothing out" in result.output
    result = runner.invoke(app, ["validate", str(runs["matchup"]), "--season", "2022-23"])
    assert result.exit_code == 2 and "--data" in result.output
    result = runner.invoke(app, ["validate", str(tmp_path / "nowhere")])
    assert result.exit_code == 2 and "nowhere" in result.output
    result = runner.invoke(app, ["validate", str(runs["matchup"]), "--data", str(tmp_path / "missing.csv")])
    assert result.exit_code == 2 and "missing.csv" in result.output
    RunDir(no_split).set_status("running")
    result = runner.invoke(app, ["validate", str(no_split), "--data", str(tmp_path / "d.csv")])
    assert result.exit_code == 2 and "not complete" in result.output


@pytest.mark.slow
def test_compare_on_real_possessions(shared_data, tmp_path):
    """The real stratified sample (5 matchups, ~2,000 possessions each), a seeded 20% holdout:
    the unpooled matchup model is clearly worse (its rare-archetype coefficients stay near
    their N+(0, 5) prior), and partial pooling is at least as good as full pooling."""
    data = DataConfig(path=str(shared_data / "stratified_sample_10k.csv"), holdout_fraction=0.2, split_seed=7)
    dirs = {m: tmp_path / m for m in names.MODELS}
    for model, run_dir in dirs.items():
        train(RunConfig(model=model, data=data, sampler=SamplerConfig(seed=1)), run_dir)
    t = compare_runs(list(dirs.values())).table.set_index("model")
    assert t.loc["matchup", "verdict"] == "worse"
    assert t.loc["matchup", "elpd_diff"] > 2 * t.loc["matchup", "se_diff"]
    assert t.loc["hierarchical", "verdict"] in ("best", "within noise")
    assert t.loc["hierarchical", "holdout_mse"] < t.loc["matchup", "holdout_mse"]


def test_cli_season_split_train_then_validate(tmp_path):
    """Train on two seasons, score the third, as the original project did with 2022-23."""
    data, _ = simulate_season(6_000, model="simplified", seed=5)
    seasons = np.array(["2020-21", "2021-22", "2022-23"])[np.arange(len(data)) % 3]
    path = tmp_path / "seasons.csv"
    data.to_frame("label").assign(season=seasons).to_csv(path, index=False)
    run_dir = tmp_path / "run"
    result = runner.invoke(
        app,
        [
            "train",
            "--model",
            "simplified",
            "--data",
            str(path),
            "--season",
            "2020-21,2021-22",
            "--seed",
            "1",
            "--no-progress",
            "--out",
            str(run_dir),
        ],
    )
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["validate", str(run_dir), "--data", str(path), "--season", "2022-23"])
    assert result.exit_code == 0, result.output
    (report,) = RunDir(run_dir).validations()
    assert report["holdout"]["n"] == 2_000 and "seasons 2022-23" in report["holdout"]["source"]
    assert report["loo"]["n"] == 4_000
    held = load_possessions(path, seasons=("2022-23",))
    direct = score_holdout(load_posterior(run_dir), [held], "direct")
    assert report["holdout"]["mse"] == pytest.approx(direct.mse, rel=1e-12)
