"""The run directory has one owner (issue 16, points 1-3): a new run leaves nothing of an old
one, validations never replace each other, resume cannot be fooled, a live run cannot be
written into, damaged checkpoints and full disks end in one line, and Ctrl-C says how to go on."""

from __future__ import annotations

import errno
import json
import os
import socket
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import lineup_numpyro.inference.sampling as sampling
from lineup_numpyro import files
from lineup_numpyro.cli import app
from lineup_numpyro.config import DataConfig, RunConfig, SamplerConfig
from lineup_numpyro.data.suffstats import SuffStats
from lineup_numpyro.errors import CheckpointError, RunDirError
from lineup_numpyro.inference.sampling import Checkpoint, fresh_kernel, sample_posterior, saved_draws
from lineup_numpyro.models.model import get_model, make_likelihood
from lineup_numpyro.models.simulate import simulate_season, write_season
from lineup_numpyro.run.rundir import RunDir
from lineup_numpyro.run.train import resume, train

runner = CliRunner()
TINY = SamplerConfig(chains=2, warmup=60, draws=60, seed=1, checkpoint_every=20)
TINY_ARGS = [
    "--model",
    "simplified",
    "--chains",
    "2",
    "--warmup",
    "60",
    "--draws",
    "60",
    "--seed",
    "1",
    "--checkpoint-every",
    "20",
    "--no-progress",
]


@pytest.fixture(scope="module")
def season(simulated_season) -> Path:
    return simulated_season(1_500, model="simplified", seed=6)


def _config(season: Path, **data) -> RunConfig:
    return RunConfig(model="simplified", data=DataConfig(path=str(season), **data), sampler=TINY)


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def _stopped(run: RunDir) -> None:
    """Make a finished run look like one whose process died mid-way."""
    run.set_status("running")
    status = json.loads((run / RunDir.STATUS).read_text())
    files.write_json(run / RunDir.STATUS, {**status, "pid": _dead_pid()})


def test_overwrite_leaves_nothing_of_the_earlier_run(season, tmp_path):
    run = RunDir(tmp_path / "run")
    train(_config(season), run.path)
    leftovers = [
        run / RunDir.PRODUCTION,
        run / RunDir.TRUE_PARAMS,
        run.validation_path("old"),
        run / RunDir.REPORT / "report.html",
        run / RunDir.LEGACY_VALIDATION,
    ]
    for path in leftovers:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("{}")
    with pytest.raises(RunDirError, match="--overwrite"):
        train(_config(season), run.path)
    train(_config(season), run.path, overwrite=True)
    assert not any(p.exists() for p in leftovers)
    assert run.validations() == [] and run.status()["state"] == "complete"
    # --overwrite replaces runs only: it never empties a directory that holds something else
    other = tmp_path / "photos"
    other.mkdir()
    (other / "holiday.jpg").write_text("x")
    with pytest.raises(RunDirError, match="not a run directory|no run"):
        train(_config(season), other, overwrite=True)
    assert (other / "holiday.jpg").exists()


def test_the_data_path_is_recorded_absolute(season, tmp_path, monkeypatch):
    monkeypatch.chdir(season.parent)
    train(_config(Path(season.name)), tmp_path / "run")
    record = RunDir(tmp_path / "run").record()
    assert record["config"]["data"]["path"] == str(season.resolve())
    monkeypatch.chdir(tmp_path)  # validate from elsewhere still finds the data
    result = runner.invoke(
        app, ["validate", str(tmp_path / "run"), "--data", str(season)]
    )  # LOO reads the training file
    assert result.exit_code == 0, result.output


def test_validations_are_kept_per_data_set_and_labelled(season, tmp_path):
    other = tmp_path / "other.csv"
    data, truth = simulate_season(800, model="simplified", seed=9)
    write_season(data, truth, other)
    run_dir = tmp_path / "run"
    train(_config(season, holdout_fraction=0.2), run_dir)
    for extra in ([], ["--data", str(other), "--no-loo"], ["--data", str(season), "--no-loo"]):
        result = runner.invoke(app, ["validate", str(run_dir), *extra])
        assert result.exit_code == 0, result.output
    run = RunDir(run_dir)
    reports = run.validations()
    assert len(reports) == 3 and len(list((run / RunDir.VALIDATION).glob("*.json"))) == 3
    assert [r["in_sample"] for r in reports] == [False, False, True]
    assert "loo" in reports[0] and "loo" not in reports[1]
    result = runner.invoke(app, ["report", str(run_dir)])
    assert result.exit_code == 0, result.output
    html = (run / RunDir.REPORT / "report.html").read_text()
    assert html.count("Held-out data") == 2 and html.count("In-sample data") == 1
    assert str(other) in html


