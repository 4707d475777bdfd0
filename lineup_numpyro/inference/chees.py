"""Jittered HMC with ChEES-adapted trajectory lengths: a sampler whose chains of one fit all
take the same number of leapfrog steps (issue 19).

Vectorised NUTS steps every lane until the batch's longest tree ends, so a batch of fits
costs its worst fit's trajectories many times over (benchmarks/sbc_throughput.py). Here an
iteration of a fit moves its C chains together: the number of steps is ceil(u_t L), with one
step size eps, one trajectory length L (in steps: T / eps) and one diagonal mass matrix per
fit, and u_t the van der Corput (Halton, base 2) sequence in (0, 1), the same for every fit.
Fits of a batch then differ in steps only through L.

Warm-up (Hoffman, Radul & Sountsov 2021, "An adaptive MCMC scheme for setting trajectory
lengths in HMC"; TFP's and BlackJAX's implementations were read for the constants):
- eps: dual averaging (NumPyro's) of the chains' mean acceptance probability towards the
  target, restarted from 10 eps at each mass-matrix update, as Stan does;
- the inverse mass matrix: the variance of every chain's draws in Stan's windows
  (NumPyro's `build_adaptation_schedule`), regularised as Stan does;
- L: gradient ascent (Adam without momentum) on log L of the ChEES criterion, the change in
  the chains' squared distance from their centre (a running mean of their positions) over a
  trajectory, in whitened coordinates; L starts at FIRST_STEPS steps and is held there in the
  first fast window, while the chains still run in from their starts. Counting L in steps,
  not length, keeps early trajectories short while eps falls by orders of magnitude: as a
  length, T stayed long and flung chains to log beta ~ -400 in the first iterations.
After warm-up eps, L and the mass matrix are fixed (their averages over the end of warm-up):
each iteration is then an HMC transition whose length does not depend on the state, so every
chain targets the posterior; SBC (analysis/sbc.py) checks the whole scheme's calibration.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax, random
from numpyro.infer.hmc_util import build_adaptation_schedule, dual_averaging

from lineup_numpyro.config import SamplerConfig

MAX_DELTA_ENERGY = 1000.0  # NumPyro's: a larger energy error is a divergent transition
LEARNING_RATE = 0.025  # Adam on log T (the paper's; TFP's default)
ADAM_DECAY = 0.95  # of Adam's squared-gradient average (no first-moment average: TFP's)
LOG_UPDATE_CLIP = 0.35  # at most ~log(2) / 2 a step, as TFP and BlackJAX clip
FIRST_STEPS = 8.0  # the first trajectories' length in steps
CENTRE_MEMORY = 50  # iterations the ChEES centre (a running mean of the positions) remembers


class AdaptState(NamedTuple):
    """One fit's warm-up state: step size (dual averaging), trajectory length (Adam on log T,
    and its running average), the mass-matrix window's sums."""

    log_step: jnp.ndarray  # the step size in use
    da: tuple  # NumPyro dual_averaging state
    log_length: jnp.ndarray  # log of the trajectory length T in steps (T / eps) in use
    length_avg: jnp.ndarray  # running average of it (the sampling length)
    adam_v: jnp.ndarray  # Adam's squared-gradient average
    centre: jnp.ndarray  # running mean of the chains' positions (the ChEES centre)
    window_n: jnp.ndarray  # draws in the current mass-matrix window (chains x iterations)
    window_sum: jnp.ndarray
    window_sumsq: jnp.ndarray


class FitState(NamedTuple):
    """One fit's C chains and its adaptation: positions (C, D), their potential energies (C,)
    and gradients (C, D), the inverse mass matrix (D,), the iteration."""

    z: jnp.ndarray
    potential: jnp.ndarray
    grad: jnp.ndarray
    inverse_mass: jnp.ndarray
    adapt: AdaptState
    i: jnp.ndarray
    key: jnp.ndarray


def van_der_corput(i: jnp.ndarray, bits: int = 32) -> jnp.ndarray:
    """The i-th (i >= 1) point of the base-2 Halton sequence, in (0, 1): its bits reversed."""
    i = jnp.asarray(i, dtype=jnp.uint32)
    out = jnp.zeros((), dtype=jnp.float64)
    for b in range(bits):
        out = out + ((i >> b) & 1).astype(jnp.float64) * 0.5 ** (b + 1)
    return out


