"""NUTS sampling of a lineup model, with chains in parallel and timings split by phase.

Compile time is measured from JAX's own compilation events, so warm-up and sampling times
are the sampler's work alone. Draws come back as NumPy arrays shaped (chains, draws, ...).
"""

from __future__ import annotations

import json
import threading
import time
import warnings
import zipfile
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from functools import partial
from importlib import metadata
from operator import attrgetter
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax, monitoring, random
from jax.flatten_util import ravel_pytree
from numpyro import handlers
from numpyro.distributions.transforms import biject_to
from numpyro.infer import NUTS
from numpyro.infer.hmc import HMCState, hmc, momentum_generator
from numpyro.infer.hmc_util import (
    IntegratorState,
    build_tree,
    euclidean_kinetic_energy,
    velocity_verlet,
)
from numpyro.infer.util import ParamInfo
from numpyro.util import is_prng_key
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from lineup_numpyro.config import SamplerConfig
from lineup_numpyro.errors import CheckpointError, ConfigError
from lineup_numpyro.files import atomic_path
from lineup_numpyro.inference.adaptation import adapter, with_gradient_accumulator
from lineup_numpyro.inference.approx import flatten_model, laplace_inverse_mass, map_inits
from lineup_numpyro.models.model import Likelihood, Start, data_arguments

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


# L-BFGS iterations of --init laplace's mode search: on the matchup model the full search takes
# ~4,700 (2-3 s), while 1,000 already give the Laplace variances to a median 5% of the mode's.
LAPLACE_START_ITER = 1000

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


FLAT = "_z"  # the one site FlatNUTS moves: every latent site of the model, unconstrained, flat


MAX_DELTA_ENERGY = 1000.0  # NumPyro's: an energy error beyond it ends a tree as divergent


