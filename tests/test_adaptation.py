"""The warm-up's mass-matrix estimates (inference/adaptation.py): the gradient estimate is
sqrt(Var(draws) / Var(gradients)) over each slow window, it finds a Gaussian's variances, and
it is a setting a run keeps."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest
from numpyro.infer.hmc_util import HMCAdaptState, IntegratorState, build_adaptation_schedule, dual_averaging

from lineup_numpyro.config import SamplerConfig
from lineup_numpyro.errors import ConfigError
from lineup_numpyro.inference.adaptation import adapter, with_gradient_accumulator
from lineup_numpyro.inference.sampling import FLAT, _Programs, sample_posterior


def _first_state(d: int, keyed: bool) -> HMCAdaptState:
    from numpyro.infer.hmc_util import welford_covariance

    mm_init = welford_covariance(diagonal=True)[0]
    ones, acc = jnp.ones(d), mm_init(d)
    wrap = (lambda x: {(FLAT,): x}) if keyed else (lambda x: x)
    ss_init = dual_averaging()[0]
    state = HMCAdaptState(0.1, wrap(ones), wrap(ones), wrap(ones), ss_init(jnp.log(1.0)), wrap(acc), 0, None)
    return with_gradient_accumulator(state)


@pytest.mark.parametrize("keyed", [False, True])
@pytest.mark.parametrize("regularize", [False, True])
def test_the_gradient_estimate_is_the_windows_spread_of_draws_over_gradients(keyed, regularize):
    """Fed chosen draws and gradients through the first slow window, the adapter's inverse mass
    at the window's end is sqrt(var(x) / var(g)) of that window's values (with Stan's shrinkage
    when regularised), per coordinate, whatever came before or after the window."""
    warmup, d = 1000, 3
    (start, end) = build_adaptation_schedule(warmup)[1]  # the first slow window
    update = adapter(
        warmup,
        mass_estimate="gradient",
        adapt_step_size=True,
        adapt_mass_matrix=True,
        dense_mass=[],
        target_accept_prob=0.8,
        regularize_mass_matrix=regularize,
    )
    rng = np.random.default_rng(0)
    xs = rng.normal(size=(end + 1, d)) * np.array([0.1, 1.0, 5.0])
    gs = rng.gamma(2.0, size=(end + 1, d)) * np.array([30.0, 1.0, 0.02])
    state = _first_state(d, keyed)
    step = jax.jit(update)
    for t in range(end + 1):
        z = {FLAT: jnp.asarray(xs[t])}
        g = {FLAT: jnp.asarray(gs[t])}
        state = step(t, 0.8, IntegratorState(z, None, 0.0, g), state)
        if t == start - 1:  # nothing estimated before the window ends
            got = state.inverse_mass_matrix[(FLAT,)] if keyed else state.inverse_mass_matrix
            np.testing.assert_array_equal(np.asarray(got), np.ones(d))
    window = slice(start, end + 1)
    n = end + 1 - start
    want = np.sqrt(xs[window].var(axis=0, ddof=1) / gs[window].var(axis=0, ddof=1))
    if regularize:
        want = n / (n + 5) * want + 1e-3 * 5 / (n + 5)
    got = state.inverse_mass_matrix[(FLAT,)] if keyed else state.inverse_mass_matrix
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-12)
    sqrt_inv = state.mass_matrix_sqrt_inv[(FLAT,)] if keyed else state.mass_matrix_sqrt_inv
    np.testing.assert_allclose(np.asarray(sqrt_inv), np.sqrt(want), rtol=1e-12)
    assert int(state.window_idx) == 2
    draws, grads = state.mm_state
    assert int((draws[(FLAT,)] if keyed else draws)[-1]) == 0  # the next window starts empty
    assert int((grads[(FLAT,)] if keyed else grads)[-1]) == 0


@pytest.mark.parametrize("warmup", [15, 100, 1000])
def test_the_step_size_and_windows_follow_numpyros_adaptation(warmup):
    """Only the mass matrix differs: fed the same acceptance probabilities, the gradient
    adapter's step size, dual-averaging state and window index equal NumPyro's at every
    iteration, through the window ends (restarts), the last iteration's averaged step size,
    and a warm-up too short for slow windows (15)."""
    from numpyro.infer.hmc_util import warmup_adapter

    kwargs = {"adapt_step_size": True, "adapt_mass_matrix": True, "target_accept_prob": 0.8}
    mine = jax.jit(adapter(warmup, mass_estimate="gradient", dense_mass=[], regularize_mass_matrix=True, **kwargs))
    numpyros = jax.jit(warmup_adapter(warmup, dense_mass=False, regularize_mass_matrix=True, **kwargs)[1])
    d, rng = 3, np.random.default_rng(1)
    a, b = _first_state(d, keyed=False), _first_state(d, keyed=False)
    b = b._replace(mm_state=b.mm_state[0])
    for t in range(warmup):
        z = {FLAT: jnp.asarray(rng.normal(size=d))}
        g = {FLAT: jnp.asarray(rng.normal(size=d))}
        accept = float(rng.uniform(0.3, 1.0))
        a = mine(t, accept, IntegratorState(z, None, 0.0, g), a)
        b = numpyros(t, accept, IntegratorState(z, None, 0.0, g), b)
        assert float(a.step_size) == float(b.step_size), t
        assert int(a.window_idx) == int(b.window_idx), t
        for x, y in zip(a.ss_state, b.ss_state, strict=True):
            np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_a_flat_or_near_flat_gradient_gives_a_bounded_finite_mass():
    """A coordinate whose gradient never moves keeps its draws' variance (shrunk); one whose
    gradient barely moves gets at most 1e10, not an infinite mass that would stall NUTS."""
    warmup, d = 1000, 3
    (start, end) = build_adaptation_schedule(warmup)[1]
    update = jax.jit(
        adapter(
            warmup, mass_estimate="gradient", adapt_step_size=True, adapt_mass_matrix=True, dense_mass=[],
            target_accept_prob=0.8, regularize_mass_matrix=False,
        )
    )  # fmt: skip
    rng = np.random.default_rng(2)
    xs = rng.normal(size=(end + 1, d))
    gs = np.column_stack([np.full(end + 1, 3.0), 1e-30 * rng.normal(size=end + 1), rng.normal(size=end + 1)])
    state = _first_state(d, keyed=True)
    for t in range(end + 1):
        z, g = {FLAT: jnp.asarray(xs[t])}, {FLAT: jnp.asarray(gs[t])}
        state = update(t, 0.8, IntegratorState(z, None, 0.0, g), state)
    got = np.asarray(state.inverse_mass_matrix[(FLAT,)])
    window = xs[start : end + 1]
    assert got[0] == pytest.approx(window[:, 0].var(ddof=1), rel=1e-12)
    assert got[1] == 1e10
    assert np.all(np.isfinite(np.asarray(state.mass_matrix_sqrt[(FLAT,)])))


SCALES = np.array([0.01, 0.3, 1.0, 7.0])


def _gaussian(scales=SCALES):  # noqa: ANN001, ANN202
    def model(likelihood=None):  # noqa: ANN001, ANN202 (the sampler passes the data; there is none)
        numpyro.sample("x", dist.Normal(0.0, jnp.asarray(scales)).to_event(1))

    return model


@pytest.mark.parametrize("estimate", ["variance", "gradient"])
def test_both_estimates_find_a_gaussians_variances(estimate):
    """On independent normals of scales 0.01-7, the gradient estimate is exact: there g = x / s^2,
    so sqrt(Var(x) / Var(g)) = s^2 from any draws (then Stan's shrinkage over the last window's
    n draws). The draws' variances find s^2 to within their noise (35% for ~200 draws)."""
    from lineup_numpyro.inference.sampling import _warm_up

    config = SamplerConfig(chains=2, warmup=500, draws=10, seed=3, mass_estimate=estimate, chain_method="vectorized")
    warm = _warm_up(_Programs(_gaussian(), config, "vectorized"), None, config, _gaussian(), None)
    (inverse_mass,) = warm.state.adapt_state.inverse_mass_matrix.values()
    start, end = build_adaptation_schedule(500)[-2]  # the last slow window
    n = end + 1 - start
    shrunk = n / (n + 5) * SCALES**2 + 1e-3 * 5 / (n + 5)
    if estimate == "gradient":
        np.testing.assert_allclose(np.asarray(inverse_mass), np.broadcast_to(shrunk, (2, 4)), rtol=1e-9)
    else:
        assert np.all(np.abs(np.asarray(inverse_mass) / shrunk - 1) < 0.35), inverse_mass / shrunk


