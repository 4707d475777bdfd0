"""JAX's persistent compilation cache, on by default: where it lives, that concurrent runs share
a cold cache safely, and that a second run on other data of the same shape compiles nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lineup_numpyro.inference.runtime import CACHE_ENV, compilation_cache_dir

ROOT = Path(__file__).resolve().parents[1]


def test_the_cache_lives_in_the_users_cache_directory_unless_moved_or_off(monkeypatch, tmp_path):
    monkeypatch.delenv(CACHE_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert compilation_cache_dir() == tmp_path / "xdg" / "lineup-numpyro" / "jax"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert compilation_cache_dir() == Path.home() / ".cache" / "lineup-numpyro" / "jax"
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "elsewhere"))
    assert compilation_cache_dir() == tmp_path / "elsewhere"
    for off in ("off", "OFF", "0", "none"):
        monkeypatch.setenv(CACHE_ENV, off)
        assert compilation_cache_dir() is None


def _train(data: Path, out: Path, cache: Path | str, model: str = "matchup") -> subprocess.Popen:
    cmd = [sys.executable, str(ROOT / "cli.py"), "train", "--model", model, "--data", str(data)]
    cmd += ["--chains", "2", "--warmup", "60", "--draws", "60", "--seed", "3", "--no-progress", "--out", str(out)]
    env = {**os.environ, CACHE_ENV: str(cache)}
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=ROOT, env=env, text=True)


def _finish(proc: subprocess.Popen) -> None:
    _, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stderr[-3000:]


def _draws(run: Path) -> dict[str, np.ndarray]:
    import arviz as az

    post = az.from_netcdf(run / "posterior.nc").posterior
    return {v: post[v].values for v in post.data_vars}


def _entries(cache: Path) -> set[str]:
    return {p.name for p in cache.glob("*-cache")}


def test_concurrent_runs_share_a_cold_cache_and_a_second_data_set_compiles_nothing(tmp_path, simulated_season):
    """Three trainings start at once on an empty cache: all finish with the same draws as a run
    without the cache. A run on other data of the same shape (the outcomes shuffled: other
    statistics, the same touched cells) then finds every program in the cache: it adds no entry."""
    season = simulated_season(3_000, "matchup", seed=4)
    other = tmp_path / "shuffled.csv"
    frame = pd.read_csv(season)
    frame["outcome"] = np.random.default_rng(0).permutation(frame["outcome"].to_numpy())
    frame.to_csv(other, index=False)
    cache = tmp_path / "cache"
    runs = [tmp_path / f"run{k}" for k in range(3)]
    for proc in [_train(season, run, cache) for run in runs]:
        _finish(proc)
    _finish(_train(season, tmp_path / "uncached", "off"))
    reference = _draws(tmp_path / "uncached")
    for run in runs:
        for var, values in _draws(run).items():
            np.testing.assert_array_equal(values, reference[var], err_msg=f"{run.name} {var}")
    assert _entries(cache), "nothing was cached"
    before = _entries(cache)
    _finish(_train(other, tmp_path / "other", cache))
    assert _entries(cache) == before  # nothing new compiled
    timing = json.loads((tmp_path / "other" / "diagnostics.json").read_text())["timing"]
    first = json.loads((runs[0] / "diagnostics.json").read_text())["timing"]
    assert timing["compile_s"] < first["compile_s"]


@pytest.mark.slow
def test_the_hierarchical_model_takes_its_whitening_as_an_argument(tmp_path, simulated_season):
    """The whitening is computed from the data: as an argument of the compiled programs, another
    season with the same touched cells reuses them."""
    cache = tmp_path / "cache"
    season = simulated_season(3_000, "matchup", seed=4)
    other = tmp_path / "shuffled.csv"
    frame = pd.read_csv(season)
    frame["outcome"] = np.random.default_rng(0).permutation(frame["outcome"].to_numpy())
    frame.to_csv(other, index=False)
    _finish(_train(season, tmp_path / "a", cache, "hierarchical"))
    before = _entries(cache)
    _finish(_train(other, tmp_path / "b", cache, "hierarchical"))
    assert _entries(cache) == before
