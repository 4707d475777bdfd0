"""The command line, end to end: simulate -> train -> summary (bad input: test_data.py)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from lineup_numpyro.cli import app
from lineup_numpyro.data.possessions import load_possessions
from lineup_numpyro.models.simulate import truth_path
from lineup_numpyro.run.rundir import RunDir

runner = CliRunner()
QUICK = ["--chains", "2", "--warmup", "150", "--draws", "100", "--no-progress"]
CONSOLE_SCRIPT = Path(sys.executable).parent / "lineup-numpyro"


@pytest.fixture(scope="module")
def season(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "season.csv"
    result = runner.invoke(
        app, ["simulate", "--out", str(path), "--possessions", "3000", "--model", "simplified", "--seed", "3"]
    )
    assert result.exit_code == 0, result.output
    return path


def test_simulate_writes_data_and_truth(season, tmp_path):
    data = load_possessions(season)
    assert len(data) == 3000
    truth = json.loads(truth_path(season).read_text())
    assert truth["model"] == "simplified" and len(truth["params"]["beta_off"]) == 8
    again = tmp_path / "again.parquet"
    assert (
        runner.invoke(
            app, ["simulate", "--out", str(again), "--possessions", "3000", "--model", "simplified", "--seed", "3"]
        ).exit_code
        == 0
    )
    pd.testing.assert_frame_equal(pd.read_csv(season), pd.read_parquet(again), check_exact=False, rtol=1e-12)


def test_train_then_summary(season, tmp_path):
    run_dir = tmp_path / "run"
    result = runner.invoke(
        app, ["train", "--model", "simplified", "--data", str(season), "--out", str(run_dir), *QUICK]
    )
    assert result.exit_code == 0, result.output
    assert "max R-hat" in result.output and "beta_off[" in result.output
    result = runner.invoke(app, ["summary", str(run_dir)])
    assert result.exit_code == 0, result.output
    assert "divergences" in result.output and "largest" in result.output


def test_train_on_builtin_season(tmp_path):
    result = runner.invoke(app, ["train", "--model", "simplified", "--out", str(tmp_path / "r"), *QUICK])
    assert result.exit_code == 0, result.output
    record = json.loads((tmp_path / "r" / RunDir.RUN_CONFIG).read_text())
    assert record["data"]["n_possessions"] == 96_837 and "built-in" in record["data"]["source"]
    assert (tmp_path / "r" / "true_params.json").exists()


def test_summary_of_incomplete_run_says_so(tmp_path):
    RunDir(tmp_path).set_status("running")
    result = runner.invoke(app, ["summary", str(tmp_path)])
    assert result.exit_code == 1
    assert "running, not complete" in result.output


def test_summary_of_missing_run(tmp_path):
    result = runner.invoke(app, ["summary", str(tmp_path / "nothing")])
    assert result.exit_code == 2 and "no such run directory" in result.output


@pytest.mark.parametrize("command", ["train", "simulate", "summary"])
def test_help_is_complete(command):
    result = runner.invoke(app, [command, "--help"], terminal_width=200)
    assert result.exit_code == 0
    expected = {
        "train": [
            "--model",
            "--data",
            "--season",
            "--out",
            "--likelihood",
            "--chains",
            "--warmup",
            "--draws",
            "--seed",
            "--target-accept",
            "--max-tree-depth",
            "--dense-mass",
            "--chain-method",
            "--platform",
            "--overwrite",
        ],
        "simulate": ["--out", "--possessions", "--model", "--seed", "--empty-matchups"],
        "summary": ["RUN_DIR", "--top"],
    }[command]
    for option in expected:
        assert option.lower() in result.output.lower(), option


def test_console_script_runs_chains_in_parallel(season, tmp_path):
    """A fresh process: the CLI sets one XLA device per chain before JAX starts."""
    run_dir = tmp_path / "run"
    proc = subprocess.run(
        [
            str(CONSOLE_SCRIPT),
            "train",
            "--model",
            "simplified",
            "--data",
            str(season),
            "--out",
            str(run_dir),
            "--chains",
            "4",
            "--warmup",
            "100",
            "--draws",
            "100",
            "--no-progress",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    diag = json.loads((run_dir / RunDir.DIAGNOSTICS).read_text())
    assert diag["chain_method"] == "parallel" and diag["chains"] == 4
    assert "not enough devices" not in proc.stderr


@pytest.mark.skipif(
    any(importlib.util.find_spec(m) for m in ("jax_cuda12_plugin", "jax_cuda13_plugin")),
    reason="this machine has JAX's CUDA build: --platform gpu may work here",
)
@pytest.mark.parametrize("command", ["train", "sbc"])
def test_platform_gpu_without_a_gpu_is_a_clear_error_before_any_file(command, tmp_path):
    out = tmp_path / "out"
    args = [command, "--platform", "gpu", "--model", "simplified", "--out", str(out)]
    result = subprocess.run(  # its own process: JAX's backend is chosen once per process
        [sys.executable, "-m", "lineup_numpyro.cli", *args, *(["--fits", "2"] if command == "sbc" else [])],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("error: --platform gpu: no usable GPU") and "Traceback" not in result.stderr
    assert "--platform cpu" in result.stderr and not out.exists()


def test_init_plugin_trains_the_matchup_model_and_only_it(season, tmp_path):
    run = tmp_path / "plugin"
    short = ["--warmup", "150", "--draws", "100", "--no-progress"]
    result = runner.invoke(
        app, ["train", "--model", "matchup", "--data", str(season), "--init", "plugin", *short, "--out", str(run)]
    )
    assert result.exit_code == 0, result.output
    record = json.loads((run / "run_config.json").read_text())
    assert record["config"]["sampler"]["init"] == "plugin"
    assert json.loads((run / "diagnostics.json").read_text())["divergences"]["count"] == 0
    for model in ("simplified", "hierarchical"):
        result = runner.invoke(app, ["train", "--model", model, "--init", "plugin", "--out", str(tmp_path / model)])
        assert result.exit_code == 2 and "--init plugin starts from each matchup's own fit" in result.output
        assert not (tmp_path / model).exists()
    result = runner.invoke(
        app, ["train", "--data", str(season), "--by", "season", "--init", "laplace", "--out", str(tmp_path / "by")]
    )
    assert result.exit_code == 2 and "not --init laplace" in result.output


def test_the_python_api_gives_each_model_the_command_lines_sampler_defaults():
    """RunConfig(model=...) without a sampler has the model's defaults, as `train --model` does
    (the hierarchical model: target acceptance 0.97, no warm-up depth cap); a sampler given is
    taken as it is, and a saved run reads back the same."""
    from lineup_numpyro import names
    from lineup_numpyro.config import RunConfig, SamplerConfig, model_sampler

    hierarchical = RunConfig(model="hierarchical").sampler
    assert (hierarchical.target_accept, hierarchical.warmup_max_tree_depth) == (0.97, 10)
    assert RunConfig(model="matchup").sampler == RunConfig().sampler == SamplerConfig()
    for model in names.MODELS:
        config = RunConfig(model=model)
        assert config.sampler == model_sampler(model)
        assert RunConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    given = SamplerConfig(target_accept=0.8)
    assert RunConfig(model="hierarchical", sampler=given).sampler is given
    assert model_sampler("hierarchical", target_accept=0.99, chains=2) == SamplerConfig(
        target_accept=0.99, warmup_max_tree_depth=10, chains=2
    )