def test_resume_refuses_changed_data_with_the_same_rows(season, tmp_path):
    copy = tmp_path / "season.csv"
    copy.write_text(season.read_text())
    run_dir = tmp_path / "run"
    train(_config(copy), run_dir)
    _stopped(RunDir(run_dir))
    frame = pd.read_csv(copy)
    frame.loc[10, "outcome"] = frame.loc[10, "outcome"] + 1.0  # same number of rows, other data
    frame.to_csv(copy, index=False)
    with pytest.raises(CheckpointError, match="other data"):
        resume(run_dir)


def test_resume_refuses_changed_options(season, tmp_path):
    run_dir = tmp_path / "run"
    train(_config(season), run_dir)
    _stopped(RunDir(run_dir))
    result = runner.invoke(app, ["train", "--resume", str(run_dir), "--draws", "600"])
    assert result.exit_code == 2 and "draws 600 (the run has 60)" in result.output
    result = runner.invoke(app, ["train", "--resume", str(run_dir), "--model", "matchup", "--seed", "1"])
    assert (
        result.exit_code == 2 and "model 'matchup'" in result.output and "seed" not in result.output.split("differ:")[1]
    )
    result = runner.invoke(app, ["train", "--resume", str(run_dir), "--first-mass", "noise"])
    assert result.exit_code == 2 and "first_mass 'noise' (the run has 'identity')" in result.output
    result = runner.invoke(app, ["train", "--resume", str(run_dir), "--mass-estimate", "gradient"])
    assert result.exit_code == 2 and "mass_estimate 'gradient' (the run has 'variance')" in result.output
    # the same settings typed again (the data path relative from its folder) are fine
    result = runner.invoke(app, ["train", "--resume", str(run_dir), "--draws", "60", "--platform", "cpu"])
    assert result.exit_code == 0, result.output


def _checkpointed(tmp_path: Path) -> tuple[Path, object, object]:
    data, _ = simulate_season(1_000, model="simplified", seed=2)
    likelihood = make_likelihood("suffstats", SuffStats.from_possessions(data))
    directory = tmp_path / "ckpt"
    sample_posterior(get_model("simplified"), likelihood, TINY, checkpoint_dir=directory)
    return directory, likelihood, fresh_kernel(get_model("simplified"), likelihood, TINY, "parallel")[1]


def test_checkpoints_hold_arrays_only_and_damage_is_named(tmp_path):
    directory, likelihood, structure = _checkpointed(tmp_path)
    assert sorted(p.name for p in directory.iterdir()) == [
        "chunk_0000.npz",
        "chunk_0001.npz",
        "chunk_0002.npz",
        "warmup.npz",
    ]
    ckpt = Checkpoint(directory, TINY)
    assert ckpt.warmup_header()["versions"]["numpyro"].startswith("0.")
    assert len(ckpt.chunks(structure)) == 3 and ckpt.damaged() is None
    # a truncated chunk and an empty one: counted as missing, named, and refused on resume
    first = directory / Checkpoint.chunk_name(1)
    first.write_bytes(first.read_bytes()[:300])
    (directory / Checkpoint.chunk_name(2)).write_bytes(b"")
    assert saved_draws(directory, TINY) == (True, 20)
    assert ckpt.damaged() == first
    with pytest.raises(CheckpointError, match="chunk_0001.npz: a damaged checkpoint file.*delete it"):
        sample_posterior(get_model("simplified"), likelihood, TINY, checkpoint_dir=directory)
    # a file that would need pickle to load is refused, not executed
    np.savez(first, **{Checkpoint.HEADER: np.array("{}")}, evil=np.array([object()], dtype=object))
    with pytest.raises(CheckpointError, match="damaged"):
        ckpt.chunks(structure)


def test_a_checkpoint_from_before_a_setting_existed_resumes_with_the_runs_value(tmp_path):
    """A warm-up saved before a sampler setting was added (its header lacks it) continues with
    the run's value of it; a header that has the setting at another value is refused."""
    directory, likelihood, _ = _checkpointed(tmp_path)
    whole = sample_posterior(get_model("simplified"), likelihood, TINY, checkpoint_dir=directory).samples
    (directory / Checkpoint.chunk_name(2)).unlink()
    path = directory / Checkpoint.WARMUP

    def rewrite(change) -> None:  # noqa: ANN001
        with np.load(path) as z:
            arrays = {k: z[k] for k in z.files}
        header = json.loads(str(arrays[Checkpoint.HEADER]))
        change(header["settings"])
        np.savez(path, **{**arrays, Checkpoint.HEADER: np.array(json.dumps(header))})

    rewrite(lambda settings: settings.pop("mass_estimate"))
    resumed = sample_posterior(get_model("simplified"), likelihood, TINY, checkpoint_dir=directory).samples
    for name in whole:
        np.testing.assert_array_equal(resumed[name], whole[name])
    rewrite(lambda settings: settings.update(mass_estimate="gradient"))
    with pytest.raises(CheckpointError, match="sampler settings"):
        sample_posterior(get_model("simplified"), likelihood, TINY, checkpoint_dir=directory)
    # only settings added later may be missing: a header without its seed is refused
    rewrite(lambda settings: (settings.update(mass_estimate="variance"), settings.pop("seed")))
    with pytest.raises(CheckpointError, match="sampler settings"):
        sample_posterior(get_model("simplified"), likelihood, TINY, checkpoint_dir=directory)


