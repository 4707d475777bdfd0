"""Many fits in one compiled program (inference/batched.py): a lane is a chain of a single fit."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from lineup_numpyro.config import SamplerConfig
from lineup_numpyro.inference.batched import BatchSampler, sample_many
from lineup_numpyro.inference.sampling import sample_posterior
from lineup_numpyro.models.cells import Cells
from lineup_numpyro.models.model import DEFAULT_PRIORS, get_model, make_likelihood, plug_in_start
from lineup_numpyro.models.whitening import Whitening

# Short runs: vectorised and single programs round differently in the last bit, and NUTS's
# adaptation amplifies that over hundreds of iterations; over 10 + 5 it stays at rounding.
SHORT = SamplerConfig(chains=4, warmup=10, draws=5, seed=0)


def _close(a: dict, b: dict, tol: float = 1e-9) -> None:
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=tol, atol=tol, err_msg=k)


def test_each_fit_is_the_single_fit_with_its_seed(seasons):
    model = get_model("simplified")
    liks = [make_likelihood("suffstats", stats=s) for s in seasons]
    batch = sample_many(model, liks, SHORT, seeds=[7, 8, 9])
    assert batch.samples["beta_off"].shape == (3, 4, 5, 8)
    assert batch.stats["diverging"].shape == (3, 4, 5)
    for i, seed in enumerate((7, 8, 9)):
        one = sample_posterior(model, liks[i], SamplerConfig(chains=4, warmup=10, draws=5, seed=seed))
        _close({k: v[i] for k, v in batch.samples.items()}, one.samples)
        np.testing.assert_array_equal(batch.stats["n_steps"][i], one.stats["n_steps"])


def test_same_seed_same_draws_in_any_batch(seasons):
    """Twice the same call gives the same draws; a fit's draws do not depend on its neighbours
    (order of the fits, lanes per device: padding included)."""
    model = get_model("simplified")
    liks = [make_likelihood("suffstats", stats=s) for s in seasons]
    sampler = BatchSampler(model, SHORT)
    first = sampler.run(liks, [1, 2, 3])
    again = sampler.run(liks, [1, 2, 3])
    for k in first.samples:
        np.testing.assert_array_equal(first.samples[k], again.samples[k])
    reordered = BatchSampler(model, SHORT, lanes_per_device=5).run(liks[::-1], [3, 2, 1])
    _close({k: v[::-1] for k, v in reordered.samples.items()}, first.samples)


@pytest.mark.slow  # compiling the hierarchical lane program takes most of a minute
def test_hierarchical_fits_take_their_own_whitening(seasons):
    # fits share the sampled cells: here those touched in either season (a cell untouched in
    # one is sampled from what is then its exact conditional)
    cells = Cells(Cells.from_stats(seasons[0]).touched | Cells.from_stats(seasons[1]).touched)
    whitenings = [Whitening.from_stats(s) for s in seasons[:2]]
    liks = [make_likelihood("suffstats", stats=s) for s in seasons[:2]]
    batch = sample_many(
        get_model("hierarchical", cells, whitenings[0]),
        liks,
        SHORT,
        seeds=[4, 5],
        data=[{"whitening": w} for w in whitenings],
    )
    for i, seed in enumerate((4, 5)):
        one = sample_posterior(
            get_model("hierarchical", cells, whitenings[i]),
            liks[i],
            SamplerConfig(chains=4, warmup=10, draws=5, seed=seed),
        )
        _close({k: v[i] for k, v in batch.samples.items()}, one.samples)


def test_one_seed_per_fit_is_required(seasons):
    with pytest.raises(ValueError, match="one seed"):
        sample_many(get_model("simplified"), [make_likelihood("suffstats", stats=seasons[0])], SHORT, seeds=[1, 2])


def test_a_fit_from_the_plug_in_start_is_the_single_fit_from_it(seasons):
    """init 'plugin': each lane starts at its chain's row of its fit's start, with its fit's
    first inverse mass, as `sample_posterior` does with the same start."""
    cells = Cells(Cells.from_stats(seasons[0]).touched | Cells.from_stats(seasons[1]).touched)
    model = get_model("matchup", cells)
    config = SamplerConfig(chains=4, warmup=10, draws=5, seed=3, init="plugin")
    liks = [make_likelihood("suffstats", stats=s) for s in seasons[:2]]
    starts = [plug_in_start(s, cells, DEFAULT_PRIORS, 4, seed) for s, seed in zip(seasons[:2], (5, 6))]
    batch = BatchSampler(model, config).run(liks, [5, 6], starts=starts)
    plain = BatchSampler(model, replace(config, init="default")).run(liks, [5, 6])
    for i, seed in enumerate((5, 6)):
        one = sample_posterior(model, liks[i], replace(config, seed=seed), start=starts[i])
        _close({k: v[i] for k, v in batch.samples.items()}, one.samples)
        # the start matters: NumPyro's random start gives other draws
        assert not np.allclose(plain.samples["sigma"][i], one.samples["sigma"])
