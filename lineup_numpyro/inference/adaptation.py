"""NUTS's warm-up adaptation: NumPyro's (Stan's windows, dual averaging, the draws' variances as
the diagonal inverse mass matrix), or the same with the mass matrix estimated from the draws
*and their gradients*, as nutpie does.

The gradient estimate (Seyboldt, Carlson & Carpenter 2024, "Preconditioning with the Fisher
divergence"; nutpie's diagonal mass matrix): in each of Stan's slow windows, accumulate the
variance of each unconstrained coordinate x_i over the draws and the variance of the potential's
gradient g_i at them, and take

    inverse mass_i = sqrt(Var(x_i) / Var(g_i)).

For a Gaussian the two agree (Var(g_i) = 1 / Var(x_i)); for the skewed posteriors of positive
coefficients near zero, sampled on the log scale, the gradient's spread sees the stiff side of a
coordinate that the draws' variance averages away. On the matchup model it lets the adapted step
size grow by a quarter at the same tree depth (benchmarks/experiments/mass_estimate).

Everything else is NumPyro's `warmup_adapter`, whose own update runs the step size and the
windows: the same schedule, the same dual averaging, the same regularisation towards 1e-3
(Stan's, applied to the estimate), and the same state type; its mass-matrix accumulator
becomes a pair (draws, gradients) of NumPyro's Welford states.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import get_args

import jax.numpy as jnp
from numpyro.infer.hmc_util import HMCAdaptState, build_adaptation_schedule, warmup_adapter, welford_covariance
from numpyro.util import cond, identity

from lineup_numpyro.config import MassEstimate

RATIO_BOUNDS = (1e-12, 1e10)  # of sqrt(Var(x) / Var(g)), nutpie's: a near-flat gradient gives no infinite mass


def adapter(
    num_warmup: int,
    *,
    mass_estimate: str,
    adapt_step_size: bool,
    adapt_mass_matrix: bool,
    dense_mass: list,
    target_accept_prob: float,
    regularize_mass_matrix: bool,
) -> Callable:
    """The warm-up's update function (t, accept_prob, IntegratorState, HMCAdaptState) ->
    HMCAdaptState: NumPyro's for mass_estimate="variance", the gradient estimate's otherwise
    (its state made by `with_gradient_accumulator` from the one NumPyro's init gives)."""
    settings = {
        "adapt_step_size": adapt_step_size,
        "adapt_mass_matrix": adapt_mass_matrix,
        "target_accept_prob": target_accept_prob,
        "regularize_mass_matrix": regularize_mass_matrix,
    }
    if mass_estimate == "variance":
        return warmup_adapter(num_warmup, dense_mass=dense_mass, **settings)[1]
    if mass_estimate != "gradient":
        raise ValueError(f"mass_estimate must be one of {get_args(MassEstimate)}, got {mass_estimate!r}")
    if dense_mass:
        raise ValueError("the gradient estimate of the mass matrix is diagonal; drop dense_mass")
    return _gradient_adapter(num_warmup, **settings)


def with_gradient_accumulator(state: HMCAdaptState) -> HMCAdaptState:
    """NumPyro's first adaptation state with its draws' accumulator doubled: (draws, gradients)."""
    return state._replace(mm_state=(state.mm_state, state.mm_state))


def _gradient_adapter(
    num_warmup: int,
    *,
    adapt_step_size: bool,
    adapt_mass_matrix: bool,
    target_accept_prob: float,
    regularize_mass_matrix: bool,
) -> Callable:
    """NumPyro's update for the step size and the windows (told not to adapt the mass matrix, it
    leaves mm_state alone), with the (draws, gradients) accumulators and the estimate at each
    slow window's end around it."""
    numpyros = warmup_adapter(
        num_warmup,
        adapt_step_size=adapt_step_size,
        adapt_mass_matrix=False,
        target_accept_prob=target_accept_prob,
        regularize_mass_matrix=regularize_mass_matrix,
    )[1]
    mm_init, mm_update, mm_final = welford_covariance(diagonal=True)
    last_window = len(build_adaptation_schedule(num_warmup)) - 1

    def estimate(accumulators):  # noqa: ANN001, ANN202 (NumPyro's Welford states, a dict of blocks or one)
        draws, grads = accumulators
        var_x, _, _ = mm_final(draws, regularize=False)
        var_g, _, _ = mm_final(grads, regularize=False)
        n = draws[-1] if not isinstance(draws, dict) else next(iter(draws.values()))[-1]

        def one(vx, vg):  # noqa: ANN001, ANN202
            # bounded as nutpie bounds it; a coordinate whose gradient never moved (a flat
            # direction) or whose ratio is not finite keeps its draws' variance
            ratio = jnp.sqrt(vx / jnp.where(vg > 0, vg, 1.0))
            inverse_mass = jnp.where((vg > 0) & jnp.isfinite(ratio), jnp.clip(ratio, *RATIO_BOUNDS), vx)
            if regularize_mass_matrix:  # Stan's shrinkage towards 1e-3, as NumPyro applies it to variances
                inverse_mass = (n / (n + 5)) * inverse_mass + 1e-3 * (5 / (n + 5))
            return inverse_mass, jnp.reciprocal(jnp.sqrt(inverse_mass)), jnp.sqrt(inverse_mass)

        if isinstance(var_x, dict):
            parts = {k: one(var_x[k], var_g[k]) for k in var_x}
            return tuple({k: p[i] for k, p in parts.items()} for i in range(3))
        return one(var_x, var_g)

    def empty(draws):  # noqa: ANN001, ANN202 (an empty Welford state shaped like `draws`)
        if isinstance(draws, dict):
            return {k: mm_init(v[0].shape[-1]) for k, v in draws.items()}
        return mm_init(draws[0].shape[-1])

    def window_end(state: HMCAdaptState) -> HMCAdaptState:
        inverse_mass, mass_sqrt, mass_sqrt_inv = estimate(state.mm_state)
        fresh = empty(state.mm_state[0])
        return state._replace(
            inverse_mass_matrix=inverse_mass,
            mass_matrix_sqrt=mass_sqrt,
            mass_matrix_sqrt_inv=mass_sqrt_inv,
            mm_state=(fresh, fresh),
        )

    def update(t, accept_prob, z_info, state: HMCAdaptState) -> HMCAdaptState:  # noqa: ANN001
        window = state.window_idx
        middle = (0 < window) & (window < last_window)  # a slow window, as NumPyro decides it
        if adapt_mass_matrix:
            accumulators = cond(
                middle,
                (z_info[0], z_info[3], state.mm_state),
                lambda a: (mm_update(a[0], a[2][0]), mm_update(a[1], a[2][1])),
                state.mm_state,
                identity,
            )
            state = state._replace(mm_state=accumulators)
        state = numpyros(t, accept_prob, z_info, state)
        if not adapt_mass_matrix:
            return state
        return cond(middle & (state.window_idx != window), state, window_end, state, identity)

    return update
