"""`report`: the HTML report and its figures, for each model."""

from __future__ import annotations

import html
import warnings

import pytest
from typer.testing import CliRunner

from lineup_numpyro import names
from lineup_numpyro.analysis.comparison import compare_runs, write_comparison
from lineup_numpyro.analysis.report import REPORT, write_report
from lineup_numpyro.analysis.validation import validate_run
from lineup_numpyro.cli import app
from lineup_numpyro.config import DataConfig, RunConfig, SamplerConfig
from lineup_numpyro.run.rundir import RunDir
from lineup_numpyro.run.train import train

runner = CliRunner()
QUICK = SamplerConfig(chains=2, warmup=200, draws=150, seed=2)


@pytest.fixture(scope="module")
def season(simulated_season):
    return simulated_season(5_000, model="matchup", seed=8)


@pytest.fixture(
    scope="module", params=[m if m != "hierarchical" else pytest.param(m, marks=pytest.mark.slow) for m in names.MODELS]
)
def run(request, season, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp(request.param)
    data = DataConfig(path=str(season), holdout_fraction=0.2, split_seed=1)
    train(RunConfig(model=request.param, data=data, sampler=QUICK), run_dir, overwrite=True)
    return request.param, run_dir


def _png_ok(path) -> bool:
    data = path.read_bytes()
    return data.startswith(b"\x89PNG") and len(data) > 20_000


def test_report_renders_with_its_figures(run):
    model, run_dir = run
    validate_run(run_dir, loo=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing leaks to the user's terminal
        page = write_report(run_dir)
    assert page == run_dir / RunDir.REPORT / REPORT
    text = page.read_text()
    for section in ("Convergence", "Worst parameters", "Posterior predictive check", "Validation"):
        assert section in text
    pngs = {"rank.png", "ppc.png", "matchup_means.png"}
    if model != "simplified":
        pngs |= {"forest_off.png", "forest_def.png"}
        assert "Archetype effects per matchup" in text
    if model != "matchup":  # the pooled effects; the hierarchical model's league-wide ones and spreads
        pngs |= {"effects.png"}
        assert "<h2>Archetype effects</h2>" in text
    diag = RunDir(run_dir).load()[3]
    for problem in diag["problems"]:  # what kept it from converging, with its advice
        assert html.escape(problem) in text
    assert {p.name for p in (run_dir / RunDir.REPORT).glob("*.png")} == pngs
    for name in pngs:
        assert _png_ok(run_dir / RunDir.REPORT / name), name
        assert f"src='{name}'" in text
    assert not list(run_dir.glob(f".{RunDir.REPORT}*")), "temporary report directories left behind"


def test_labels_put_names_on_the_report_and_the_summary(run, tmp_path):
    model, run_dir = run
    labels = tmp_path / "labels.json"
    labels.write_text('{"archetypes": ["Wings", "Bigs", "OBigs", "Front", "Jugg", "3&D", "DefG", "PG"]}')
    result = runner.invoke(app, ["report", str(run_dir), "--labels", str(labels)])
    assert result.exit_code == 0, result.output
    text = (run_dir / RunDir.REPORT / REPORT).read_text()
    assert "Archetypes: 0 Wings, 1 Bigs" in text and "Parameter names are Stan" in text
    result = runner.invoke(app, ["summary", str(run_dir), "--labels", str(labels)])
    assert result.exit_code == 0, result.output
    assert any(f"{a} {n}" in result.output for a, n in enumerate(["Wings", "Bigs", "OBigs", "Front", "Jugg"]))
    bad = tmp_path / "bad.json"
    bad.write_text('{"archetypes": ["x"]}')
    result = runner.invoke(app, ["report", str(run_dir), "--labels", str(bad)])
    assert result.exit_code == 2 and "must be a list of 8" in result.output


def test_report_with_a_comparison_via_the_cli(season, tmp_path):
    dirs = []
    for model in ("simplified", "matchup"):
        dirs.append(tmp_path / model)
        train(RunConfig(model=model, data=DataConfig(path=str(season)), sampler=QUICK), dirs[-1])
    write_comparison(compare_runs(dirs), tmp_path / "cmp")
    result = runner.invoke(app, ["report", str(dirs[1]), "--comparison", str(tmp_path / "cmp")])
    assert result.exit_code == 0, result.output
    text = (dirs[1] / RunDir.REPORT / REPORT).read_text()
    assert "Model comparison" in text and "Validation" not in text  # no validation.json in this run


def test_report_refuses_incomplete_runs_and_missing_comparisons(run, tmp_path):
    _, run_dir = run
    result = runner.invoke(app, ["report", str(run_dir), "--comparison", str(tmp_path / "none")])
    assert result.exit_code == 2 and "no such comparison" in result.output
    running = tmp_path / "running"
    running.mkdir()
    RunDir(running).set_status("running")
    result = runner.invoke(app, ["report", str(running)])
    assert result.exit_code == 2 and "not complete" in result.output
    assert not (running / RunDir.REPORT).exists()
