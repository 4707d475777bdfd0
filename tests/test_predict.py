"""`predict`: a run's predictions for new possessions, chunk by chunk, flagged where prior."""

from __future__ import annotations

import arviz as az
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from lineup_numpyro import names
from lineup_numpyro.cli import app
from lineup_numpyro.config import DataConfig, RunConfig, SamplerConfig
from lineup_numpyro.lineups.players import find_tables, load_assignments, load_players, make_lineup
from lineup_numpyro.lineups.predict import predict_file
from lineup_numpyro.lineups.valuation import expected_points, load_fit, matchup
from lineup_numpyro.models.simulate import simulate_season, write_season
from lineup_numpyro.run import pointwise
from lineup_numpyro.run.train import train

runner = CliRunner()


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """A matchup run fitted to a season with two empty matchups, and new possessions from
    another seed (some in the empty matchups), with their outcome column dropped."""
    root = tmp_path_factory.mktemp("predict")
    data, truth = simulate_season(4_000, model="matchup", seed=3, empty_matchups=2)
    write_season(data, truth, root / "train.csv")
    with pytest.warns(UserWarning, match="no possessions"):
        train(
            RunConfig(
                model="matchup",
                data=DataConfig(path=str(root / "train.csv")),
                sampler=SamplerConfig(chains=2, warmup=150, draws=100, seed=1),
                log_likelihood=False,
            ),
            root / "run",
        )
    new, _ = simulate_season(900, model="matchup", seed=4)
    frame = new.to_frame("label").drop(columns=[names.OUTCOME])
    frame.to_csv(root / "new.csv", index=False)
    empty = np.flatnonzero(np.bincount(data.matchup, minlength=names.N_MATCHUPS) == 0)
    return root, new, empty