def test_the_gradient_estimate_samples_a_skewed_posterior_correctly():
    """A positive coefficient pressed against zero (a half-normal likelihood, sampled on the log
    scale: a skewed target) has the right mean and quantiles under the gradient estimate."""

    def model(likelihood=None):  # noqa: ANN001, ANN202
        b = numpyro.sample("b", dist.HalfNormal(1.0).expand([3]).to_event(1))
        numpyro.factor("data", -0.5 * jnp.sum(((b - jnp.array([-0.5, 0.0, 2.0])) / jnp.array([0.2, 0.05, 0.3])) ** 2))

    config = SamplerConfig(
        chains=4, warmup=500, draws=2000, seed=1, mass_estimate="gradient", chain_method="vectorized"
    )
    result = sample_posterior(model, None, config)
    b = result.samples["b"].reshape(-1, 3)
    assert not result.stats["diverging"].any()
    # the exact posterior: N(m, s) x HalfNormal(1) truncated at 0, by quadrature
    grid = np.linspace(1e-9, 5, 400_001)
    for j, (m, s) in enumerate([(-0.5, 0.2), (0.0, 0.05), (2.0, 0.3)]):
        dens = np.exp(-0.5 * ((grid - m) / s) ** 2 - 0.5 * grid**2)
        dens /= dens.sum()
        mean = (grid * dens).sum()
        sd = np.sqrt(((grid - mean) ** 2 * dens).sum())
        # 8,000 draws, ESS >= ~1,000: the Monte Carlo error of the mean is at most sd / 30; 5 of them
        assert abs(b[:, j].mean() - mean) < 5 * sd / np.sqrt(1000), (j, b[:, j].mean(), mean)
        median = grid[np.searchsorted(np.cumsum(dens), 0.5)]
        assert abs(np.median(b[:, j]) - median) < 5 * 1.25 * sd / np.sqrt(1000), j


def test_the_gradient_estimate_is_refused_where_it_does_not_apply():
    with pytest.raises(ConfigError, match="dense_mass"):
        SamplerConfig(mass_estimate="gradient", dense_mass=True)
    with pytest.raises(ConfigError, match="chees"):
        SamplerConfig(mass_estimate="gradient", kernel="chees")
    with pytest.raises(ConfigError, match="mass_estimate"):
        SamplerConfig(mass_estimate="fisher")