class FlatNUTS(NUTS):
    """NUTS on a model's latent sites as one flat vector (one leaf `_z`, NumPyro's order of the
    sites: sorted by name), not a dict of them, with the trees of the first `capped_iterations`
    iterations stopped at `capped_depth`.

    The density, its transforms and the draws (`postprocess_fn`: every site and deterministic
    under its own name) are the model's; only the state is one array. Each array operation of
    a leapfrog step and of its tree's bookkeeping is then one operation, not one per site:
    1.4x faster per step on the matchup model (4 sites), 1.25x on the hierarchical (10), on
    this CPU (benchmarks/experiments/step_cost). Initial parameters given per site are
    flattened here; an initial inverse mass matrix is keyed (FLAT,).

    The transition (`_transition`) is NumPyro's NUTS transition, built from its parts
    (numpyro.infer.hmc_util) so that the depth limit can follow the iteration count: NumPyro's
    own takes one limit for all of warm-up, so a cap on its first part needed a second kernel,
    a second compiled program (1.4-1.9 s of a cold matchup job's 5 s of compilation).
    tests/test_sampling.py checks it against NumPyro's transition, state for state."""

    def __init__(
        self,
        model: Callable[..., None],
        *,
        capped_iterations: int = 0,
        capped_depth: int = 10,
        mass_estimate: str = "variance",
        **kwargs,
    ):
        super().__init__(model, **kwargs)
        if not isinstance(self._max_tree_depth, int):
            raise ValueError("FlatNUTS takes one max_tree_depth; cap the first iterations with capped_iterations")
        if self._find_heuristic_step_size or self._forward_mode_differentiation:
            raise ValueError("FlatNUTS's transition has neither the heuristic step size nor forward-mode gradients")
        self._capped = (int(capped_iterations), min(int(capped_depth), self._max_tree_depth))
        self._mass_estimate = mass_estimate  # checked where the adaptation is built (adaptation.adapter)

    def init(self, rng_key, num_warmup, init_params=None, model_args=(), model_kwargs=None):  # noqa: ANN001, ANN201
        state = super().init(rng_key, num_warmup, init_params, model_args, {} if model_kwargs is None else model_kwargs)
        if self._mass_estimate == "gradient":
            state = state._replace(adapt_state=with_gradient_accumulator(state.adapt_state))
        transition = self._transition(num_warmup)
        batched = not is_prng_key(rng_key)  # chain_method 'vectorized': every chain at once
        self._sample_fn = jax.vmap(transition, in_axes=(0, None, None)) if batched else transition
        return state

    def _transition(self, num_warmup: int) -> Callable:
        """One NUTS iteration from an HMCState: a momentum drawn for the adapted mass matrix, a
        tree built by doubling (its depth limited to `capped_depth` in the first
        `capped_iterations` iterations, to max_tree_depth after), its proposal taken, and the
        step size and mass matrix adapted while the iteration is part of the warm-up."""
        kinetic = self._kinetic_fn or euclidean_kinetic_energy
        dense = [(FLAT,)] if self._dense_mass is True else list(self._dense_mass or [])
        adapt = adapter(
            num_warmup,
            mass_estimate=self._mass_estimate,
            adapt_step_size=self._adapt_step_size,
            adapt_mass_matrix=self._adapt_mass_matrix,
            dense_mass=dense,
            target_accept_prob=self._target_accept_prob,
            regularize_mass_matrix=self._regularize_mass_matrix,
        )
        (capped_iterations, capped_depth), depth = self._capped, self._max_tree_depth
        potential_gen = self._potential_fn_gen

        def transition(state: HMCState, model_args: tuple, model_kwargs: dict | None) -> HMCState:
            _, leapfrog = velocity_verlet(potential_gen(*model_args, **(model_kwargs or {})), kinetic)
            key, key_momentum, key_tree = random.split(state.rng_key, 3)
            adapted = state.adapt_state
            momentum = momentum_generator(state.z, adapted.mass_matrix_sqrt, key_momentum)
            start = IntegratorState(state.z, momentum, state.potential_energy, state.z_grad)
            limit = jnp.where(state.i < capped_iterations, capped_depth, depth)
            tree = build_tree(
                leapfrog,
                kinetic,
                start,
                adapted.inverse_mass_matrix,
                adapted.step_size,
                key_tree,
                max_delta_energy=MAX_DELTA_ENERGY,
                max_tree_depth=(limit, depth),
            )
            accept_prob = tree.sum_accept_probs / tree.num_proposals
            end = IntegratorState(tree.z_proposal, momentum, tree.z_proposal_pe, tree.z_proposal_grad)
            warming = state.i < num_warmup
            adapted = lax.cond(warming, lambda: adapt(state.i, accept_prob, end, adapted), lambda: adapted)
            count = jnp.where(warming, state.i + 1, state.i + 1 - num_warmup)  # iterations in this phase
            return HMCState(
                i=state.i + 1,
                z=end.z,
                z_grad=end.z_grad,
                potential_energy=end.potential_energy,
                energy=tree.z_proposal_energy,
                r=None,
                trajectory_length=state.trajectory_length,
                num_steps=tree.num_proposals,
                accept_prob=accept_prob,
                mean_accept_prob=state.mean_accept_prob + (accept_prob - state.mean_accept_prob) / count,
                diverging=tree.diverging,
                adapt_state=adapted,
                rng_key=key,
            )

        return transition

    def _init_state(self, rng_key, model_args, model_kwargs, init_params):  # noqa: ANN001, ANN202
        given = init_params
        info = super()._init_state(rng_key, model_args, model_kwargs, None)
        batched = not is_prng_key(rng_key)  # chain_method 'vectorized': every chain at once
        ravel = jax.vmap(lambda z: ravel_pytree(z)[0]) if batched else (lambda z: ravel_pytree(z)[0])
        _, unravel = ravel_pytree(jax.tree.map(lambda x: x[0], info.z) if batched else info.z)
        potential_gen, postprocess_gen = self._potential_fn_gen, self._postprocess_fn

        def potential_fn_gen(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
            potential = potential_gen(*args, **kwargs)
            return lambda z: potential(unravel(z[FLAT]))

        def postprocess_fn(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
            postprocess = postprocess_gen(*args, **kwargs)
            return lambda z: postprocess(unravel(z[FLAT]))

        self._potential_fn_gen, self._postprocess_fn = potential_fn_gen, postprocess_fn
        self._init_fn, self._sample_fn = hmc(
            potential_fn_gen=potential_fn_gen, kinetic_fn=self._kinetic_fn, algo=self._algo
        )
        if given is not None:
            return {FLAT: ravel(given)}
        return ParamInfo({FLAT: ravel(info.z)}, info.potential_energy, {FLAT: ravel(info.z_grad)})


def nuts_kernel(model: Callable[..., None], config: SamplerConfig) -> FlatNUTS:
    """The NUTS kernel of `config`: FlatNUTS, its first capped_warmup(config) iterations' trees
    stopped at `config.warmup_max_tree_depth`."""
    return FlatNUTS(
        model,
        target_accept_prob=config.target_accept,
        max_tree_depth=config.max_tree_depth,
        dense_mass=config.dense_mass,
        mass_estimate=config.mass_estimate,
        capped_iterations=capped_warmup(config),
        capped_depth=config.warmup_max_tree_depth,
    )


def capped_warmup(config: SamplerConfig) -> int:
    """Warm-up iterations whose trees stop at `warmup_max_tree_depth`: the first capped_share."""
    return int(config.warmup * config.capped_share) if config.warmup_max_tree_depth < config.max_tree_depth else 0


def warmup_phases(config: SamplerConfig) -> list[int]:
    """Warm-up in chunks of at most `checkpoint_every` (the sizes draws come in too: one
    compiled program serves both; the capped iterations are the kernel's business)."""
    return _split(config.warmup, config.checkpoint_every)


class _Programs:
    """The compiled programs of a run: `init` (a NUTS state per chain) and `chunk` (a scan of
    NUTS transitions per chain from a state), the second used alike for warm-up and draws.

    NUTS adapts its step size and mass matrix while a state's iteration count is below the
    warm-up length, so warm-up is the same transition as sampling, and one program per chunk
    size serves both. The model's data (the likelihood's arrays and `data_arguments`) are
    arguments of both programs, not constants compiled into them, so a program compiled
    once serves every data set of the same shape, in this process and, through JAX's
    persistent cache, in later ones.
    """

    def __init__(self, model: Callable[[Likelihood], None], config: SamplerConfig, chain_method: str) -> None:
        fn, self.kwargs = data_arguments(model)
        self.kernel = nuts_kernel(fn, config)
        self.config = config
        self.chains = config.chains
        self.method = chain_method  # as recorded with the run
        self.chain_method = chain_method if config.chains > 1 else "single"
        self._init = self._map(self._init_one, batched_args=2, shared_args=3)
        if self.chain_method == "parallel":  # without starting points: only the keys per chain
            self._init_keys = jax.pmap(self._init_one, in_axes=(0, None, None, None, None))
        self._chunks: dict[int, Callable] = {}

    def _map(self, fn: Callable, batched_args: int, shared_args: int = 2) -> Callable:
        """`fn` compiled over chains as chain_method says; its first `batched_args` arguments
        carry a chain axis, the next `shared_args` (the data) are shared."""
        if self.chain_method == "parallel":
            axes = (0,) * batched_args + (None,) * shared_args
            return jax.pmap(fn, in_axes=axes)
        return jax.jit(fn)

    def _init_one(self, key, params, inverse_mass, args, kwargs):
        return init_state(self.kernel, self.config, key, params, inverse_mass, args, kwargs)

    def init(self, likelihood: Likelihood, init_params: dict | None = None, inverse_mass: np.ndarray | None = None):
        """The chains' initial states (NumPyro's keys: the seed split once per chain); a single
        chain's state has no chain axis. `inverse_mass` (flat, in NumPyro's order of the sites:
        sorted by name) replaces config.first_mass's as the first inverse mass matrix; it needs
        `init_params`."""
        if inverse_mass is not None and init_params is None:
            raise ValueError("an initial inverse mass matrix needs initial parameters")
        args = (likelihood,)
        key = jax.random.PRNGKey(self.config.seed)
        if self.chain_method == "single":
            return self._init(key, init_params, inverse_mass, args, self.kwargs)
        keys = jax.random.split(key, self.chains)
        if self.chain_method == "sequential":
            states = [
                self._init(
                    keys[c], None if init_params is None else _chain(init_params, c), inverse_mass, args, self.kwargs
                )
                for c in range(self.chains)
            ]
            return jax.tree.map(lambda *xs: jnp.stack(xs), *states)
        if self.chain_method == "parallel" and init_params is None:
            return self._init_keys(keys, None, None, args, self.kwargs)
        return self._init(keys, init_params, inverse_mass, args, self.kwargs)

    def _chunk_one(self, state, args, kwargs, size: int):
        kernel = self.kernel
        postprocess = kernel.postprocess_fn(args, kwargs)
        if self.chain_method == "vectorized":  # the kernel steps all chains at once (batched state)
            postprocess = jax.vmap(postprocess)

        def step(state, _):
            state = kernel.sample(state, args, kwargs)
            extra = {name: attrgetter(name)(state) for name in EXTRA_FIELDS}
            return state, (postprocess(state.z), extra)

        end, (draws, extra) = lax.scan(step, state, None, length=size)
        return draws, extra, end

    def chunk(self, state, size: int, likelihood: Likelihood) -> tuple[dict, dict, object]:
        """(draws, extra fields, end state) of `size` transitions; draws are (chains, size, ...)."""
        if size not in self._chunks:
            self._chunks[size] = self._map(partial(self._chunk_one, size=size), batched_args=1)
        fn, args = self._chunks[size], (likelihood,)
        if self.chain_method == "single":
            draws, extra, end = fn(state, args, self.kwargs)
            return _add_chain_axis(draws), _add_chain_axis(extra), end
        if self.chain_method == "vectorized":  # scanned draws come out (size, chains, ...)
            draws, extra, end = fn(state, args, self.kwargs)
            return jax.tree.map(lambda x: jnp.swapaxes(x, 0, 1), (draws, extra)) + (end,)
        if self.chain_method == "sequential":
            per_chain = [fn(_chain(state, c), args, self.kwargs) for c in range(self.chains)]
            return jax.tree.map(lambda *xs: np.stack(xs), *per_chain)
        return fn(state, args, self.kwargs)


def _chain(tree, c: int):  # noqa: ANN001, ANN202 (pytrees)
    return jax.tree.map(lambda x: x[c], tree)


def _add_chain_axis(tree: dict) -> dict:
    return jax.tree.map(lambda x: x[None], tree)


def _chain_method(config: SamplerConfig) -> str:
    """What runs: 'parallel' falls back to 'sequential' (with a warning) without a device per chain."""
    if config.chain_method == "parallel" and config.chains > 1 and jax.local_device_count() < config.chains:
        warnings.warn(
            f"there are not enough devices to run parallel chains: expected {config.chains} but got "
            f"{jax.local_device_count()}; chains will run sequentially",
            RuntimeWarning,
            stacklevel=3,
        )
        return "sequential"
    return config.chain_method


def _run_chunks(programs: _Programs, state, sizes: list[int], likelihood: Likelihood, on_chunk: Callable) -> object:
    """Run chunks of `sizes` transitions from `state`, handing each (draws, extra, end state,
    compile s, run s) to `on_chunk`; returns the last end state (on the host)."""
    for size in sizes:
        start = time.perf_counter()
        compile0 = _compile_clock.seconds
        draws, extra, end = programs.chunk(state, size, likelihood)
        _block(end)
        compile_s = _compile_clock.seconds - compile0
        state = jax.device_get(end)
        on_chunk(draws, extra, state, compile_s, max(time.perf_counter() - start - compile_s, 0.0))
    return state


def _warm_up(
    programs: _Programs, likelihood: Likelihood, config: SamplerConfig, model: Callable, start: Start | None = None
) -> Warmup:
    """NUTS warm-up (step size and mass matrix adaptation) in chunks of the sampling program;
    `start` is where init 'plugin' starts (models.plug_in_start)."""
    began = time.perf_counter()
    compile0 = _compile_clock.seconds
    inits = inverse_mass = None
    if config.init == "map":  # part of warm-up: its time is counted there
        inits, _ = map_inits(model, likelihood, config.chains, config.seed)
    elif config.init == "laplace":  # a start near the mode will do: the Hessian barely changes there
        flat = flatten_model(model, likelihood, config.seed)
        inits, mode = map_inits(model, likelihood, config.chains, config.seed, flat=flat, max_iter=LAPLACE_START_ITER)
        inverse_mass = jnp.asarray(laplace_inverse_mass(flat, mode.x))
    elif config.init == "plugin":
        if start is None:
            raise ValueError("init 'plugin' needs its start: models.model.plug_in_start")
        inits = {k: jnp.asarray(v) for k, v in start.inits.items()}
        inverse_mass = jnp.asarray(start.inverse_mass)
    state = jax.device_get(
        programs.init(likelihood, inits, inverse_mass)
    )  # every chunk starts from host arrays: one trace
    clocks = {"compile": _compile_clock.seconds - compile0, "run": 0.0}
    init_s = time.perf_counter() - began - clocks["compile"]

    def count(draws, extra, end, compile_s, run_s):  # noqa: ANN001 (warm-up draws are not kept)
        clocks["compile"] += compile_s
        clocks["run"] += run_s
        advance(int(jax.tree.leaves(extra)[0].shape[1]))

    sizes = warmup_phases(config)
    with _progress(config, "warm-up", config.warmup, 0) as advance:
        state = _run_chunks(programs, state, sizes, likelihood, count)
    return Warmup(jax.device_get(state), programs.method, clocks["compile"], init_s + clocks["run"])


def init_state(kernel, config: SamplerConfig, key, params, inverse_mass, args, kwargs):  # noqa: ANN001, ANN201
    """One chain's first NUTS state, from `params` (None: NumPyro's random start) and with
    `inverse_mass` as the first inverse mass matrix (None: `config.first_mass`'s, the identity
    or `noise_scaled_mass`).

    NUTS takes its first inverse mass matrix from the kernel when it builds a state; it is set
    for this call only, so that it is an argument of the compiled program (one program for
    every data set, or a lane's own under vmap), keyed by FlatNUTS's one site."""
    if inverse_mass is not None:
        kernel._inverse_mass_matrix = {(FLAT,): inverse_mass}
    elif config.first_mass == "noise":
        kernel._inverse_mass_matrix = {(FLAT,): noise_scaled_mass(kernel.model, args, kwargs)[1]}
    try:
        return kernel.init(key, config.warmup, params, args, kwargs)
    finally:
        kernel._inverse_mass_matrix = None


def noise_scaled_mass(model: Callable[..., None], args: tuple, kwargs: dict) -> tuple[tuple[str, ...], jnp.ndarray]:
    """The latent sites (sorted: NumPyro's order) and a first inverse mass matrix for them that
    knows the noise scale: 1 everywhere but log sigma, whose posterior variance is about
    1 / (2 N) with N observations (the Fisher information of a Gaussian's log sd).

    With the identity, sigma's scale (sd 0.003-0.01 on the log scale) sets NUTS's step size
    until the first mass-matrix window ends, and those first ~100 warm-up iterations ran
    depth-9 and -10 trees: two thirds to three quarters of all warm-up gradients
    (benchmarks/experiments/noise_scaled_mass). The shapes come from a trace of the model, so
    this adds nothing to the compiled program but a few constants and N."""
    trace = handlers.trace(handlers.seed(model, 0)).get_trace(*args, **kwargs)
    latent = {k: v for k, v in trace.items() if v["type"] == "sample" and not v["is_observed"]}
    count = args[0].observations()
    parts = []
    for name in sorted(latent):
        size = int(np.size(biject_to(latent[name]["fn"].support).inv(latent[name]["value"])))
        parts.append(jnp.full(size, 0.5 / count) if name == "sigma" else jnp.ones(size))
    return tuple(sorted(latent)), jnp.concatenate(parts)


def fresh_kernel(
    model: Callable[[Likelihood], None], likelihood: Likelihood, config: SamplerConfig, chain_method: str
) -> tuple[_Programs, object]:
    """The compiled programs set up as a warm-up leaves them (to continue a saved state), and
    the pytree structure of their state, which saved states are rebuilt on."""
    programs = _Programs(model, config, chain_method)
    return programs, jax.tree_util.tree_structure(programs.init(likelihood))


def sample_posterior(
    model: Callable[[Likelihood], None],
    likelihood: Likelihood,
    config: SamplerConfig,
    checkpoint_dir: str | Path | None = None,
    start: Start | None = None,
) -> SamplingResult:
    """Warm up and sample `model` with NUTS; same config and seed give the same draws.

    Draws are taken `config.checkpoint_every` at a time, each chunk starting from the state
    the previous one ended in. With `checkpoint_dir`, the state after warm-up and every chunk
    (draws and end state together) are saved there atomically, and a call on a directory
    that holds some of them continues from the last: the result is the same, draw for draw,
    as a run that was never stopped.
    """
    if config.kernel != "nuts":
        raise ConfigError(f"kernel {config.kernel!r} runs many fits at once (sbc, batched.batch_sampler), not one")
    ckpt = Checkpoint(Path(checkpoint_dir), config) if checkpoint_dir is not None else None
    setup_s = 0.0
    if ckpt and ckpt.has_warmup():  # resumed after warm-up: set the programs up as the warm-up left them
        compile0 = _compile_clock.seconds
        programs, structure = fresh_kernel(model, likelihood, config, ckpt.warmup_header()["chain_method"])
        setup_s = _compile_clock.seconds - compile0
        warm = ckpt.warmup(structure)
        chunks = ckpt.chunks(structure)
    else:
        if ckpt:
            ckpt.discard_chunks()
        programs = _Programs(model, config, _chain_method(config))
        warm = _warm_up(programs, likelihood, config, model, start)
        if ckpt:
            ckpt.save_warmup(warm)
        chunks = []
    sizes = chunk_sizes(config)
    if len(chunks) < len(sizes):

        def keep(draws, extra, end, compile_s, run_s):  # noqa: ANN001
            nonlocal setup_s
            chunk = Chunk(
                {k: np.asarray(v) for k, v in draws.items()},
                {k: np.asarray(v) for k, v in extra.items()},
                end,
                compile_s + setup_s,
                run_s,
            )
            setup_s = 0.0
            if ckpt:
                ckpt.save_chunk(len(chunks), chunk)
            chunks.append(chunk)
            advance(int(next(iter(chunk.extra.values())).shape[1]))

        state = chunks[-1].state if chunks else warm.state
        with _progress(config, "sampling", sum(sizes), sum(sizes[: len(chunks)])) as advance:
            _run_chunks(programs, state, sizes[len(chunks) :], likelihood, keep)

    samples = {k: np.concatenate([c.samples[k] for c in chunks], axis=1) for k in chunks[0].samples}
    extra = {k: np.concatenate([c.extra[k] for c in chunks], axis=1) for k in chunks[0].extra}
    sampling_s = sum(c.sampling_s for c in chunks)
    compile_s = warm.compile_s + sum(c.compile_s for c in chunks)
    timing = Timing(
        compile_s=compile_s,
        warmup_s=warm.warmup_s,
        sampling_s=sampling_s,
        total_s=compile_s + warm.warmup_s + sampling_s,
    )
    return SamplingResult(samples, _sampler_stats(extra), timing, config, warm.chain_method)


def chunk_sizes(config: SamplerConfig) -> list[int]:
    """Draws per chunk: checkpoint_every each, the remainder last."""
    return _split(config.draws, config.checkpoint_every)


def _split(total: int, every: int) -> list[int]:
    full, rest = divmod(total, every)
    return [every] * full + ([rest] if rest else [])


@dataclass(frozen=True)
class Warmup:
    state: object  # numpyro HMCState on the host, leading axis = chains
    chain_method: str
    compile_s: float
    warmup_s: float


@dataclass(frozen=True)
class Chunk:
    samples: dict[str, np.ndarray]  # (chains, draws of this chunk, ...)
    extra: dict[str, np.ndarray]
    state: object  # where the next chunk starts
    compile_s: float
    sampling_s: float


# Sampler settings added after checkpoints were first written, with the value a checkpoint
# that lacks them was written under.
SETTINGS_ADDED = {"kernel": "nuts", "mass_estimate": "variance"}


class Checkpoint:
    """The files of an unfinished run: warmup.npz, then chunk_0000.npz, chunk_0001.npz, ...

    Each file is NumPy arrays plus a JSON header (read back without pickle, so opening someone
    else's run directory cannot run their code): the sampler settings and library versions
    with the warm-up, the draws, sampler statistics and end state with each chunk. The state
    is stored as the leaves of its pytree and rebuilt on the structure of a fresh sampler
    state, which must match. Files are written to a temporary name and renamed, so a file that
    exists is whole; one damaged later (a truncated copy, a full disk) is reported by name.
    A directory written under other settings or versions is refused rather than mixed.
    """

    WARMUP = "warmup.npz"
    HEADER = "__header__"

    @staticmethod
    def chunk_name(index: int) -> str:
        return f"chunk_{index:04d}.npz"

    def __init__(self, directory: Path, config: SamplerConfig) -> None:
        self.directory = directory
        self.settings = {k: v for k, v in asdict(config).items() if k not in ("progress_bar", "platform")}
        self.versions = {pkg: _version(pkg) for pkg in ("numpyro", "jax", "jaxlib")}

    def _write(self, name: str, header: dict, arrays: dict[str, np.ndarray]) -> None:
        with atomic_path(self.directory / name) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, **{self.HEADER: np.array(json.dumps(header))}, **arrays)

    def _read(self, name: str, arrays: bool = True) -> tuple[dict, dict[str, np.ndarray]]:
        path = self.directory / name
        try:
            with np.load(path, allow_pickle=False) as z:
                header = json.loads(str(z[self.HEADER]))
                return header, ({k: z[k] for k in z.files if k != self.HEADER} if arrays else {})
        except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as exc:
            raise CheckpointError(
                f"{path}: a damaged checkpoint file ({type(exc).__name__}: {exc}); delete it and every later "
                "chunk file, then resume: the draws they held are drawn again, identically"
            ) from exc

    def has_warmup(self) -> bool:
        return (self.directory / self.WARMUP).exists()

    def warmup_header(self) -> dict:
        header, _ = self._read(self.WARMUP, arrays=False)
        # a warm-up saved before a setting existed ran with the value it then had
        if {**SETTINGS_ADDED, **header["settings"]} != self.settings:
            raise CheckpointError(
                f"{self.directory}: checkpoint written with sampler settings {header['settings']}, "
                f"not {self.settings}; start a new run"
            )
        if header["versions"] != self.versions:
            raise CheckpointError(
                f"{self.directory}: checkpoint written with {header['versions']}, but this is "
                f"{self.versions}; the chains would not continue as they were; install those "
                "versions to resume, or start a new run"
            )
        return header

    def warmup(self, structure) -> Warmup:  # noqa: ANN001 (a jax PyTreeDef)
        """The saved warm-up, its state rebuilt on `structure` (that of a fresh sampler state)."""
        header = self.warmup_header()
        _, arrays = self._read(self.WARMUP)
        state = _rebuild(structure, header, arrays, self.directory / self.WARMUP)
        return Warmup(state, header["chain_method"], header["compile_s"], header["warmup_s"])

    def save_warmup(self, warm: Warmup) -> None:
        leaves, structure = jax.tree_util.tree_flatten(warm.state)
        header = {
            "settings": self.settings,
            "versions": self.versions,
            "chain_method": warm.chain_method,
            "compile_s": warm.compile_s,
            "warmup_s": warm.warmup_s,
            "structure": str(structure),
        }
        self._write(self.WARMUP, header, _state_arrays(leaves))

    def chunk_count(self) -> int:
        """How many chunks are saved and readable, counting up to the first missing or damaged one."""
        n = 0
        while (self.directory / self.chunk_name(n)).exists():
            try:
                self._read(self.chunk_name(n), arrays=False)
            except CheckpointError:
                break
            n += 1
        return n

    def damaged(self) -> Path | None:
        """The first checkpoint file that exists but cannot be read (None if all are whole)."""
        names = [self.WARMUP] if self.has_warmup() else []
        names += [p.name for p in sorted(self.directory.glob("chunk_*.npz"))]
        for name in names:
            try:
                self._read(name, arrays=False)
            except CheckpointError:
                return self.directory / name
        return None

    def chunks(self, structure) -> list[Chunk]:  # noqa: ANN001
        """The saved chunks, in order, up to the first missing one (a damaged one is an error)."""
        out, n = [], 0
        while (self.directory / self.chunk_name(n)).exists():
            header, arrays = self._read(self.chunk_name(n))
            state = _rebuild(structure, header, arrays, self.directory / self.chunk_name(n))
            out.append(
                Chunk(
                    {k[2:]: v for k, v in arrays.items() if k.startswith("s:")},
                    {k[2:]: v for k, v in arrays.items() if k.startswith("x:")},
                    state,
                    header["compile_s"],
                    header["sampling_s"],
                )
            )
            n += 1
        return out

    def save_chunk(self, index: int, chunk: Chunk) -> None:
        leaves, structure = jax.tree_util.tree_flatten(chunk.state)
        arrays = {
            **{f"s:{k}": v for k, v in chunk.samples.items()},
            **{f"x:{k}": v for k, v in chunk.extra.items()},
            **_state_arrays(leaves),
        }
        self._write(
            self.chunk_name(index),
            {"compile_s": chunk.compile_s, "sampling_s": chunk.sampling_s, "structure": str(structure)},
            arrays,
        )

    def discard_chunks(self) -> None:
        """Chunks without the warm-up they continue are not this run's: remove them."""
        for path in self.directory.glob("chunk_*.npz"):
            path.unlink()


def _state_arrays(leaves: list) -> dict[str, np.ndarray]:
    return {f"t:{i:04d}": np.asarray(leaf) for i, leaf in enumerate(leaves)}


def _rebuild(structure, header: dict, arrays: dict[str, np.ndarray], path: Path):  # noqa: ANN001, ANN202
    if header.get("structure") != str(structure):
        raise CheckpointError(
            f"{path}: the saved sampler state does not fit this sampler's ({header.get('structure')} "
            f"against {structure}); start a new run"
        )
    leaves = [arrays[k] for k in sorted(k for k in arrays if k.startswith("t:"))]
    return jax.tree_util.tree_unflatten(structure, leaves)


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def saved_draws(directory: Path, config: SamplerConfig) -> tuple[bool, int]:
    """Whether a checkpoint holds the warm-up, and how many draws per chain it holds (readable
    chunks only)."""
    ckpt = Checkpoint(directory, config)
    return ckpt.has_warmup(), sum(chunk_sizes(config)[: ckpt.chunk_count()])


def _block(tree: object) -> None:
    """Wait for asynchronous dispatch to finish so that the clocks are honest."""
    if tree is not None:
        jax.block_until_ready(tree)


@contextmanager
def _progress(config: SamplerConfig, phase: str, total: int, done: int):
    """A progress bar over the iterations per chain of `phase`, advanced chunk by chunk (when asked for)."""
    if not config.progress_bar:
        yield lambda n: None
        return

    with Progress(
        TextColumn(phase),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("iterations per chain"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
    ) as bar:
        task = bar.add_task(phase, total=total, completed=done)
        yield lambda n: bar.advance(task, n)
