"""Simulation-based calibration (analysis/sbc.py): exact simulation of the statistics, prior
draws, the uniformity check, and a calibrated run that passes next to a miscalibrated one
(a wrong prior in the fit: the negative control) that fails."""

from __future__ import annotations

import dataclasses
import json
import os

import numpy as np
import pytest
from typer.testing import CliRunner

from lineup_numpyro.analysis import sbc
from lineup_numpyro.analysis.sbc import (
    SBCConfig,
    SBCProgress,
    coefficient_matrix,
    draw_prior,
    ecdf_test,
    run_sbc,
    simulate_stats,
    write_sbc,
)
from lineup_numpyro.cli import app
from lineup_numpyro.config import Priors, SamplerConfig, model_sampler
from lineup_numpyro.data.suffstats import SuffStats
from lineup_numpyro.errors import RunDirError
from lineup_numpyro.models.simulate import simulate_season

runner = CliRunner()


@pytest.fixture(scope="module")
def season():
    data, _ = simulate_season(1_500, model="matchup", seed=1, empty_matchups=3)
    return data, SuffStats.from_possessions(data)


def test_simulated_statistics_have_the_distribution_of_simulated_rows(season):
    """X'y and y'y drawn from X'X alone against the same drawn from rows y = X b + sigma eps:
    equal means (z-scores within what 1,000 comparisons allow) and standard deviations."""
    data, design = season
    rng = np.random.default_rng(0)
    b, sigma = coefficient_matrix(draw_prior("matchup", Priors(), rng), pooled=False), 0.7
    x, reps = data.design(), 300
    rows, exact = [], []
    for _ in range(reps):
        y = np.sum(x * b[data.matchup], axis=1) + sigma * rng.standard_normal(len(x))
        s = SuffStats.from_possessions(dataclasses.replace(data, y=y))
        rows.append(np.concatenate([s.xty.ravel(), s.yty]))
        s = simulate_stats(design, b, sigma, rng)
        exact.append(np.concatenate([s.xty.ravel(), s.yty]))
    rows, exact = np.array(rows), np.array(exact)
    varies = rows.std(axis=0) > 0
    assert np.all(exact.std(axis=0)[~varies] < 1e-9)  # the same entries are fixed (untouched cells)
    z = (rows.mean(0) - exact.mean(0))[varies] / np.sqrt((rows.var(0) + exact.var(0))[varies] / reps)
    assert np.abs(z).max() < 4.5, np.abs(z).max()  # ~600 comparisons: P(max |z| > 4.5) ~ 0.4%
    ratio = exact.std(axis=0)[varies] / rows.std(axis=0)[varies]
    assert np.all(np.abs(np.log(ratio)) < 5 / np.sqrt(reps)), ratio  # sd of log ratio ~ 1/sqrt(reps)


def test_prior_draws_follow_models_md():
    rng = np.random.default_rng(1)
    draws = [draw_prior("hierarchical", Priors(), rng) for _ in range(4_000)]
    tau = np.array([d["tau_off"] for d in draws])
    mu = np.array([d["mu_off"] for d in draws])
    assert np.all(tau >= 0) and abs(tau.mean() - np.sqrt(2 / np.pi)) < 0.03  # N+(0, 1)
    assert abs(mu.mean() + 4) < 0.1 and abs(mu.std() - 2) < 0.1  # N(-4, 2)
    d = draws[0]
    np.testing.assert_allclose(d["beta_off"], np.exp(d["mu_off"] + d["tau_off"] * d["e_off"]))
    pooled = draw_prior("simplified", Priors(beta=2.0), rng)
    assert pooled["beta_off"].shape == (8,) and np.all(pooled["beta_off"] >= 0)
    assert coefficient_matrix(pooled, pooled=True).shape == (36, 17)


def test_uniform_ranks_pass_and_skewed_ranks_fail():
    rng = np.random.default_rng(2)
    u = {f"q{i}": rng.uniform(size=200) for i in range(20)}
    assert ecdf_test(u, 0.05) == []
    u["narrow"] = rng.beta(3, 3, size=200)  # an overdispersed posterior: ranks pile up in the middle
    u["biased"] = rng.beta(2, 1, size=200)
    assert ecdf_test(u, 0.05) == ["narrow", "biased"]


SHORT = SamplerConfig(warmup=150, draws=150)


@pytest.mark.parametrize("kernel", ["nuts", "chees"])
def test_sbc_of_the_pooled_model_passes_and_writes_its_files(season, tmp_path, kernel):
    _, design = season
    # chees needs a longer warm-up than NUTS: after 150 iterations its chains had not met
    # (R-hat up to 3 on this design); after 400 they had, as after 500 (R-hat <= 1.013)
    sampler = model_sampler("simplified", warmup=150 if kernel == "nuts" else 400, draws=150, kernel=kernel)
    result = run_sbc(SBCConfig(model="simplified", fits=30, sampler=sampler, batch=4, seed=3), design)
    assert result.passed, result.failed
    assert result.divergences.shape == (30,)
    assert set(result.ranks) >= {"beta_0", "beta_off[8]", "sigma", "log_lik"}
    assert all(r.min() >= 0 and r.max() <= 99 for r in result.ranks.values())
    write_sbc(result, tmp_path)
    summary = json.loads((tmp_path / "sbc.json").read_text())
    assert summary["passed"] and summary["fits"] == 30 and summary["quantities"] == 19
    assert (tmp_path / "ranks.csv").read_text().count("\n") == 31
    assert (tmp_path / "ecdf.png").stat().st_size > 10_000


