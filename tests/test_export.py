"""Production coefficients: each matchup's own fit where trusted, the pooled fit otherwise."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from lineup_numpyro import names
from lineup_numpyro.analysis.export import production_coefficients
from lineup_numpyro.cli import app
from lineup_numpyro.config import DataConfig, RunConfig, SamplerConfig
from lineup_numpyro.inference.diagnostics import RHAT_MAX, ess_min
from lineup_numpyro.models.simulate import simulate_season, write_season
from lineup_numpyro.run.rundir import RunDir
from lineup_numpyro.run.train import train

runner = CliRunner()
# enough draws for ESS_bulk >= 400 (100 per chain) in most matchups; the pooled fallback runs as users run it
SAMPLERS = {"matchup": SamplerConfig(chains=4, warmup=300, draws=500, seed=3), "simplified": SamplerConfig(seed=3)}
EMPTY = 2


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    data, truth = simulate_season(30_000, model="matchup", seed=21, empty_matchups=EMPTY)
    write_season(data, truth, root / "season.csv")
    out = {}
    for model in ("simplified", "matchup"):
        config = RunConfig(model=model, data=DataConfig(path=str(root / "season.csv")), sampler=SAMPLERS[model])
        with pytest.warns(UserWarning, match="no possessions"):
            train(config, root / model)
        out[model] = root / model
    return out, np.bincount(data.matchup, minlength=names.N_MATCHUPS)


def test_each_matchup_from_its_own_fit_or_the_pooled_one(runs):
    dirs, counts = runs
    table = production_coefficients(dirs["matchup"], dirs["simplified"])
    assert list(table.columns[:2]) == ["parameter", "mean"]
    assert len(table) == names.N_MATCHUPS * names.N_FEATURES + 1 and table["parameter"].iloc[-1] == "sigma"
    own = pd.read_csv(dirs["matchup"] / RunDir.COEFFICIENTS).set_index("parameter")
    pooled = pd.read_csv(dirs["simplified"] / RunDir.COEFFICIENTS).set_index("parameter")
    verdicts = {
        v["matchup_id"] + 1: v for v in json.loads((dirs["matchup"] / RunDir.DIAGNOSTICS).read_text())["matchups"]
    }
    sources = table.dropna(subset=["matchup_id"]).groupby("matchup_id")["source"].agg(set)
    assert all(len(s) == 1 for s in sources)  # a matchup is taken whole from one run
    for _, row in table.dropna(subset=["matchup_id"]).iterrows():
        m = int(row["matchup_id"]) + 1  # Stan's index, as in the parameter names
        assert row["label"] == names.MATCHUP_LABELS[m - 1] and re.fullmatch(rf"beta_\w+\[{m}(,\d)?\]", row["parameter"])
        if counts[m - 1] == 0:
            assert row["source"] == "simplified" and row["reason"] == "no possessions in this matchup"
        if row["source"] == "matchup":
            assert verdicts[m]["verdict"] == "converged" and counts[m - 1] >= 200
            assert row["mean"] == pytest.approx(own.loc[row["parameter"], "mean"], rel=1e-12)
        else:
            name = row["parameter"]  # beta_0[m] -> beta_0, beta_off[m,a] -> beta_off[a]
            pooled_name = re.sub(r"\[\d+,", "[", name) if "," in name else re.sub(r"\[\d+\]", "", name)
            assert row["mean"] == pytest.approx(pooled.loc[pooled_name, "mean"], rel=1e-12)
    # every matchup that converged on enough possessions keeps its own fit (the run has no
    # divergent transition), and this short run's sampler gives many of them (how many varies
    # with the CPU's rounding: 16 of 34 on one machine, at least 20 on another)
    n_own = (sources.map(min) == "matchup").sum()
    assert json.loads((dirs["matchup"] / RunDir.DIAGNOSTICS).read_text())["divergences"]["count"] == 0
    eligible = sum(v["verdict"] == "converged" and counts[m - 1] >= 200 for m, v in verdicts.items())
    assert n_own == eligible >= 10


def test_too_few_possessions_and_divergences_fall_back(runs, tmp_path):
    dirs, counts = runs
    busiest = int(np.argmax(counts))
    table = production_coefficients(dirs["matchup"], dirs["simplified"], min_possessions=int(counts[busiest]) + 1)
    assert set(table["source"].iloc[:-1]) == {"simplified"}
    assert f"{counts[busiest]} possessions < {counts[busiest] + 1}" in set(table["reason"])
    diverged = tmp_path / "diverged"
    shutil.copytree(dirs["matchup"], diverged)
    diag = json.loads((diverged / RunDir.DIAGNOSTICS).read_text())
    diag["divergences"]["count"] = 3
    (diverged / RunDir.DIAGNOSTICS).write_text(json.dumps(diag))
    table = production_coefficients(diverged, dirs["simplified"])
    reasons = set(table.dropna(subset=["matchup_id"])["reason"])
    assert "the run had 3 divergent transitions" in reasons and set(table["source"].iloc[:-1]) == {"simplified"}


def test_force_keeps_unconverged_matchups_and_pooled_run_saying_so(runs, tmp_path):
    dirs, counts = runs
    diverged, pooled = tmp_path / "diverged", tmp_path / "pooled"
    shutil.copytree(dirs["matchup"], diverged)
    shutil.copytree(dirs["simplified"], pooled)
    for run, key, value in ((diverged, "divergences", {"count": 3, "percent": 0.15}), (pooled, "converged", False)):
        diag = json.loads((run / RunDir.DIAGNOSTICS).read_text())
        diag[key] = value
        (run / RunDir.DIAGNOSTICS).write_text(json.dumps(diag))
    # an unconverged pooled run is refused, and --force named as the way through
    result = runner.invoke(app, ["export", str(dirs["matchup"]), "--pooled", str(pooled)])
    assert result.exit_code == 2 and "--force" in result.output
    result = runner.invoke(
        app, ["export", str(diverged), "--pooled", str(pooled), "--force", "--out", str(tmp_path / "forced.csv")]
    )
    assert result.exit_code == 0, result.output
    table = pd.read_csv(tmp_path / "forced.csv").dropna(subset=["matchup_id"])
    own, fallback = table[table["source"] == "matchup"], table[table["source"] == "simplified"]
    # every matchup with data keeps its own fit, each row saying which check it failed ...
    assert set(own["matchup_id"]) == set(np.flatnonzero(counts >= 200))
    assert own["reason"].str.startswith("forced: the run had 3 divergent transitions").all()
    # ... and the empty ones fall back to a pooled run that says it did not converge
    assert len(fallback) and fallback["reason"].str.contains("forced: the pooled run did not converge").all()
    assert "--force" in result.output


def test_cli_export(runs, tmp_path):
    dirs, _ = runs
    result = runner.invoke(
        app, ["export", str(dirs["matchup"]), "--pooled", str(dirs["simplified"]), "--out", str(tmp_path / "prod.csv")]
    )
    assert result.exit_code == 0, result.output
    assert "matchups from the matchup run" in result.output and "no possessions" in result.output
    written = pd.read_csv(tmp_path / "prod.csv")
    assert len(written) == names.N_MATCHUPS * names.N_FEATURES + 1
    # the wrong kinds of run are refused, and nothing is written
    result = runner.invoke(app, ["export", str(dirs["simplified"]), "--pooled", str(dirs["simplified"])])
    assert result.exit_code == 2 and "matchup or hierarchical" in result.output
    result = runner.invoke(app, ["export", str(dirs["matchup"]), "--pooled", str(dirs["matchup"])])
    assert result.exit_code == 2 and "simplified run" in result.output
    assert not (dirs["simplified"] / RunDir.PRODUCTION).exists() and not (dirs["matchup"] / RunDir.PRODUCTION).exists()


def test_a_hierarchical_run_keeps_its_own_sparse_and_empty_matchups(runs, tmp_path):
    """Partial pooling is what sparse matchups are for: a converged hierarchical run exports its own
    coefficients for every matchup, empty ones included; the pooled run only where it did not converge."""
    dirs, counts = runs
    run = tmp_path / "hierarchical"
    config = RunConfig(
        model="hierarchical",
        data=DataConfig(path=str(dirs["matchup"].parent / "season.csv")),
        sampler=SamplerConfig(chains=4, warmup=300, draws=500, seed=3),
    )
    with pytest.warns(UserWarning, match="no possessions"):
        report = train(config, run)
    assert report["divergences"]["count"] == 0, report["divergences"]
    table = production_coefficients(run, dirs["simplified"]).dropna(subset=["matchup_id"])
    verdicts = {v["matchup_id"]: v for v in report["matchups"]}
    for m, rows in table.groupby("matchup_id"):
        converged = verdicts[m]["max_rhat"] <= RHAT_MAX and verdicts[m]["min_ess_bulk"] >= ess_min(4)
        assert set(rows["source"]) == {"hierarchical" if converged else "simplified"}, (m, verdicts[m])
    empty = list(np.flatnonzero(counts == 0))
    assert len(empty) == EMPTY
    own = table[table["matchup_id"].isin(empty)]
    assert (own["source"] == "hierarchical").all() and own["reason"].str.contains("partially pooled").all()
    # a hierarchical run with divergences falls back everywhere, saying why
    diag = json.loads((run / RunDir.DIAGNOSTICS).read_text())
    diag["divergences"]["count"] = 2
    (run / RunDir.DIAGNOSTICS).write_text(json.dumps(diag))
    table = production_coefficients(run, dirs["simplified"])
    assert set(table["source"].iloc[:-1]) == {"simplified"}
    assert "the run had 2 divergent transitions" in set(table["reason"])