def test_a_live_run_cannot_be_written_into(season, tmp_path):
    run = RunDir(tmp_path / "run")
    train(_config(season), run.path)
    lock = run / RunDir.LOCK
    lock.write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": "now"}))
    with pytest.raises(RunDirError, match=f"in use by process {os.getpid()}"):
        train(_config(season), run.path, overwrite=True)
    assert run.status()["state"] == "complete" and (run / RunDir.POSTERIOR).exists()
    lock.write_text(json.dumps({"pid": _dead_pid(), "host": socket.gethostname()}))  # stale: taken over
    (run / f".{RunDir.POSTERIOR}.{_dead_pid()}.tmp").write_text("orphan of a killed process")
    train(_config(season), run.path, overwrite=True)
    assert not lock.exists() and not list(run.path.glob(".*.tmp"))


def test_status_tells_a_dead_run_from_a_live_one(season, tmp_path):
    run = RunDir(tmp_path / "run")
    train(_config(season), run.path)
    result = runner.invoke(app, ["status", str(run.path), "--json"])
    assert json.loads(result.output)["state"] == "complete"
    run.set_status("running")  # this process: alive
    assert run.status()["state"] == "running"
    _stopped(run)
    info = json.loads(runner.invoke(app, ["status", str(run.path), "--json"]).output)
    assert info["state"] == "stopped" and info["resumable"] is True
    assert runner.invoke(app, ["status", str(tmp_path / "none"), "--get", "state"]).output.strip() == "none"


def test_ctrl_c_says_what_was_saved_and_how_to_resume(season, tmp_path, monkeypatch):
    original = sampling.Checkpoint.save_chunk

    def interrupted_second_chunk(self, index, chunk):
        if index == 1:  # Ctrl-C while the second chunk of draws is being kept
            raise KeyboardInterrupt
        return original(self, index, chunk)

    monkeypatch.setattr(sampling.Checkpoint, "save_chunk", interrupted_second_chunk)
    run_dir = tmp_path / "run"
    result = runner.invoke(app, ["train", "--data", str(season), "--out", str(run_dir), *TINY_ARGS])
    assert result.exit_code == 130
    assert "interrupted; saved: warm-up and 20 of 60 draws per chain" in result.output
    assert f"resume with: lineup-numpyro train --resume {run_dir}" in result.output
    assert RunDir(run_dir).status()["state"] == "interrupted"
    monkeypatch.setattr(sampling.Checkpoint, "save_chunk", original)
    result = runner.invoke(app, ["train", "--data", str(season), "--out", str(run_dir), *TINY_ARGS])
    assert result.exit_code == 2 and f"--resume {run_dir}" in result.output  # not --overwrite
    result = runner.invoke(app, ["train", "--resume", str(run_dir)])
    assert result.exit_code == 0, result.output


def test_a_full_disk_ends_in_one_line_and_no_running_status(season, tmp_path, monkeypatch):
    import xarray as xr

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(xr.DataTree, "to_netcdf", full)  # posterior.nc (run/outputs.py)
    run_dir = tmp_path / "run"
    result = runner.invoke(app, ["train", "--data", str(season), "--out", str(run_dir), *TINY_ARGS])
    assert result.exit_code == 2 and result.exception.__class__ is SystemExit
    assert f"{run_dir / RunDir.POSTERIOR}: cannot write (No space left on device)" in result.output
    assert "Traceback" not in result.output
    assert RunDir(run_dir).status()["state"] == "failed"


def test_a_built_in_season_run_is_scored_only_on_the_season_it_was_fitted_to(season, tmp_path):
    run = RunDir(tmp_path / "run")
    train(RunConfig(model="simplified", sampler=TINY), run.path)  # the built-in season, simulated
    result = runner.invoke(app, ["validate", str(run.path), "--data", str(season), "--no-loo"])
    assert result.exit_code == 0, result.output
    record = run.record()  # as if another version of the code simulated another season
    record["data"]["digest"]["suffstats"] = "0" * 64
    files.write_json(run / RunDir.RUN_CONFIG, record)
    result = runner.invoke(app, ["validate", str(run.path), "--data", str(season), "--no-loo"])
    assert result.exit_code == 2 and "simulates another built-in season" in result.output
