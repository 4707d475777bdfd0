"""Checkpointed sampling: chunks change nothing, and a run killed with SIGKILL resumes to the
same posterior, draw for draw, with nothing lost or duplicated."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import arviz as az
import numpy as np
import pytest
from typer.testing import CliRunner

from lineup_numpyro import files, names
from lineup_numpyro.cli import app
from lineup_numpyro.config import DataConfig, RunConfig, SamplerConfig
from lineup_numpyro.data.suffstats import from_file
from lineup_numpyro.inference.sampling import (
    Checkpoint,
    CheckpointError,
    chunk_sizes,
    fresh_kernel,
    sample_posterior,
    saved_draws,
)
from lineup_numpyro.models.model import get_model, make_likelihood
from lineup_numpyro.models.simulate import simulate_season, write_season
from lineup_numpyro.run.rundir import RunDir
from lineup_numpyro.run.train import resume, train

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


@pytest.fixture(scope="module")
def season(simulated_season) -> Path:
    return simulated_season(3_000, model="matchup", seed=4)


def _posterior(run_dir: Path) -> dict[str, np.ndarray]:
    idata = az.from_netcdf(str(run_dir / RunDir.POSTERIOR))
    return {k: idata.posterior[k].values for k in idata.posterior.data_vars} | {
        "diverging": idata.sample_stats["diverging"].values
    }


def test_chunk_sizes():
    assert chunk_sizes(SamplerConfig(draws=1000, checkpoint_every=250)) == [250] * 4
    assert chunk_sizes(SamplerConfig(draws=1000, checkpoint_every=300)) == [300, 300, 300, 100]
    assert chunk_sizes(SamplerConfig(draws=10, checkpoint_every=250)) == [10]
    with pytest.raises(ValueError, match="checkpoint_every"):
        SamplerConfig(checkpoint_every=0)


@pytest.mark.parametrize(
    "model", [m if m != "hierarchical" else pytest.param(m, marks=pytest.mark.slow) for m in names.MODELS]
)
def test_chunks_give_the_same_draws_as_one_piece(season, tmp_path, model):
    base = dict(chains=2, warmup=100, draws=120, seed=5)
    for every in (35, 1000):
        config = RunConfig(
            model=model, data=DataConfig(path=str(season)), sampler=SamplerConfig(**base, checkpoint_every=every)
        )
        train(config, tmp_path / str(every))
    chunked, whole = _posterior(tmp_path / "35"), _posterior(tmp_path / "1000")
    assert chunked.keys() == whole.keys()
    for k in whole:
        assert chunked[k].shape[:2] == (2, 120)
        np.testing.assert_array_equal(chunked[k], whole[k], err_msg=k)
    assert not (tmp_path / "35" / RunDir.CHECKPOINT).exists()  # removed once complete


@pytest.mark.parametrize(
    "chains,method",
    [
        pytest.param(2, "vectorized", marks=pytest.mark.slow),
        pytest.param(2, "sequential", marks=pytest.mark.slow),
        (1, "parallel"),
    ],
)
def test_chunks_for_every_chain_method(season, tmp_path, chains, method):
    """Chunking changes no draw however the chains run, and the chunks share one compiled
    program with the warm-up (checkpoint_every 30 against 80 warm-up iterations: 30, 30, 20)."""
    likelihood = make_likelihood("suffstats", stats=from_file(season))
    base = dict(chains=chains, warmup=80, draws=90, seed=2, chain_method=method)
    chunked = sample_posterior(
        get_model("simplified"),
        likelihood,
        SamplerConfig(**base, checkpoint_every=30),
        checkpoint_dir=tmp_path / "ckpt",
    )
    whole = sample_posterior(get_model("simplified"), likelihood, SamplerConfig(**base, checkpoint_every=90))
    assert chunked.chain_method == method
    for k in whole.samples:
        assert chunked.samples[k].shape[:2] == (chains, 90)
        np.testing.assert_array_equal(chunked.samples[k], whole.samples[k], err_msg=k)
    for k in whole.stats:
        np.testing.assert_array_equal(chunked.stats[k], whole.stats[k], err_msg=k)
    config = SamplerConfig(**base, checkpoint_every=30)
    _, structure = fresh_kernel(get_model("simplified"), likelihood, config, method)
    saved = Checkpoint(tmp_path / "ckpt", config).chunks(structure)
    assert len(saved) == 3
    assert [c.compile_s for c in saved] == [0.0, 0.0, 0.0]  # compiled during the warm-up
    assert chunked.timing.compile_s > 0
    # continuing after the first chunk, with a kernel set up afresh, changes nothing either
    for name in (Checkpoint.chunk_name(1), Checkpoint.chunk_name(2)):
        (tmp_path / "ckpt" / name).unlink()
    resumed = sample_posterior(
        get_model("simplified"),
        likelihood,
        SamplerConfig(**base, checkpoint_every=30),
        checkpoint_dir=tmp_path / "ckpt",
    )
    for k in whole.samples:
        np.testing.assert_array_equal(resumed.samples[k], whole.samples[k], err_msg=k)


def _start(season: Path, run_dir: Path, every: int, draws: int) -> subprocess.Popen:
    cmd = [
        sys.executable,
        str(ROOT / "cli.py"),
        "train",
        "--model",
        "matchup",
        "--data",
        str(season),
        "--chains",
        "2",
        "--warmup",
        "150",
        "--draws",
        str(draws),
        "--seed",
        "8",
        "--checkpoint-every",
        str(every),
        "--no-progress",
        "--out",
        str(run_dir),
    ]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=ROOT)


def _kill_when(proc: subprocess.Popen, ready, timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if proc.poll() is not None:
            pytest.fail(
                f"training ended (exit {proc.returncode}) before it could be killed: "
                f"{proc.stderr.read().decode()[-2000:]}"
            )
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("training never reached the point to kill it at")
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL


def _uninterrupted(season: Path, tmp_path: Path, draws: int) -> dict[str, np.ndarray]:
    config = RunConfig(
        model="matchup",
        data=DataConfig(path=str(season)),
        sampler=SamplerConfig(chains=2, warmup=150, draws=draws, seed=8, checkpoint_every=draws),
    )
    train(config, tmp_path / "uninterrupted")
    return _posterior(tmp_path / "uninterrupted")


def test_kill_during_sampling_then_resume(season, tmp_path):
    run_dir, draws, every = tmp_path / "run", 200, 40
    proc = _start(season, run_dir, every, draws)
    ckpt = run_dir / RunDir.CHECKPOINT
    _kill_when(proc, lambda: (ckpt / Checkpoint.chunk_name(2)).exists())

    # killed: the run says so (its process is gone), nothing reads as done, and the saved chunks are whole
    assert RunDir(run_dir).status()["state"] == "stopped"
    assert not (run_dir / RunDir.POSTERIOR).exists() and not (run_dir / RunDir.DIAGNOSTICS).exists()
    sampler = RunConfig.from_dict(RunDir(run_dir).record()["config"]).sampler
    warm, saved = saved_draws(ckpt, sampler)
    assert warm and 3 * every <= saved < draws
    result = runner.invoke(app, ["summary", str(run_dir)])
    assert result.exit_code == 1 and "not complete" in result.output
    assert f"warm-up and {saved:,} of {draws:,} draws per chain" in result.output and "--resume" in result.output

    result = runner.invoke(app, ["train", "--resume", str(run_dir)])
    assert result.exit_code == 0, result.output
    assert RunDir(run_dir).status()["state"] == "complete" and not ckpt.exists()
    resumed, whole = _posterior(run_dir), _uninterrupted(season, tmp_path, draws)
    for k in whole:
        assert resumed[k].shape[:2] == (2, draws)  # nothing lost, nothing duplicated
        np.testing.assert_array_equal(resumed[k], whole[k], err_msg=k)
    diag = json.loads((run_dir / RunDir.DIAGNOSTICS).read_text())
    assert diag["draws"] == draws and diag["timing"]["sampling_s"] > 0


@pytest.mark.slow
def test_kill_during_warmup_then_resume(season, tmp_path):
    run_dir, draws = tmp_path / "run", 200
    proc = _start(season, run_dir, 50, draws)
    _kill_when(proc, lambda: (run_dir / RunDir.STATUS).exists())  # sampling set up, warm-up under way
    assert not (run_dir / RunDir.CHECKPOINT / Checkpoint.WARMUP).exists()
    assert RunDir(run_dir).status()["state"] == "stopped"
    report = resume(run_dir)
    assert report["draws"] == draws
    resumed, whole = _posterior(run_dir), _uninterrupted(season, tmp_path, draws)
    for k in whole:
        np.testing.assert_array_equal(resumed[k], whole[k], err_msg=k)


def test_resume_refuses_what_it_cannot_continue(season, tmp_path):
    config = RunConfig(
        model="simplified",
        data=DataConfig(path=str(season)),
        sampler=SamplerConfig(chains=2, warmup=50, draws=60, seed=1, checkpoint_every=20),
    )
    run_dir = tmp_path / "run"
    train(config, run_dir)
    result = runner.invoke(app, ["train", "--resume", str(run_dir)])
    assert result.exit_code == 2 and "already complete" in result.output
    result = runner.invoke(app, ["train", "--resume", str(run_dir), "--out", str(tmp_path / "x")])
    assert result.exit_code == 2 and "not both" in result.output
    result = runner.invoke(app, ["train"])
    assert result.exit_code == 2 and "--out DIR" in result.output

    # a checkpoint left by other sampler settings is not mixed into this run
    ckpt = Checkpoint(tmp_path / "ckpt", config.sampler)
    from lineup_numpyro.inference.sampling import Warmup

    ckpt.save_warmup(Warmup(state=None, chain_method="parallel", compile_s=0.0, warmup_s=0.0))
    with pytest.raises(CheckpointError, match="sampler settings"):
        Checkpoint(tmp_path / "ckpt", SamplerConfig(chains=2, warmup=50, draws=60, seed=2)).warmup_header()

    # the data changed under a stopped run
    RunDir(run_dir).set_status("running")
    smaller = tmp_path / "smaller.csv"
    data, truth = simulate_season(1_000, model="matchup", seed=4)
    write_season(data, truth, smaller)
    record = RunDir(run_dir).record()
    record["config"]["data"]["path"] = str(smaller)
    files.write_json(run_dir / RunDir.RUN_CONFIG, record)
    result = runner.invoke(app, ["train", "--resume", str(run_dir)])
    assert result.exit_code == 2 and "other data" in result.output
