"""The simulated season looks like the real samples and keeps its true parameters."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lineup_numpyro import names
from lineup_numpyro.data.possessions import load_possessions
from lineup_numpyro.models.model import predict
from lineup_numpyro.models.simulate import (
    DEFAULT_POSSESSIONS,
    Truth,
    iter_season,
    simulate_season,
    truth_path,
    write_season_parquet,
)


@pytest.fixture(scope="module")
def season():
    return simulate_season()


def test_default_size_and_determinism(season):
    data, truth = season
    assert len(data) == DEFAULT_POSSESSIONS == 96_837
    again, _ = simulate_season()
    np.testing.assert_array_equal(data.y, again.y)


def test_z_columns_shaped_like_real_data(season, shared_data):
    data, _ = season
    real = pd.read_csv(shared_data / "quick_sample_10k.csv")
    real_z = real[list(names.Z_OFF + names.Z_DEF)].to_numpy()
    sim_z = np.concatenate([data.z_off, data.z_def], axis=1)
    real_nz, sim_nz = (real_z != 0).sum(axis=1).mean(), (sim_z != 0).sum(axis=1).mean()
    assert abs(sim_nz - real_nz) < 1.0  # ~7.4 of 16 columns non-zero per row
    # per-column presence within 0.1 of the real sample (rare archetypes stay rare)
    np.testing.assert_allclose((sim_z != 0).mean(axis=0), (real_z != 0).mean(axis=0), atol=0.1)
    lo, hi = np.percentile(sim_z[sim_z != 0], [1, 99])
    assert -8 < lo < -1 and 1 < hi < 10


def test_matchup_sizes_uneven(season):
    data, _ = season
    sizes = np.bincount(data.matchup, minlength=names.N_MATCHUPS)
    assert sizes.min() > 0 and sizes.max() / sizes.min() > 5


def test_empty_matchups_option():
    data, _ = simulate_season(5_000, empty_matchups=4, seed=1)
    assert (np.bincount(data.matchup, minlength=names.N_MATCHUPS) == 0).sum() == 4


@pytest.mark.parametrize("model", names.MODELS)
def test_truth_matches_model_and_round_trips(model):
    data, truth = simulate_season(2_000, model=model, seed=2)
    for var, dims in names.POSTERIOR_DIMS[model].items():
        assert np.shape(truth.params[var]) == tuple(len(names.COORDS[d]) for d in dims), var
    back = Truth.from_json(truth.to_json())
    for var in truth.params:
        np.testing.assert_array_equal(back.params[var], truth.params[var])
    # the outcome is the model's mean plus N(0, sigma) noise: the residuals' sd is sigma within
    # 4 standard errors (sd(s) ~ sigma / sqrt(2n)), their mean 0 within 4 sigma / sqrt(n)
    p = truth.params
    b = np.concatenate([np.asarray(p["beta_0"])[..., None], p["beta_off"], p["beta_def"]], axis=-1)
    residual = data.y - predict(b, data.matchup, data.design())
    sigma, n = float(p["sigma"]), len(data)
    assert abs(residual.std(ddof=1) - sigma) < 4 * sigma / np.sqrt(2 * n)
    assert abs(residual.mean()) < 4 * sigma / np.sqrt(n)


def test_iter_season_is_the_same_season_when_it_fits_one_chunk():
    data, truth = simulate_season(3_000, model="hierarchical", seed=5, empty_matchups=2)
    truth2, chunks = iter_season(3_000, model="hierarchical", seed=5, empty_matchups=2, chunk=3_000)
    (only,) = list(chunks)
    for field in ("y", "matchup", "z_off", "z_def"):
        np.testing.assert_array_equal(getattr(only, field), getattr(data, field))
    for var in truth.params:
        np.testing.assert_array_equal(truth2.params[var], truth.params[var])


def test_large_season_streams_to_parquet(tmp_path):
    truth, chunks = iter_season(25_000, seed=4, empty_matchups=3, chunk=10_000)
    path = tmp_path / "big.parquet"
    assert write_season_parquet(chunks, truth, path) == 25_000
    data = load_possessions(path)
    assert len(data) == 25_000 and truth_path(path).exists()
    sizes = np.bincount(data.matchup, minlength=names.N_MATCHUPS)
    assert (sizes == 0).sum() == 3  # the same matchups are empty in every chunk
    # chunks are fresh draws, not copies of the first
    assert not np.array_equal(data.y[:5_000], data.y[10_000:15_000])
    # the outcome still follows the truth: residual sd is sigma
    b = np.concatenate([truth.params["beta_0"][:, None], truth.params["beta_off"], truth.params["beta_def"]], axis=1)
    mean = np.einsum("ij,ij->i", data.design(), b[data.matchup])
    sigma = float(truth.params["sigma"])
    assert abs(np.std(data.y - mean) - sigma) < 5 * sigma / np.sqrt(2 * len(data))  # 5 standard errors
