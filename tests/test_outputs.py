"""A training run's directory: every file present, complete, under Stan names."""

from __future__ import annotations

import json

import arviz as az
import numpy as np
import pandas as pd
import pytest

from lineup_numpyro import files, names
from lineup_numpyro.config import DataConfig, RunConfig, SamplerConfig
from lineup_numpyro.errors import RunDirError
from lineup_numpyro.inference.diagnostics import convergence_problems
from lineup_numpyro.models.simulate import simulate_season, write_season
from lineup_numpyro.run.rundir import RunDir
from lineup_numpyro.run.train import train

QUICK = SamplerConfig(chains=2, warmup=200, draws=150, seed=1)
EMPTY = 2


@pytest.fixture(scope="module")
def season_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "season.csv"
    data, truth = simulate_season(6_000, model="matchup", seed=5, empty_matchups=EMPTY)
    write_season(data, truth, path)
    return path, data


@pytest.fixture(scope="module", params=names.MODELS)
def run(request, season_file, tmp_path_factory):
    path, data = season_file
    run_dir = tmp_path_factory.mktemp(request.param)
    config = RunConfig(model=request.param, data=DataConfig(path=str(path)), sampler=QUICK)
    with pytest.warns(UserWarning, match="no possessions"):
        report = train(config, run_dir, overwrite=True)
    return request.param, run_dir, report, data


def test_run_directory_is_complete(run):
    model, run_dir, _, _ = run
    for name in (RunDir.POSTERIOR, RunDir.COEFFICIENTS, RunDir.DIAGNOSTICS, RunDir.RUN_CONFIG, RunDir.STATUS):
        assert (run_dir / name).stat().st_size > 0, name
    assert RunDir(run_dir).status()["state"] == "complete"
    assert not list(run_dir.glob(".*.tmp")), "temporary files left behind"


def test_posterior_netcdf_has_stan_names_and_coords(run):
    model, run_dir, _, data = run
    idata = az.from_netcdf(run_dir / RunDir.POSTERIOR)
    assert set(idata.posterior.data_vars) == set(names.POSTERIOR_DIMS[model])
    for var, dims in names.POSTERIOR_DIMS[model].items():
        assert idata.posterior[var].dims == ("chain", "draw", *dims)
        assert idata.posterior[var].shape[:2] == (QUICK.chains, QUICK.draws)
    # coordinates in the numbering people read (names.py): matchup id 0-35, archetype 0-7
    if model != "simplified":
        assert list(idata.posterior.coords["matchup"].values) == list(range(36))
        assert idata.posterior.coords["matchup_label"].values[7] == "1_vs_1"
        # Stan's beta_off[8,5] is matchup id 7 (1_vs_1), archetype 4
        table = pd.read_csv(run_dir / RunDir.COEFFICIENTS).set_index("parameter")
        value = idata.posterior["beta_off"].sel(matchup=7, archetype=4).values.mean()
        assert table.loc["beta_off[8,5]", "mean"] == pytest.approx(value, rel=1e-5)
    assert list(idata.posterior.coords["archetype"].values) == list(range(8))
    for stat in ("diverging", "tree_depth", "n_steps", "lp", "step_size"):
        assert idata.sample_stats[stat].shape == (QUICK.chains, QUICK.draws)
    counts = np.bincount(data.matchup, minlength=36)
    np.testing.assert_array_equal(idata.constant_data["n_possessions"].values, counts)


def test_coefficients_csv(run):
    model, run_dir, _, data = run
    table = pd.read_csv(run_dir / RunDir.COEFFICIENTS)
    assert list(table.columns[:2]) == ["parameter", "mean"]
    assert list(table.columns[2:]) == [
        "sd",
        "5%",
        "50%",
        "95%",
        "r_hat",
        "ess_bulk",
        "ess_tail",
        "mcse_mean",
        "n_possessions",
        "no_data",
        "n_on_floor",
        "prior_width_ratio",
        "informed",
        "source",
        "matchup_id",
        "matchup_label",
        "archetype",
    ]
    n_params = sum(int(np.prod([len(names.COORDS[d]) for d in dims])) for dims in names.POSTERIOR_DIMS[model].values())
    assert len(table) == n_params
    assert (table["5%"] <= table["50%"]).all() and (table["50%"] <= table["95%"]).all()
    if model == "simplified":
        assert table["parameter"].tolist()[:3] == ["beta_0", "beta_off[1]", "beta_off[2]"]
        assert pd.isna(table["archetype"].iloc[0]) and table["archetype"].iloc[1:3].tolist() == [0, 1]
        assert not table["no_data"].any()
        return
    empty = np.flatnonzero(np.bincount(data.matchup, minlength=36) == 0)
    flagged = table[table["no_data"]]
    # beta_0 + 8 + 8 per empty matchup (and e_0, e_off, e_def for the hierarchical model)
    per_matchup = 17 if model == "matchup" else 34
    assert len(flagged) == per_matchup * len(empty)
    m = empty[0] + 1
    assert f"beta_0[{m}]" in set(flagged["parameter"]) and f"beta_off[{m},8]" in set(flagged["parameter"])
    row = table.set_index("parameter").loc[f"beta_def[{m},3]"]
    assert row["n_possessions"] == 0 and row["n_on_floor"] == 0
    # the numbering columns: Stan's 1-based index minus one
    assert row["matchup_id"] == m - 1 and row["matchup_label"] == names.MATCHUP_LABELS[m - 1] and row["archetype"] == 2
    assert table.set_index("parameter").loc["sigma", ["matchup_id", "archetype"]].isna().all()
    # how much data stands behind each coefficient: possessions with its archetype on the floor
    busy = int(np.argmax(np.bincount(data.matchup, minlength=36)))
    on_floor = int(np.count_nonzero(data.z_off[data.matchup == busy, 4]))
    assert table.set_index("parameter").loc[f"beta_off[{busy + 1},5]", "n_on_floor"] == on_floor
    unseen = table[table["parameter"].str.startswith("beta_") & (table["n_on_floor"] == 0)]
    if model == "matchup":
        assert (unseen["source"] == "prior").all() and not unseen["informed"].any()
    else:  # pooled from the matchups with data where that narrowed them, else still the prior
        assert ((unseen["source"] == "population") == unseen["informed"]).all()
        assert set(unseen["source"]) <= {"population", "prior"}
    if model == "matchup":  # an unseen coefficient's posterior is its prior: width ratio ~ 1 (300 draws)
        assert unseen["prior_width_ratio"].between(0.7, 1.3).all()


