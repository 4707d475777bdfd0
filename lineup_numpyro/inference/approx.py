"""Fast approximate posteriors with optax: MAP, a Laplace approximation, and ADVI.

All three work on the model's log density over its unconstrained parameters, flattened into
one vector x (NumPyro's `initialize_model` gives the potential U(x) = -log p(x | y) and the
map back to Stan's parameters):

- map: L-BFGS (optax) on U until the gradient's largest entry falls below `grad_tol`;
- laplace: the Gaussian N(x*, H^-1) at the mode x*, H the Hessian of U there;
- advi: NumPyro SVI with a mean-field (AutoDiagonalNormal) or low-rank
  (AutoLowRankMultivariateNormal) Gaussian guide on x, started at the mode and optimised by
  optax's Adam in blocks of steps until the mean ELBO of a block stops improving.

Draws from laplace and advi are importance-weighted against the true posterior: the Pareto k
of the weights (PSIS, ArviZ) says whether the approximation can be trusted (k <= 0.7). MAP
is a point: one "draw", the mode, so it has no posterior sd.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import optax
from jax.flatten_util import ravel_pytree
from numpyro.infer import SVI, Trace_ELBO
from numpyro.infer.autoguide import AutoDiagonalNormal, AutoLowRankMultivariateNormal
from numpyro.infer.initialization import init_to_value
from numpyro.infer.util import initialize_model
from numpyro.optim import optax_to_numpyro

from lineup_numpyro.config import ApproxConfig
from lineup_numpyro.errors import ApproxError
from lineup_numpyro.models.model import Likelihood

PARETO_K_OK = 0.7  # above this, importance weights (and the approximation) are unreliable


@dataclass(frozen=True)
class Flat:
    """The model's log density over one flat vector of unconstrained parameters."""

    x0: jnp.ndarray  # (D,) a valid starting point
    potential: Callable[[jnp.ndarray], jnp.ndarray]  # x -> -log p(x | y), up to a constant
    constrain: Callable[[jnp.ndarray], dict]  # x -> the model's sites (Stan's parameters)
    unravel: Callable[[jnp.ndarray], dict]  # x -> unconstrained values by site (NumPyro's init_params)


def flatten_model(model: Callable[[Likelihood], None], likelihood: Likelihood, seed: int = 0) -> Flat:
    info = initialize_model(jax.random.PRNGKey(seed), model, model_args=(likelihood,), dynamic_args=True)
    x0, unravel = ravel_pytree(info.param_info.z)
    potential = info.potential_fn(likelihood)
    constrain = info.postprocess_fn(likelihood)
    return Flat(x0, lambda x: potential(unravel(x)), lambda x: constrain(unravel(x)), unravel)


def map_inits(
    model: Callable[[Likelihood], None],
    likelihood: Likelihood,
    chains: int,
    seed: int,
    jitter: float = 0.1,
    flat: Flat | None = None,
    max_iter: int | None = None,
) -> tuple[dict, Optimum]:
    """NUTS starting points: the MAP estimate plus N(0, jitter) noise on the unconstrained
    scale for each chain (so that R-hat still compares chains that started apart). With
    `max_iter`, the mode search stops there (a start need not be the exact mode)."""
    flat = flat if flat is not None else flatten_model(model, likelihood, seed)
    config = ApproxConfig(seed=seed) if max_iter is None else ApproxConfig(seed=seed, max_iter=max_iter)
    opt = find_mode(flat, config)
    noise = np.random.default_rng(seed).normal(0.0, jitter, (chains, opt.x.size))
    starts = [flat.unravel(jnp.asarray(opt.x + e)) for e in noise]
    inits = jax.tree.map(lambda *xs: jnp.stack(xs), *starts)
    return (inits if chains > 1 else starts[0]), opt


def laplace_inverse_mass(flat: Flat, x: np.ndarray) -> np.ndarray:
    """NUTS's first inverse mass matrix (diagonal) from the Laplace approximation at `x`, the
    mode: diag(H^-1), or 1/diag(H) where H is not positive definite there. Warm-up then starts
    with steps scaled to the posterior instead of to 1, which saves most of its early, deep
    trees (benchmarks/experiments/adaptation)."""
    hessian = np.asarray(jax.jit(jax.hessian(flat.potential))(jnp.asarray(x)))
    hessian = 0.5 * (hessian + hessian.T)
    try:
        chol = np.linalg.cholesky(hessian)
        variances = np.sum(np.linalg.inv(chol) ** 2, axis=0)  # diag(H^-1) = column sums of L^-1 squared
    except np.linalg.LinAlgError:
        variances = np.full(x.size, np.nan)
    fallback = 1.0 / np.maximum(np.diag(hessian), 1e-8)
    ok = np.isfinite(variances) & (variances > 0)
    return np.where(ok, variances, fallback)


