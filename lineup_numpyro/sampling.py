"""NUTS sampling of a lineup model, with chains in parallel and timings split by phase.

Compile time is measured from JAX's own compilation events, so warm-up and sampling times
are the sampler's work alone. Draws come back as NumPy arrays shaped (chains, draws, ...).
"""

from __future__ import annotations

import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import jax
import numpy as np
from jax import monitoring
from numpyro.infer import MCMC, NUTS

from .config import SamplerConfig
from .models import Likelihood

_COMPILE_EVENTS = (
    "/jax/core/compile/jaxpr_trace_duration",
    "/jax/core/compile/jaxpr_to_mlir_module_duration",
    "/jax/core/compile/backend_compile_duration",
)


class _CompileClock:
    """Total seconds JAX has spent tracing and compiling since start-up."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._lock = threading.Lock()
        monitoring.register_event_duration_secs_listener(self._on_event)

    def _on_event(self, event: str, duration: float, **_: object) -> None:
        if event in _COMPILE_EVENTS:
            with self._lock:
                self.seconds += duration


_compile_clock = _CompileClock()


@dataclass(frozen=True)
class Timing:
    """Seconds spent compiling, warming up, sampling (the last two without compilation)."""

    compile_s: float
    warmup_s: float
    sampling_s: float
    total_s: float


@dataclass(frozen=True)
class SamplingResult:
    """Posterior draws and per-draw sampler statistics, each (chains, draws, ...)."""

    samples: dict[str, np.ndarray]
    stats: dict[str, np.ndarray]
    timing: Timing
    config: SamplerConfig
    chain_method: str  # what actually ran (numpyro falls back to sequential without devices)


EXTRA_FIELDS = ("diverging", "num_steps", "accept_prob", "potential_energy", "energy", "adapt_state.step_size")


def _sampler_stats(extra: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """NumPyro's extra fields under ArviZ's sample_stats names (tree_depth as Stan counts it)."""
    n_steps = np.asarray(extra["num_steps"], dtype=np.int64)
    return {
        "diverging": np.asarray(extra["diverging"], dtype=bool),
        "n_steps": n_steps,
        "tree_depth": np.floor(np.log2(np.maximum(n_steps, 1))).astype(np.int64) + 1,
        "acceptance_rate": np.asarray(extra["accept_prob"], dtype=np.float64),
        "lp": -np.asarray(extra["potential_energy"], dtype=np.float64),
        "energy": np.asarray(extra["energy"], dtype=np.float64),
        "step_size": np.asarray(extra["adapt_state.step_size"], dtype=np.float64),
    }


def sample_posterior(
    model: Callable[[Likelihood], None], likelihood: Likelihood, config: SamplerConfig
) -> SamplingResult:
    """Warm up and sample `model` with NUTS; same config and seed give the same draws."""
    kernel = NUTS(
        model,
        target_accept_prob=config.target_accept,
        max_tree_depth=config.max_tree_depth,
        dense_mass=config.dense_mass,
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        mcmc = MCMC(
            kernel,
            num_warmup=config.warmup,
            num_samples=config.draws,
            num_chains=config.chains,
            chain_method=config.chain_method,
            progress_bar=config.progress_bar,
        )
    fell_back = any("not enough devices" in str(w.message) for w in caught)
    for w in caught:
        warnings.warn(w.message, RuntimeWarning, stacklevel=2)
    chain_method = "sequential" if fell_back else config.chain_method

    rng_key = jax.random.PRNGKey(config.seed)
    start = time.perf_counter()
    compile0 = _compile_clock.seconds
    if config.warmup > 0:
        mcmc.warmup(rng_key, likelihood, extra_fields=EXTRA_FIELDS, collect_warmup=False)
        rng_key = mcmc.post_warmup_state.rng_key
    _block(mcmc)
    warmup_end = time.perf_counter()
    compile1 = _compile_clock.seconds
    mcmc.run(rng_key, likelihood, extra_fields=EXTRA_FIELDS)
    _block(mcmc)
    end = time.perf_counter()
    compile2 = _compile_clock.seconds

    samples = {k: np.asarray(v) for k, v in mcmc.get_samples(group_by_chain=True).items()}
    extra = {k: np.asarray(v) for k, v in mcmc.get_extra_fields(group_by_chain=True).items()}
    timing = Timing(
        compile_s=compile2 - compile0,
        warmup_s=max(warmup_end - start - (compile1 - compile0), 0.0),
        sampling_s=max(end - warmup_end - (compile2 - compile1), 0.0),
        total_s=end - start,
    )
    return SamplingResult(samples, _sampler_stats(extra), timing, config, chain_method)


def _block(mcmc: MCMC) -> None:
    """Wait for asynchronous dispatch to finish so that the clocks are honest."""
    if mcmc.last_state is not None:
        jax.block_until_ready(mcmc.last_state)