@pytest.mark.parametrize("kernel", ["nuts", "chees"])
def test_negative_control_fails_and_exits_non_zero(season, tmp_path, kernel):
    """Simulated with beta ~ N+(0, 5), fitted with N+(0, 0.5): the command must say so."""
    data, _ = season
    path = tmp_path / "season.csv"
    data.to_frame("integer").to_csv(path, index=False)
    result = runner.invoke(
        app,
        ["sbc", "--model", "simplified", "--fits", "20", "--warmup", "150", "--draws", "150", "--data", str(path)]
        + ["--fit-prior", "beta=0.5", "--fit-prior", "beta_0=0.5", "--out", str(tmp_path / "sbc"), "--kernel", kernel],
    )
    assert result.exit_code == 1, result.output
    assert "FAILED" in result.output
    summary = json.loads((tmp_path / "sbc" / "sbc.json").read_text())
    assert not summary["passed"] and len(summary["failed"]) >= 5


def test_a_stopped_sbc_goes_on_from_its_saved_fits(season, tmp_path):
    """progress.jsonl keeps each finished batch: after a kill (here: the file cut after the first
    batch, mid-line), the same call runs only the missing fits and gives an unbroken run's ranks;
    other settings in the same directory are refused."""
    _, design = season
    config = SBCConfig(model="simplified", fits=6, sampler=SamplerConfig(warmup=100, draws=100), batch=2, seed=7)
    unbroken = run_sbc(config, design, out=tmp_path / "a")
    assert unbroken.fits_run == 6
    progress = tmp_path / "a" / SBCProgress.NAME
    header, first, *_ = progress.read_text().splitlines()
    progress.write_text(header + "\n" + first + "\n" + first[: len(first) // 2])  # killed while writing
    resumed = run_sbc(config, design, out=tmp_path / "a")
    assert resumed.fits_run == 4
    for name in unbroken.ranks:
        np.testing.assert_array_equal(resumed.ranks[name], unbroken.ranks[name], err_msg=name)
    np.testing.assert_array_equal(resumed.divergences, unbroken.divergences)
    assert run_sbc(config, design, out=tmp_path / "a").fits_run == 0  # all saved: nothing to fit
    chees = dataclasses.replace(config, sampler=dataclasses.replace(config.sampler, kernel="chees"))
    for other in (dataclasses.replace(config, seed=8), dataclasses.replace(config, batch=3), chees):
        with pytest.raises(RunDirError, match="another SBC run"):
            run_sbc(other, design, out=tmp_path / "a")


def test_a_progress_file_from_before_a_new_setting_resumes_at_its_default(season, tmp_path):
    """A run saved before SamplerConfig.kernel existed (its header lacks it) was a NUTS run: the
    same command goes on from it; with the new setting at another value it is refused."""
    _, design = season
    config = SBCConfig(model="simplified", fits=4, sampler=SamplerConfig(warmup=100, draws=100), batch=2, seed=7)
    out = tmp_path / "old"
    out.mkdir()
    header = json.loads(json.dumps(SBCProgress(out, config, design).header))
    del header["sbc"]["sampler"]["kernel"]
    (out / SBCProgress.NAME).write_text(json.dumps(header) + "\n")
    assert run_sbc(config, design, out=out).fits_run == 4
    chees = dataclasses.replace(config, sampler=dataclasses.replace(config.sampler, kernel="chees"))
    with pytest.raises(RunDirError, match="another SBC run"):
        run_sbc(chees, design, out=out)


@pytest.mark.filterwarnings("ignore:os.fork:RuntimeWarning")  # Ray starts its processes from this one
def test_sbc_through_a_local_ray_cluster_gives_the_same_ranks(season, tmp_path, monkeypatch):
    """Each batch is a Ray task (a fresh worker process, JAX set up there); the ranks are those
    of the same run in this process, fit for fit, even when a task's worker dies on its first
    try (Ray runs it again; the other batch's result is kept)."""
    _, design = season
    config = SBCConfig(model="simplified", fits=4, sampler=SamplerConfig(warmup=100, draws=100), batch=2, seed=5)
    here = run_sbc(config, design)
    killed, task = tmp_path / "killed", sbc._ray_batch

    def dies_once(config, design, first, size, platform):  # shipped to the worker by value
        if first == 2 and not killed.exists():
            killed.touch()
            os._exit(1)  # the worker process is lost, as on a machine that goes away
        return task(config, design, first, size, platform)

    monkeypatch.setattr(sbc, "_ray_batch", dies_once)
    there = run_sbc(config, design, ray_address="local", out=tmp_path / "sbc")
    assert killed.exists()
    assert here.ranks.keys() == there.ranks.keys()
    for name in here.ranks:
        np.testing.assert_array_equal(here.ranks[name], there.ranks[name], err_msg=name)
    np.testing.assert_array_equal(here.divergences, there.divergences)
    assert (tmp_path / "sbc" / SBCProgress.NAME).read_text().count("\n") == 3  # header and both batches