@dataclass(frozen=True)
class Optimum:
    x: np.ndarray  # the mode, (D,)
    value: float  # U at the mode
    grad_max: float  # largest |dU/dx| there
    iterations: int
    converged: bool


def find_mode(flat: Flat, config: ApproxConfig, x0: jnp.ndarray | None = None) -> Optimum:
    """L-BFGS with a zoom line search until max |grad U| < grad_tol (or max_iter steps)."""
    solver = optax.lbfgs()
    value_and_grad = optax.value_and_grad_from_state(flat.potential)

    def step(carry):
        x, state = carry
        value, grad = value_and_grad(x, state=state)
        updates, state = solver.update(grad, state, x, value=value, grad=grad, value_fn=flat.potential)
        return optax.apply_updates(x, updates), state

    def keep_going(carry):
        _, state = carry
        count = optax.tree.get(state, "count")
        grad = optax.tree.get(state, "grad")
        return (count == 0) | ((count < config.max_iter) & (jnp.max(jnp.abs(grad)) >= config.grad_tol))

    @jax.jit
    def run(x):
        return jax.lax.while_loop(keep_going, step, (x, solver.init(x)))

    x, state = run(flat.x0 if x0 is None else x0)
    value, grad = jax.value_and_grad(flat.potential)(x)
    grad_max = float(jnp.max(jnp.abs(grad)))
    return Optimum(
        np.asarray(x),
        float(value),
        grad_max,
        int(optax.tree.get(state, "count")),
        bool(np.isfinite(value) and grad_max < config.grad_tol),
    )


@dataclass(frozen=True)
class Approximation:
    """Draws of the model's sites from an approximate posterior, and its evidence."""

    method: str
    samples: dict[str, np.ndarray]  # (1, draws, ...): one "chain"
    log_density: np.ndarray  # (draws,) log p(x | y) + const at each draw
    log_weight: np.ndarray  # (draws,) log p - log q (zeros for map)
    evidence: dict  # how the method converged: iterations, gradient, ELBO, Pareto k
    converged: bool
    fit_s: float


def _draws(flat: Flat, xs: jnp.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray]:
    samples = jax.vmap(flat.constrain)(xs)
    return ({k: np.asarray(v)[None] for k, v in samples.items()}, -np.asarray(jax.vmap(flat.potential)(xs)))


def _pareto_k(log_weight: np.ndarray) -> float:
    import arviz as az  # here, not above: train imports this module, and ArviZ takes 0.5-2 s to import

    _, k = az.psislw(np.asarray(log_weight, dtype=np.float64))
    return float(k)


def fit_map(flat: Flat, config: ApproxConfig) -> Approximation:
    start = time.perf_counter()
    opt = find_mode(flat, config)
    samples, log_p = _draws(flat, jnp.asarray(opt.x)[None])  # one draw: the mode
    evidence = {
        "iterations": opt.iterations,
        "grad_max": opt.grad_max,
        "grad_tol": config.grad_tol,
        "neg_log_posterior": opt.value,
    }
    return Approximation("map", samples, log_p, np.zeros(1), evidence, opt.converged, time.perf_counter() - start)


