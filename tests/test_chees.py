"""The chees kernel (inference/chees.py): jittered HMC with ChEES trajectory lengths, one fit per
program lane, for many fits at once."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from numpyro.infer.hmc_util import build_adaptation_schedule

from lineup_numpyro.config import model_sampler
from lineup_numpyro.errors import ConfigError
from lineup_numpyro.inference.batched import ChEESBatchSampler, batch_sampler, sample_many
from lineup_numpyro.inference.chees import van_der_corput, window_ends
from lineup_numpyro.inference.diagnostics import mcse_mean, rhat
from lineup_numpyro.inference.sampling import sample_posterior
from lineup_numpyro.models.model import get_model, make_likelihood

CHEES = model_sampler("simplified", kernel="chees", chains=4, warmup=300, draws=300, seed=0)


def test_jitter_is_the_base_2_halton_sequence():
    got = [float(van_der_corput(i)) for i in range(1, 9)]
    assert got == [0.5, 0.25, 0.75, 0.125, 0.625, 0.375, 0.875, 0.0625]


@pytest.mark.parametrize("warmup", [0, 15, 150, 500, 1000])
def test_mass_matrix_windows_are_stans_slow_windows(warmup):
    inside, ends = window_ends(warmup)
    schedule = build_adaptation_schedule(warmup) if warmup else []
    slow = schedule[1:-1]
    assert ends.sum() == len(slow)
    assert inside.sum() == sum(w.end - w.start + 1 for w in slow)
    for w in slow:
        assert ends[w.end] and inside[w.start : w.end + 1].all()


def test_chees_is_the_kernel_of_the_batched_engine_and_targets_0_8():
    assert model_sampler("hierarchical", kernel="chees").target_accept == 0.8
    assert model_sampler("hierarchical").target_accept == 0.97
    assert isinstance(batch_sampler(get_model("simplified"), CHEES), ChEESBatchSampler)


def test_a_single_fit_refuses_the_chees_kernel(seasons):
    with pytest.raises(ConfigError, match="many fits"):
        sample_posterior(get_model("simplified"), make_likelihood("suffstats", stats=seasons[0]), CHEES)


def test_chees_draws_agree_with_nuts_within_monte_carlo_error(seasons):
    """Same posterior (simplified model, three simulated seasons): every parameter's mean under
    chees and under NUTS differ by less than 4.5 combined MCSEs (a family-wise bound over the 54
    comparisons), with R-hat <= 1.02 and no divergence; and the chains of a fit share each
    iteration's number of leapfrog steps."""
    model = get_model("simplified")
    liks = [make_likelihood("suffstats", stats=s) for s in seasons]
    chees = sample_many(model, liks, CHEES, seeds=[11, 12, 13])
    nuts = sample_many(model, liks, replace(CHEES, kernel="nuts", target_accept=0.9), seeds=[11, 12, 13])
    assert not chees.stats["diverging"].any()
    steps = chees.stats["n_steps"]
    assert (steps == steps[:, :1]).all()  # a fit's chains move together
    # nothing adapts after warm-up: one step size, and steps ceil(u_t L) for one L (monotone in u_t)
    assert (chees.stats["step_size"] == chees.stats["step_size"][:, :, :1]).all()
    u = np.asarray([float(van_der_corput(CHEES.warmup + d + 1)) for d in range(CHEES.draws)])
    for f in range(3):
        assert (np.diff(steps[f, 0, np.argsort(u)]) >= 0).all()
        assert steps[f, 0].max() > steps[f, 0].min()
    for f in range(3):
        a, b = (_flat({k: v[f] for k, v in fit.samples.items()}) for fit in (chees, nuts))
        assert rhat(a).max() <= 1.02
        z = (a.mean(axis=(0, 1)) - b.mean(axis=(0, 1))) / np.sqrt(mcse_mean(a) ** 2 + mcse_mean(b) ** 2)
        assert np.abs(z).max() < 4.5, z


def _flat(samples: dict) -> np.ndarray:
    """(chains, draws, 18): beta_0, beta_off, beta_def and sigma side by side."""
    parts = [
        np.asarray(samples[k]).reshape(*samples[k].shape[:2], -1) for k in ("beta_0", "beta_off", "beta_def", "sigma")
    ]
    return np.concatenate(parts, axis=-1)


def test_one_chain_per_fit_and_a_dense_mass(seasons):
    """A fit of one chain is still a lane of its own (draws shaped (fits, 1, draws, ...)); a
    dense mass matrix is refused, the kernel adapting a diagonal one."""
    liks = [make_likelihood("suffstats", stats=s) for s in seasons]
    one = ChEESBatchSampler(get_model("simplified"), replace(CHEES, chains=1, warmup=20, draws=5)).run(liks, [1, 2, 3])
    assert one.samples["beta_off"].shape == (3, 1, 5, 8)
    assert np.isfinite(one.samples["beta_off"]).all() and not np.allclose(
        one.samples["sigma"][0], one.samples["sigma"][1]
    )
    with pytest.raises(ConfigError, match="diagonal"):
        replace(CHEES, dense_mass=True)


def test_a_fit_does_not_depend_on_its_batch(seasons):
    """A lane is one fit: its draws are the same alone, in another order, or beside padding (to
    rounding: programs of other lane counts round differently in the last bit, and HMC and its
    adaptation amplify that, ~1e-4 after 50 iterations, ~1e-11 after 25, as NUTS's lanes do)."""
    model = get_model("simplified")
    liks = [make_likelihood("suffstats", stats=s) for s in seasons]
    config = replace(CHEES, warmup=20, draws=5)
    batch = ChEESBatchSampler(model, config).run(liks, [1, 2, 3])
    alone = ChEESBatchSampler(model, config).run(liks[1:2], [2])
    reordered = ChEESBatchSampler(model, config, lanes_per_device=3).run(liks[::-1], [3, 2, 1])
    for k in batch.samples:
        np.testing.assert_allclose(alone.samples[k][0], batch.samples[k][1], rtol=1e-9, atol=1e-9, err_msg=k)
        np.testing.assert_allclose(reordered.samples[k][::-1], batch.samples[k], rtol=1e-9, atol=1e-9, err_msg=k)