def window_ends(warmup: int) -> tuple[np.ndarray, np.ndarray]:
    """Per warm-up iteration: whether its draws enter the mass-matrix window (Stan's slow
    windows), and whether the mass matrix is updated after it (a slow window's last)."""
    inside, ends = np.zeros(max(warmup, 1), bool), np.zeros(max(warmup, 1), bool)
    schedule = build_adaptation_schedule(warmup) if warmup > 0 else []
    for window in schedule[1:-1]:
        inside[window.start : window.end + 1] = True
        ends[window.end] = True
    return inside, ends


class ChEES:
    """The sampler of one fit: `init` builds a FitState from C chains' starts, `step` is one
    iteration (warm-up or sampling, by the iteration count). `potential` maps a flat position
    to the potential energy (negative log density, unconstrained)."""

    def __init__(self, config: SamplerConfig) -> None:
        self.config = config
        self.max_steps = 2**config.max_tree_depth - 1  # as long as NUTS's longest tree
        inside, ends = window_ends(config.warmup)
        self.inside, self.ends = jnp.asarray(inside), jnp.asarray(ends)
        self.first_window = int(np.argmax(inside)) if inside.any() else 0
        self.da_init, self.da_update = dual_averaging()

    def init(self, key, z, potential, grad, inverse_mass, step_size) -> FitState:  # noqa: ANN001
        log_step = jnp.log(step_size)
        d = z.shape[-1]
        adapt = AdaptState(
            log_step=log_step,
            da=self.da_init(jnp.log(10.0) + log_step),
            log_length=jnp.log(FIRST_STEPS),
            length_avg=jnp.log(FIRST_STEPS),
            adam_v=jnp.zeros(()),
            centre=jnp.mean(z, axis=0),
            window_n=jnp.zeros(()),
            window_sum=jnp.zeros(d),
            window_sumsq=jnp.zeros(d),
        )
        return FitState(z, potential, grad, inverse_mass, adapt, jnp.zeros((), jnp.int32), key)

    def step(self, state: FitState, value_and_grad: Callable) -> tuple[FitState, dict]:
        """One iteration: momenta, a jittered trajectory of leapfrog steps for every chain,
        Metropolis acceptance, then (in warm-up) adaptation. Returns the state and the
        iteration's statistics per chain (NumPyro's names)."""
        key, key_momentum, key_accept = random.split(state.key, 3)
        chains = state.z.shape[0]
        eps = jnp.exp(state.adapt.log_step)
        jitter = van_der_corput(state.i + 1)
        steps = jnp.clip(jnp.ceil(jitter * jnp.exp(state.adapt.log_length)), 1, self.max_steps).astype(jnp.int32)
        scale = jnp.sqrt(state.inverse_mass)
        p0 = random.normal(key_momentum, state.z.shape) / scale

        def leapfrog(_, carry):  # noqa: ANN001, ANN202
            z, p, pe, g = carry
            p = p - 0.5 * eps * g
            z = z + eps * state.inverse_mass * p
            pe, g = value_and_grad(z)
            return z, p - 0.5 * eps * g, pe, g

        z1, p1, pe1, g1 = lax.fori_loop(0, steps, leapfrog, (state.z, p0, state.potential, state.grad))
        h0 = state.potential + 0.5 * jnp.sum(state.inverse_mass * p0**2, axis=-1)
        h1 = pe1 + 0.5 * jnp.sum(state.inverse_mass * p1**2, axis=-1)
        delta = jnp.where(jnp.isnan(h1), jnp.inf, h1 - h0)
        diverging = delta > MAX_DELTA_ENERGY
        accept_prob = jnp.exp(-jnp.maximum(delta, 0.0))
        accept = random.uniform(key_accept, (chains,)) < accept_prob
        pick = accept[:, None]
        z, g = jnp.where(pick, z1, state.z), jnp.where(pick, g1, state.grad)
        pe = jnp.where(accept, pe1, state.potential)
        warming = state.i < self.config.warmup
        adapt, inverse_mass = lax.cond(
            warming,
            lambda: self._adapt(state, z, z1, p1, accept_prob, diverging, jitter),
            lambda: (state.adapt, state.inverse_mass),
        )
        stats = {
            "diverging": diverging,
            "num_steps": jnp.broadcast_to(steps, (chains,)),
            "accept_prob": accept_prob,
            "potential_energy": pe,
            "energy": jnp.where(accept, h1, h0),
            "adapt_state.step_size": jnp.broadcast_to(eps, (chains,)),
        }
        return FitState(z, pe, g, inverse_mass, adapt, state.i + 1, key), stats

    def _adapt(self, state: FitState, z, proposal, momentum, accept_prob, diverging, jitter):  # noqa: ANN001, ANN202
        a, t = state.adapt, state.i
        # step size: the chains' mean acceptance probability towards the target
        da = self.da_update(self.config.target_accept - jnp.mean(accept_prob), a.da)
        log_step = da[0]
        # trajectory length: the ChEES gradient in whitened coordinates (each coordinate
        # divided by its scale), each chain weighted by its acceptance probability
        scale = jnp.sqrt(state.inverse_mass)
        # centred at a running mean of all chains' positions: 4 chains' mean of one iteration
        # is too noisy an estimate of the posterior mean in hundreds of dimensions
        weight = jnp.where(diverging, 0.0, accept_prob)
        x1, x0 = (proposal - a.centre) / scale, (state.z - a.centre) / scale
        change = jnp.sum(x1**2, axis=-1) - jnp.sum(x0**2, axis=-1)
        length = jnp.exp(a.log_length + a.log_step)  # T, in the units of the coordinates
        per_chain = jitter * length * change * jnp.sum((proposal - a.centre) * momentum, axis=-1)
        per_chain = jnp.where(jnp.isfinite(per_chain), per_chain, 0.0)
        gradient = jnp.sum(weight * per_chain) / (jnp.sum(weight) + 1e-20)
        count = (t + 1).astype(jnp.float64)
        centre = a.centre + (jnp.mean(z, axis=0) - a.centre) / jnp.minimum(count + 1, CENTRE_MEMORY)
        adam_v = ADAM_DECAY * a.adam_v + (1 - ADAM_DECAY) * gradient**2
        update = LEARNING_RATE * gradient / (jnp.sqrt(adam_v / (1 - ADAM_DECAY**count)) + 1e-8)
        log_length = a.log_length + jnp.clip(update, -LOG_UPDATE_CLIP, LOG_UPDATE_CLIP)
        # not in the first fast window: there the chains still run in from their starts, and
        # their squared distance from the centre falls over any trajectory, whatever its length
        log_length = jnp.where(t < self.first_window, a.log_length, jnp.clip(log_length, 0.0, jnp.log(self.max_steps)))
        weight_avg = count**-0.5
        length_avg = (1 - weight_avg) * a.length_avg + weight_avg * log_length
        # the mass matrix: every chain's draws of Stan's slow windows
        inside = self.inside[t]
        window_n = a.window_n + jnp.where(inside, z.shape[0], 0)
        window_sum = a.window_sum + jnp.where(inside, jnp.sum(z, axis=0), 0.0)
        window_sumsq = a.window_sumsq + jnp.where(inside, jnp.sum(z**2, axis=0), 0.0)
        end = self.ends[t]
        n = jnp.maximum(window_n, 2.0)
        variance = (window_sumsq - window_sum**2 / n) / (n - 1)
        regularised = (n / (n + 5.0)) * variance + 1e-3 * (5.0 / (n + 5.0))  # Stan's
        inverse_mass = jnp.where(end, regularised, state.inverse_mass)
        # a new mass matrix restarts the step size's dual averaging from 10 eps (Stan)
        da = jax.tree.map(lambda new, old: jnp.where(end, new, old), self.da_init(jnp.log(10.0) + log_step), da)
        window_n, window_sum, window_sumsq = (jnp.where(end, 0.0, x) for x in (window_n, window_sum, window_sumsq))
        last = t == self.config.warmup - 1  # sampling uses the averaged step size and length
        log_step = jnp.where(last, da[1], log_step)
        log_length = jnp.where(last, length_avg, log_length)
        adapt = AdaptState(log_step, da, log_length, length_avg, adam_v, centre, window_n, window_sum, window_sumsq)
        return adapt, inverse_mass
