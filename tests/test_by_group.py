"""train --by COLUMN: one batched run, a run directory per season (or team, ...), the same
posterior as separate --season (--where) runs."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from typer.testing import CliRunner

from lineup_numpyro.cli import app
from lineup_numpyro.files import write_json
from lineup_numpyro.models.simulate import simulate_season
from lineup_numpyro.run.by_group import group_dir_name
from lineup_numpyro.run.rundir import RunDir

runner = CliRunner()
SHORT = ["--warmup", "300", "--draws", "300", "--no-progress"]


@pytest.fixture(scope="module")
def seasons_file(tmp_path_factory):
    frames = []
    for seed, season in ((31, "2021-22"), (32, "2022-23"), (33, "2023/24")):
        data, _ = simulate_season(2_000, model="simplified", seed=seed)
        frame = data.to_frame("integer")
        frame["season"] = season
        frames.append(frame)
    path = tmp_path_factory.mktemp("seasons") / "three.csv"
    pd.concat(frames, ignore_index=True).to_csv(path, index=False)
    return path


def _posterior(run) -> dict[str, np.ndarray]:  # noqa: ANN001
    with xr.open_dataset(run / "posterior.nc", group="posterior") as ds:
        return {k: ds[k].values.reshape(-1, *ds[k].shape[2:]) for k in ("beta_0", "beta_off", "beta_def", "sigma")}


def test_by_season_gives_each_seasons_posterior(seasons_file, tmp_path):
    out = tmp_path / "by"
    result = runner.invoke(
        app,
        ["train", "--model", "simplified", "--data", str(seasons_file), "--by", "season", *SHORT, "--out", str(out)],
    )
    assert result.exit_code == 0, result.output
    index = pd.read_csv(out / "index.csv")
    assert list(index["season"]) == ["2021-22", "2022-23", "2023/24"]
    assert list(index["run"]) == ["2021-22", "2022-23", "2023_24"] == [group_dir_name(s) for s in index["season"]]
    assert list(index["possessions"]) == [2_000] * 3
    assert json.loads((out / "index.json").read_text())["by"] == "season"
    for run in index["run"]:
        assert json.loads((out / run / "status.json").read_text())["state"] == "complete"
        assert (out / run / "coefficients.csv").exists()
        diagnostics = json.loads((out / run / "diagnostics.json").read_text())
        assert diagnostics["chain_method"] == "batched"
        assert index.set_index("run").loc[run, "converged"] == diagnostics["converged"]
    record = json.loads((out / "2022-23" / "run_config.json").read_text())
    assert record["config"]["data"]["seasons"] == ["2022-23"] and record["data"]["n_possessions"] == 2_000

    alone = tmp_path / "alone"
    result = runner.invoke(
        app,
        [
            "train",
            "--model",
            "simplified",
            "--data",
            str(seasons_file),
            "--season",
            "2022-23",
            *SHORT,
            "--out",
            str(alone),
        ],
    )
    assert result.exit_code == 0, result.output
    a, b = _posterior(out / "2022-23"), _posterior(alone)
    for k in a:
        sd = b[k].std(axis=0)
        # two runs of 1,200 draws (ESS >= ~300 each): means within 5 sd x sqrt(2 / 300)
        assert np.all(np.abs(a[k].mean(axis=0) - b[k].mean(axis=0)) < 5 * sd * np.sqrt(2 / 300)), k


def test_by_needs_a_season_column(tmp_path):
    data, _ = simulate_season(500, model="simplified", seed=1)
    path = tmp_path / "plain.csv"
    data.to_frame("integer").to_csv(path, index=False)
    result = runner.invoke(
        app,
        ["train", "--model", "simplified", "--data", str(path), "--by", "season", *SHORT, "--out", str(tmp_path / "o")],
    )
    assert result.exit_code == 2
    assert "season" in result.output and "plain.csv" in result.output
    result = runner.invoke(app, ["train", "--data", str(path), "--by", "team", "--out", str(tmp_path / "o2")])
    assert result.exit_code == 2 and "no column 'team' to split or filter by" in result.output
    result = runner.invoke(app, ["train", "--data", str(path), "--by", "outcome", "--out", str(tmp_path / "o3")])
    assert result.exit_code == 2 and "'outcome' is part of the model's input" in result.output


@pytest.fixture(scope="module")
def teams_file(tmp_path_factory):
    """Two teams' possessions (simulated, different seeds) in one Parquet file, with a season."""
    frames = []
    for seed, team in ((41, "BOS"), (42, "DEN")):
        data, _ = simulate_season(1_500, model="simplified", seed=seed)
        frame = data.to_frame("integer")
        frame["team"] = team
        frame["season"] = "2022-23"
        frames.append(frame)
    path = tmp_path_factory.mktemp("teams") / "teams.parquet"
    pd.concat(frames, ignore_index=True).to_parquet(path, index=False)
    return path


def test_by_any_column_gives_runs_that_where_resume_and_validate_read_again(teams_file, tmp_path):
    out = tmp_path / "by"
    args = ["train", "--model", "simplified", "--data", str(teams_file), *SHORT, "--holdout", "0.2"]
    result = runner.invoke(app, [*args, "--by", "team", "--out", str(out)])
    assert result.exit_code == 0, result.output
    index = pd.read_csv(out / "index.csv")
    assert list(index["team"]) == ["BOS", "DEN"] and list(index["run"]) == ["BOS", "DEN"]
    # each group's run records how to read its rows again: its value of the column
    record = json.loads((out / "DEN" / "run_config.json").read_text())
    assert record["config"]["data"]["where"] == ["team", "DEN"] and record["config"]["data"]["seasons"] == []
    assert record["data"]["n_possessions"] == index.set_index("team").loc["DEN", "possessions"]
    assert 1_100 < record["data"]["n_possessions"] < 1_300  # about 80% of 1,500 (the holdout split)

    # the same group alone, with --where: the same posterior within Monte Carlo error
    alone = tmp_path / "alone"
    result = runner.invoke(app, [*args, "--where", "team=DEN", "--out", str(alone)])
    assert result.exit_code == 0, result.output
    a, b = _posterior(out / "DEN"), _posterior(alone)
    for k in a:
        sd = b[k].std(axis=0)
        assert np.all(np.abs(a[k].mean(axis=0) - b[k].mean(axis=0)) < 5 * sd * np.sqrt(2 / 300)), k

    # validate re-reads the group's held-out rows (DEN's only), resume knows the run is complete
    result = runner.invoke(app, ["validate", str(out / "DEN"), "--no-loo"])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "DEN" / "validation" / "holdout-split.json").read_text())
    assert report["holdout"]["n"] == 1_500 - record["data"]["n_possessions"]
    assert "(team DEN)" in report["training_data"]
    # resume: as if stopped, it keeps the group's filter and re-reads the group's rows to check them
    run = RunDir(out / "DEN")
    run.set_status("running")
    result = runner.invoke(app, ["train", "--resume", str(run.path), "--where", "team=BOS"])
    assert result.exit_code == 2 and "where ('team', 'BOS') (the run has ('team', 'DEN'))" in result.output
    record["config"]["data"]["where"] = ["team", "BOS"]  # as if the run had read BOS's rows
    write_json(run.path / RunDir.RUN_CONFIG, record)
    result = runner.invoke(app, ["train", "--resume", str(run.path)])
    assert result.exit_code == 2 and "other data" in result.output

    result = runner.invoke(app, [*args, "--by", "team", "--where", "team=DEN", "--out", str(tmp_path / "x")])
    assert result.exit_code == 2 and "drop --where" in result.output