def test_predictions_are_the_posterior_predictive_chunk_by_chunk(fitted, monkeypatch):
    root, new, empty = fitted
    monkeypatch.setattr(pointwise, "CHUNK_ROWS", 256)  # several chunks, written as they come
    report = predict_file(root / "run", root / "new.csv", root / "pred.csv", draws=root / "draws.nc", seed=2)
    table = pd.read_csv(root / "pred.csv")
    assert report.n == len(table) == len(new) and list(table["row"]) == list(range(1, len(new) + 1))
    assert table["outcome"].isna().all()  # no outcome column: nothing observed
    np.testing.assert_array_equal(table["matchup_id"], new.matchup)
    # E[y]'s mean and interval are the posterior's, computed on all rows at once
    post = pointwise.posterior_of(az.from_netcdf(str(root / "run" / "posterior.nc")))
    rows = new
    mu = pointwise.predicted_means(post, rows)
    np.testing.assert_allclose(table["mean"], mu.mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(table["95%"], np.quantile(mu, 0.95, axis=0), rtol=1e-5)
    # y's predictive interval holds E[y]'s mean and is wider than E[y]'s interval by the noise sigma:
    # its width is about 2 x 1.645 x sqrt(sigma^2 + var E[y]) (10% slack: quantiles of 200 draws)
    assert ((table["predictive_5%"] < table["mean"]) & (table["mean"] < table["predictive_95%"])).all()
    expected = 2 * 1.645 * np.sqrt(np.mean(post.sigma**2) + mu.var(axis=0))
    ratio = (table["predictive_95%"] - table["predictive_5%"]) / expected
    assert 0.9 < ratio.median() < 1.1
    # the draws file: posterior_predictive (chain, draw, possession), no observed_data without outcomes
    draws = az.from_netcdf(str(root / "draws.nc"))
    assert draws.posterior_predictive["y"].shape == (2, 100, len(new)) and "observed_data" not in draws.groups()
    rep = draws.posterior_predictive["y"].values.reshape(200, -1)
    np.testing.assert_allclose(np.quantile(rep, 0.05, axis=0), table["predictive_5%"], rtol=1e-4, atol=1e-5)
    # possessions in a matchup the run never saw are flagged u, and counted
    in_empty = np.isin(new.matchup, empty)
    assert in_empty.any()
    assert table.loc[in_empty, "flags"].str.contains("u").all()
    assert not table.loc[~in_empty, "flags"].fillna("").str.contains("u").any()
    assert report.unseen == int(in_empty.sum())
    # an archetype on the floor in a cell the run never saw: named in 'uninformed'
    assert table.loc[in_empty, "uninformed"].fillna("").str.contains(r"(off|def) \d").any()


def test_cli_predict_and_its_errors(fitted, tmp_path):
    root, new, _ = fitted
    result = runner.invoke(
        app, ["predict", str(root / "run"), "--data", str(root / "new.csv"), "--out", str(tmp_path / "p.csv")]
    )
    assert result.exit_code == 0, result.output
    assert f"({len(new):,} possessions)" in result.output and "without training possessions" in result.output
    result = runner.invoke(
        app, ["predict", str(root / "run"), "--data", str(root / "new.csv"), "--out", str(tmp_path / "p.txt")]
    )
    assert result.exit_code == 2 and "ending in .csv" in result.output
    bad = tmp_path / "bad.csv"
    pd.read_csv(root / "new.csv").drop(columns=["z_off_3"]).to_csv(bad, index=False)
    result = runner.invoke(app, ["predict", str(root / "run"), "--data", str(bad), "--out", str(tmp_path / "q.csv")])
    assert result.exit_code == 2 and "z_off_3" in result.output
    assert not (tmp_path / "q.csv").exists()  # nothing half-written


def test_predict_from_lineups_matches_the_lineup_commands(fitted, shared_data, tmp_path):
    """Lineups in, predictions out, row for row, with the features and matchups `lineup` forms."""
    root, _, _ = fitted
    tables = find_tables(shared_data)
    players = load_players(tables["archetypes"], tables["darko"])
    assignments = load_assignments(tables["assignments"])
    ids = [int(i) for i in players.table.index[:40]]
    rng = np.random.default_rng(0)
    rows = [rng.choice(ids, size=10, replace=False) for _ in range(6)]
    frame = pd.DataFrame(rows, columns=[f"off_{k}" for k in range(1, 6)] + [f"def_{k}" for k in range(1, 6)])
    frame.to_csv(tmp_path / "lineups.csv", index=False)  # no points: possessions still to be played
    args = ["predict", str(root / "run"), "--lineups", str(tmp_path / "lineups.csv"), "--tables", str(shared_data)]
    result = runner.invoke(app, [*args, "--out", str(tmp_path / "p.csv")])
    assert result.exit_code == 0, result.output
    table = pd.read_csv(tmp_path / "p.csv")
    assert len(table) == len(rows) and table["outcome"].isna().all()
    fit = load_fit(root / "run")
    offense = [make_lineup(players, assignments, r[:5]) for r in rows]
    defense = [make_lineup(players, assignments, r[5:]) for r in rows]
    np.testing.assert_allclose(table["mean"], expected_points(fit, offense, defense).mean(axis=0), rtol=1e-5)
    np.testing.assert_array_equal(table["matchup_id"], [matchup(o, d) for o, d in zip(offense, defense)])
    # a player in no table stops it, naming the row and column (no silently dropped rows)
    frame.loc[2, "def_3"] = 999_999_999
    frame.to_csv(tmp_path / "bad.csv", index=False)
    result = runner.invoke(
        app,
        [
            "predict",
            str(root / "run"),
            "--lineups",
            str(tmp_path / "bad.csv"),
            "--tables",
            str(shared_data),
            "--out",
            str(tmp_path / "q.csv"),
        ],
    )
    assert result.exit_code == 2 and "def_3" in result.output and not (tmp_path / "q.csv").exists()
    result = runner.invoke(app, ["predict", str(root / "run"), "--out", str(tmp_path / "r.csv")])
    assert result.exit_code == 2 and "--lineups" in result.output