def fit_laplace(flat: Flat, config: ApproxConfig) -> Approximation:
    """N(x*, H^-1) at the mode; draws x* + L^-T e with H = L L^T."""
    start = time.perf_counter()
    opt = find_mode(flat, config)
    hessian = np.asarray(jax.hessian(flat.potential)(jnp.asarray(opt.x)))
    evidence = {
        "iterations": opt.iterations,
        "grad_max": opt.grad_max,
        "grad_tol": config.grad_tol,
        "neg_log_posterior": opt.value,
    }
    try:
        chol = np.linalg.cholesky(0.5 * (hessian + hessian.T))
    except np.linalg.LinAlgError:
        chol = None
    if chol is None or not np.all(np.isfinite(chol)):
        raise ApproxError(
            f"laplace: the Hessian at the mode is not positive definite (the mode search "
            f"{'converged' if opt.converged else 'did not converge'}: {opt.iterations} iterations, "
            f"largest |gradient| {opt.grad_max:.2e}); try --method advi"
        )
    eps = np.random.default_rng(config.seed).standard_normal((config.draws, opt.x.size))
    xs = opt.x + np.linalg.solve(chol.T, eps.T).T  # covariance (L L^T)^-1
    log_q = -0.5 * (eps**2).sum(axis=1) + np.log(np.diag(chol)).sum() - 0.5 * opt.x.size * np.log(2 * np.pi)
    samples, log_p = _draws(flat, jnp.asarray(xs))
    log_w = log_p - log_q
    k = _pareto_k(log_w)
    evidence |= {"pareto_k": k, "pareto_k_ok": k <= PARETO_K_OK}
    return Approximation("laplace", samples, log_p, log_w, evidence, opt.converged, time.perf_counter() - start)


def fit_advi(flat: Flat, config: ApproxConfig) -> Approximation:
    """SVI on x with a Gaussian guide; stops when a block of steps improves the mean ELBO by
    less than `elbo_rtol` (relative) or after max_steps."""
    start = time.perf_counter()
    dim = flat.x0.size
    mode = find_mode(flat, config)  # the guide starts at the mode, not at a random point

    def flat_model():
        x = numpyro.sample("x", dist.ImproperUniform(dist.constraints.real, (), event_shape=(dim,)))
        with numpyro.handlers.block():  # the model's own sites stay out of this model's trace
            log_density = -flat.potential(x)
        numpyro.factor("log_density", log_density)

    init = init_to_value(values={"x": jnp.asarray(mode.x)})
    guide = (
        AutoDiagonalNormal(flat_model, init_loc_fn=init, init_scale=0.01)
        if config.guide == "meanfield"
        else AutoLowRankMultivariateNormal(flat_model, init_loc_fn=init, init_scale=0.01, rank=config.rank)
    )
    # Adam's step halves every block (to a floor of 1% of the first): the guide's means then
    # settle to well inside the posterior sds instead of jittering at the size of the step.
    rate = optax.exponential_decay(
        config.learning_rate,
        transition_steps=config.block,
        decay_rate=0.5,
        staircase=True,
        end_value=config.learning_rate / 100,
    )
    svi = SVI(flat_model, guide, optax_to_numpyro(optax.adam(rate)), Trace_ELBO())
    state = svi.init(jax.random.PRNGKey(config.seed))
    block = jax.jit(lambda s: jax.lax.scan(lambda s, _: svi.update(s), s, None, length=config.block))
    means, steps = [], 0
    while steps < config.max_steps:
        state, losses = block(state)
        steps += config.block
        means.append(float(jnp.mean(losses)))
        if len(means) >= 2 and abs(means[-2] - means[-1]) <= config.elbo_rtol * abs(means[-1]):
            break
    converged = len(means) >= 2 and abs(means[-2] - means[-1]) <= config.elbo_rtol * abs(means[-1])
    posterior = guide.get_posterior(svi.get_params(state))
    xs = posterior.sample(jax.random.PRNGKey(config.seed + 1), (config.draws,))
    samples, log_p = _draws(flat, xs)
    log_q = np.asarray(posterior.log_prob(xs))
    log_w = log_p - (log_q.sum(axis=-1) if log_q.ndim > 1 else log_q)  # the mean-field Normal is per coordinate
    k = _pareto_k(log_w)
    evidence = {
        "steps": steps,
        "elbo": -means[-1],
        "elbo_previous_block": -means[-2] if len(means) > 1 else None,
        "elbo_rtol": config.elbo_rtol,
        "guide": config.guide,
        "pareto_k": k,
        "pareto_k_ok": k <= PARETO_K_OK,
    }
    return Approximation("advi", samples, log_p, log_w, evidence, converged, time.perf_counter() - start)


FITTERS = {"map": fit_map, "laplace": fit_laplace, "advi": fit_advi}


def approximate(
    method: str, model: Callable[[Likelihood], None], likelihood: Likelihood, config: ApproxConfig
) -> Approximation:
    """Fit `model` by `method` (map, laplace or advi)."""
    if method not in FITTERS:
        raise ValueError(f"unknown method {method!r}; expected one of {', '.join(FITTERS)}")
    return FITTERS[method](flatten_model(model, likelihood, config.seed), config)
