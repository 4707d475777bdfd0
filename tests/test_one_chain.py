"""`--chains 1` works for every model and every command that reads a run (issue 16, point 4):
R-hat cannot be computed from one chain, so it is reported as not available and the run as not
checked, never as a crash ("Encountered all NA values") or as converged."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from lineup_numpyro.cli import app
from lineup_numpyro.run.rundir import RunDir

runner = CliRunner()
ONE = ["--chains", "1", "--warmup", "150", "--draws", "150", "--no-progress"]
OPPONENT = "Nikola Jokic, Aaron Gordon, Jamal Murray, Michael Porter Jr., Christian Braun"
LINEUP = "Amen Thompson, Alperen Sengun, Jabari Smith Jr., Jalen Green, Tari Eason"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One-chain runs of the three models on a small simulated season with a holdout split."""
    work = tmp_path_factory.mktemp("one_chain")
    season = work / "season.csv"
    assert runner.invoke(app, ["simulate", "--out", str(season), "--possessions", "3000", "--seed", "5"]).exit_code == 0
    out = {}
    for model in ("simplified", "matchup", "hierarchical"):
        out[model] = work / model
        result = runner.invoke(
            app, ["train", "--model", model, "--data", str(season), "--holdout", "0.2", "--out", str(out[model]), *ONE]
        )
        assert result.exit_code == 0, result.output
        assert "R-hat needs at least 2" in result.output, result.output
    return out


@pytest.mark.parametrize("model", ["simplified", "matchup", "hierarchical"])
def test_one_chain_reports_rhat_as_not_available(runs, model):
    diag = json.loads((runs[model] / RunDir.DIAGNOSTICS).read_text())
    assert diag["chains"] == 1 and diag["max_rhat"] is None and diag["max_rhat_parameter"] is None
    assert diag["converged"] is False and diag["min_ess_bulk"] > 0
    assert all(m["verdict"] in ("not checked", "no data") for m in diag["matchups"])
    result = runner.invoke(app, ["summary", str(runs[model])])
    assert result.exit_code == 0, result.output
    assert "n/a (one chain)" in result.output and "not converged" in result.output


def test_every_command_reads_a_one_chain_run(runs, tmp_path, shared_data):
    matchup, pooled = str(runs["matchup"]), str(runs["simplified"])
    result = runner.invoke(app, ["validate", matchup])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["compare", pooled, matchup])
    assert result.exit_code == 0, result.output
    assert "no run converged" in result.output and "n/a (one chain)" in result.output
    result = runner.invoke(app, ["report", matchup])
    assert result.exit_code == 0, result.output
    assert "R-hat needs at least 2 chains" in (runs["matchup"] / "report" / "report.html").read_text()
    # a pooled fit that was never checked cannot serve as the fallback of an export
    result = runner.invoke(app, ["export", matchup, "--pooled", pooled, "--out", str(tmp_path / "c.csv")])
    assert result.exit_code == 2 and "n/a (one chain)" in result.output
    result = runner.invoke(
        app, ["lineup", "value", pooled, "--lineup", LINEUP, "--opponent", OPPONENT, "--tables", str(shared_data)]
    )
    assert result.exit_code == 0, result.output
    assert "convergence was not checked" in result.output
