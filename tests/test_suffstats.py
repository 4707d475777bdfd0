"""The streaming sufficient statistics equal the row-wise computation."""

from __future__ import annotations

import numpy as np

from lineup_numpyro import names
from lineup_numpyro.data.possessions import Possessions
from lineup_numpyro.data.suffstats import SuffStats, accumulate, from_file
from lineup_numpyro.models.simulate import simulate_season, write_season


def rowwise(data: Possessions) -> SuffStats:
    """The definition, one possession at a time."""
    stats = SuffStats.zeros()
    x = data.design()
    for i in range(len(data)):
        m = data.matchup[i]
        stats.n[m] += 1
        stats.xtx[m] += np.outer(x[i], x[i])
        stats.xty[m] += x[i] * data.y[i]
        stats.yty[m] += data.y[i] ** 2
    return stats


def assert_stats_equal(a: SuffStats, b: SuffStats) -> None:
    np.testing.assert_array_equal(a.n, b.n)
    for field in ("xtx", "xty", "yty"):
        np.testing.assert_allclose(getattr(a, field), getattr(b, field), rtol=1e-12, atol=1e-9)


def test_batch_statistics_equal_rowwise():
    data, _ = simulate_season(3_000, seed=1, empty_matchups=3)
    stats = SuffStats.from_possessions(data)
    assert_stats_equal(stats, rowwise(data))
    assert stats.xtx.dtype == np.float64
    assert len(stats.empty_matchups()) == 3 and stats.total == 3_000


def test_streaming_pass_over_file_equals_rowwise(tmp_path):
    data, truth = simulate_season(2_500, seed=2)
    path = tmp_path / "season.csv"
    write_season(data, truth, path)
    streamed = from_file(path, chunksize=97)  # many chunks, one partial
    assert_stats_equal(streamed, rowwise(data))


def test_accumulate_is_order_free():
    data, _ = simulate_season(1_000, seed=3)
    halves = [
        Possessions(data.y[s], data.matchup[s], data.z_off[s], data.z_def[s], None, "x")
        for s in (slice(500, None), slice(0, 500))
    ]
    assert_stats_equal(accumulate(halves), SuffStats.from_possessions(data))


def test_design_row_layout():
    data, _ = simulate_season(5, seed=4)
    x = data.design()
    assert x.shape == (5, names.N_FEATURES)
    np.testing.assert_array_equal(x[:, 0], 1.0)
    np.testing.assert_array_equal(x[:, 1:9], data.z_off)
    np.testing.assert_array_equal(x[:, 9:], -data.z_def)
