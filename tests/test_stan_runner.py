"""Running the reference Stan files (lineup_numpyro.stan.runner): draws, timings, and httpstan's fit cache."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from lineup_numpyro.config import Priors, SamplerConfig
from lineup_numpyro.data.suffstats import SuffStats
from lineup_numpyro.models.simulate import simulate_season
from lineup_numpyro.stan import runner as stan_runner


def test_sampling_time_is_the_wall_time_shared_by_phase():
    timing = stan_runner.StanTiming(
        build_s=1.0,
        sample_wall_s=100.0,
        chain_warmup_s=(30.0, 30.0, 40.0, 20.0),
        chain_sampling_s=(20.0, 20.0, 25.0, 15.0),
    )
    assert timing.sampling_s == pytest.approx(100.0 * 80.0 / 200.0)
    assert timing.warmup_s + timing.sampling_s == pytest.approx(100.0)


def test_elapsed_times_read_from_a_fit_file(tmp_path):
    lines = [
        {"version": 1, "topic": "logger", "values": ["info:Iteration: 100 / 100 [100%]  (Sampling)"]},
        {"version": 1, "topic": "sample", "values": {"lp__": -3.2}},
        {"version": 1, "topic": "logger", "values": ["info: Elapsed Time: 0.123 seconds (Warm-up)"]},
        {"version": 1, "topic": "logger", "values": ["info:               4.5e-02 seconds (Sampling)"]},
        {"version": 1, "topic": "logger", "values": ["info:               0.168 seconds (Total)"]},
    ]
    path = tmp_path / "fit.jsonlines.gz"
    with gzip.open(path, "wt") as fh:
        fh.writelines(json.dumps(line) + "\n" for line in lines)
    assert stan_runner._elapsed_times(path) == (0.123, 0.045)
    with gzip.open(path, "wt") as fh:
        fh.write(json.dumps(lines[0]) + "\n")
    with pytest.raises(RuntimeError, match="no elapsed times"):
        stan_runner._elapsed_times(path)


def test_stan_data_per_form():
    rows, _ = simulate_season(300, seed=1)
    loop = stan_runner.stan_data("matchup", "reference", rows=rows)
    assert loop["N"] == 300 and loop["matchup"].min() >= 1 and "M" in loop
    assert "matchup" not in stan_runner.stan_data("simplified", "reference", rows=rows)
    fast = stan_runner.stan_data("matchup", "fast", stats=SuffStats.from_possessions(rows))
    assert fast["xtx"].shape == (36, 17, 17) and fast["n"].sum() == 300
    assert (loop["prior_beta_0"], loop["prior_beta"], loop["prior_sigma"]) == (5.0, 5.0, 2.5)
    assert "prior_tau" not in loop  # each file gets the priors its model has, as data
    chosen = stan_runner.stan_data(
        "hierarchical", "fast", stats=SuffStats.from_possessions(rows), priors=Priors(tau=0.5)
    )
    assert chosen["prior_tau"] == 0.5 and chosen["prior_mu_loc"] == -4.0 and "prior_beta" not in chosen
    with pytest.raises(ValueError, match="needs sufficient statistics"):
        stan_runner.stan_data("matchup", "fast", rows=rows)
    with pytest.raises(ValueError, match="no Stan file"):
        stan_runner.stan_file("simplified", "fast")


def test_sample_stan_draws_timings_and_no_cached_fit():
    """Two identical calls both sample (httpstan would otherwise serve the second from its
    cache), return draws shaped (chains, draws), and leave no fit files behind."""
    rows, _ = simulate_season(400, model="simplified", seed=2)
    data = stan_runner.stan_data("simplified", "reference", rows=rows)
    sampler = SamplerConfig(chains=2, warmup=80, draws=50, seed=4)
    before = stan_runner.fit_files()
    fits = [stan_runner.sample_stan("simplified", "reference", data, sampler) for _ in range(2)]
    assert stan_runner.fit_files() - before == set()
    for fit in fits:
        assert fit.samples["beta_off"].shape == (2, 50, 8) and fit.samples["sigma"].shape == (2, 50)
        assert fit.stats["n_steps"].shape == (2, 50) and (fit.stats["n_steps"] >= 1).all()
        t = fit.timing
        assert len(t.chain_warmup_s) == len(t.chain_sampling_s) == 2
        assert all(s > 0 for s in t.chain_sampling_s) and 0 < t.sampling_s < t.sample_wall_s
    # same seed, same draws: the second call really ran, and ran the same chains
    np.testing.assert_array_equal(fits[0].samples["sigma"], fits[1].samples["sigma"])


def test_finished_chains_read_back_from_fit_files():
    """What a stopped benchmark run recovers: each finished chain's draws, exactly."""
    rows, _ = simulate_season(300, model="simplified", seed=3)
    data = stan_runner.stan_data("simplified", "reference", rows=rows)
    sampler = SamplerConfig(chains=2, warmup=60, draws=40, seed=5)
    full = stan_runner.sample_stan("simplified", "reference", data, sampler, keep_files=True)
    try:
        assert len(full.files) == 2
        one = stan_runner.finished_chains("simplified", "reference", data, sampler, [full.files[0]])
    finally:
        for f in full.files:
            Path(f).unlink(missing_ok=True)
    assert one.samples["beta_off"].shape == (1, 40, 8) and one.stats["n_steps"].shape == (1, 40)
    matches = [c for c in range(2) if np.array_equal(one.samples["sigma"][0], full.samples["sigma"][c])]
    assert len(matches) == 1
    c = matches[0]
    np.testing.assert_array_equal(one.samples["beta_off"][0], full.samples["beta_off"][c])
    np.testing.assert_array_equal(one.stats["n_steps"][0], full.stats["n_steps"][c])
    (sampling,) = one.timing.chain_sampling_s  # Stan's own clock of that chain
    assert sampling in full.timing.chain_sampling_s and one.timing.sampling_s == pytest.approx(sampling)