def test_diagnostics_json(run):
    model, run_dir, report, _ = run
    diag = json.loads((run_dir / RunDir.DIAGNOSTICS).read_text())
    assert diag == json.loads(json.dumps(report))
    for key in ("max_rhat", "min_ess_bulk", "min_ess_tail", "divergences", "max_tree_depth", "timing", "converged"):
        assert key in diag
    assert set(diag["divergences"]) == {"count", "percent"}
    assert set(diag["timing"]) == {"data_s", "compile_s", "warmup_s", "sampling_s", "total_s"}
    assert 0 < diag["timing"]["data_s"] < diag["timing"]["total_s"]
    table = pd.read_csv(run_dir / RunDir.COEFFICIENTS)
    assert diag["max_rhat"] == pytest.approx(table["r_hat"].max(), rel=1e-5)
    if model == "simplified":
        assert diag["matchups"] == []
    else:
        verdicts = {m["label"]: m["verdict"] for m in diag["matchups"]}
        assert len(verdicts) == 36 and list(verdicts.values()).count("no data") == EMPTY
    # the bar scales with the chains (2 here), and the verdict is its problems' absence
    assert diag["thresholds"]["ess_bulk_min"] == 200 and diag["thresholds"]["r_hat_max"] == 1.01
    assert diag["converged"] == (diag["problems"] == [])
    assert diag["converged"] == (
        diag["max_rhat"] <= 1.01 and diag["min_ess_bulk"] >= 200 and diag["divergences"]["count"] == 0
    )


def test_convergence_problems_name_the_binding_limit():
    assert convergence_problems(1.005, 450.0, 0, chains=4, draws=1000) == []
    # a small exploratory run is held to 100 per chain, not to 400
    assert convergence_problems(1.008, 210.0, 0, chains=2, draws=100) == []
    # too few draws: says so, and how many would do at this efficiency (150 / 200 draws -> 0.75;
    # 1.1 x 200 / 0.75 / 2 chains = 147)
    (ess,) = convergence_problems(1.008, 150.0, 0, chains=2, draws=100)
    assert "ESS_bulk 150 < 200 (100 per chain)" in ess and "--draws 147" in ess
    # chains that disagree, and divergences, each with its own advice
    rhat, ess = convergence_problems(1.05, 40.0, 0, chains=4, draws=1000, where="beta_0[3]")
    assert "R-hat 1.050 > 1.01 (beta_0[3])" in rhat and "--warmup" in rhat and "ESS_bulk 40 < 400" in ess
    (div,) = convergence_problems(1.0, 4000.0, 7, chains=4, draws=1000, target_accept=0.9)
    assert div.startswith("7 divergent transitions") and "--target-accept (now 0.9)" in div
    (one,) = convergence_problems(None, 500.0, 0, chains=1, draws=1000)
    assert "one chain" in one and "--chains 2" in one


def test_run_record(run):
    model, run_dir, _, _ = run
    record = json.loads((run_dir / RunDir.RUN_CONFIG).read_text())
    assert record["config"]["model"] == model
    assert record["config"]["sampler"]["draws"] == QUICK.draws
    assert record["versions"]["numpyro"].startswith("0.")
    assert record["data"]["matchups_with_data"] == 36 - EMPTY


def test_existing_run_is_not_clobbered(run):
    model, run_dir, _, _ = run
    with pytest.raises(RunDirError, match="--overwrite"):
        train(RunConfig(model=model, sampler=QUICK), run_dir)
    assert RunDir(run_dir).status()["state"] == "complete"


def test_failed_run_is_marked_failed(tmp_path, monkeypatch):
    import lineup_numpyro.run.train as train_module

    def broken(*args, **kwargs):
        raise RuntimeError("sampler exploded")

    monkeypatch.setattr(train_module, "sample_posterior", broken)
    data, truth = simulate_season(500, model="simplified", seed=1)
    write_season(data, truth, tmp_path / "d.csv")
    with pytest.raises(RuntimeError, match="exploded"):
        train(
            RunConfig(model="simplified", data=DataConfig(path=str(tmp_path / "d.csv")), sampler=QUICK),
            tmp_path / "run",
        )
    status = RunDir(tmp_path / "run").status()
    assert status["state"] == "failed" and "exploded" in status["error"]
    assert not (tmp_path / "run" / RunDir.COEFFICIENTS).exists()


def test_atomic_path_leaves_nothing_on_error(tmp_path):
    target = tmp_path / "out.txt"
    with pytest.raises(ZeroDivisionError):
        with files.atomic_path(target) as tmp:
            tmp.write_text("half")
            raise ZeroDivisionError
    assert not target.exists() and list(tmp_path.iterdir()) == []
