"""Many fits of one model in one compiled program (issue 19).

Every data set of a model has the same fixed-size sufficient statistics, so B fits x C chains
can be lanes of one program: each lane runs one chain's NUTS warm-up and draws in a scan
(`_lane`), lanes are spread over the machine's devices (pmap: CPU cores, or one GPU) and
vectorised within a device (vmap). Vectorised NUTS steps every lane of a device until its
longest trajectory ends; `lanes_per_device` trades that wait against per-call overhead
(benchmarks/sbc_throughput.py measures fits per minute both ways).

A lane is exactly a chain of `sampling.sample_posterior` with chain_method "parallel": fit b
with seed s has the draws of a single fit with seed s (tests/test_batched.py). The data of a
fit (likelihood arrays, the hierarchical whitening) are arguments, so the program compiles
once per model, touched cells, batch size and sampler settings.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from operator import attrgetter

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from lineup_numpyro.config import SamplerConfig
from lineup_numpyro.inference.chees import ChEES
from lineup_numpyro.inference.sampling import EXTRA_FIELDS, FLAT, _sampler_stats, init_state, nuts_kernel
from lineup_numpyro.models.model import Likelihood, Start, data_arguments

# The starts the lanes take: NumPyro's random one, or one from the data given with each fit
# (`run(starts=...)`); map and laplace search a mode per fit inside the single-fit sampler only.
BATCHED_INITS = ("default", "plugin")


@dataclass(frozen=True)
class BatchResult:
    """Draws and sampler statistics of B fits, each (B, chains, draws, ...), in the order given."""

    samples: dict[str, np.ndarray]
    stats: dict[str, np.ndarray]
    seconds: float  # wall time of all batches, compilation included


def _row(tree: dict, c: int) -> dict:
    return {k: np.asarray(v)[c] for k, v in tree.items()}


def _stack(trees: Sequence) -> object:
    return jax.tree.map(lambda *xs: np.stack([np.asarray(x) for x in xs]), *trees)


class BatchSampler:
    """NUTS over many data sets of one model: `run(likelihoods, seeds, data)`.

    `model` is a model function as `models.get_model` gives it; the per-fit data keywords
    (`models.model.DATA_KEYWORDS`, e.g. the hierarchical whitening) come with each fit in
    `run` (default: `model`'s own, for every fit), so every fit shares the rest (model,
    touched cells, priors).
    """

    def __init__(self, model: Callable[[Likelihood], None], config: SamplerConfig, lanes_per_device: int | None = None):
        self.fn, self.model_data = data_arguments(model)
        self.kernel = nuts_kernel(self.fn, config)
        self.config = config
        self.devices = jax.local_device_count()
        self.lanes_per_device = lanes_per_device  # program lanes (units) per device
        self.unit, self.grouped = 1, False  # chains per program lane; lanes with a chain axis
        self._programs: dict[int, Callable] = {}

    def _lane(self, key, likelihood, kwargs, params, inverse_mass):  # noqa: ANN001, ANN202 (traced pytrees)
        """One chain of one fit: warm-up (from `params` with `inverse_mass`, or NumPyro's
        random start: None), then the draws and their sampler statistics."""
        args = (likelihood,)
        state = init_state(self.kernel, self.config, key, params, inverse_mass, args, kwargs)
        postprocess = self.kernel.postprocess_fn(args, kwargs)

        def warm(state, _):
            return self.kernel.sample(state, args, kwargs), None

        def draw(state, _):
            state = self.kernel.sample(state, args, kwargs)
            return state, (postprocess(state.z), {name: attrgetter(name)(state) for name in EXTRA_FIELDS})

        state, _ = lax.scan(warm, state, None, length=self.config.warmup)
        _, out = lax.scan(draw, state, None, length=self.config.draws)
        return out

    def _program(self, per_device: int) -> Callable:
        if per_device not in self._programs:
            lanes = jax.vmap(self._lane)
            self._programs[per_device] = jax.pmap(lanes) if self.devices > 1 else jax.jit(lanes)
        return self._programs[per_device]

    def run(
        self,
        likelihoods: Sequence[Likelihood],
        seeds: Sequence[int],
        data: Sequence[dict] | None = None,
        starts: Sequence[Start | None] | None = None,
    ) -> BatchResult:
        """Fit each likelihood (with its data keywords) with its seed, from its start (init
        'plugin': models.plug_in_start) or NumPyro's random one; lanes beyond the last fit of a
        batch are padding (copies of its first lane), computed and dropped."""
        start = time.perf_counter()
        fits, chains = len(likelihoods), self.config.chains
        if len(seeds) != fits or any(x is not None and len(x) != fits for x in (data, starts)):
            raise ValueError("one seed (and one set of data keywords, one start) per likelihood")
        data = list(data) if data is not None else [self.model_data] * fits
        # each lane's start: its chain's row of its fit's inits, and its fit's inverse mass
        # (starts of None, as models.start_for gives for a random start: NumPyro's own)
        if starts is not None and any(s is None for s in starts):
            if not all(s is None for s in starts):
                raise ValueError("every fit of a batch starts from the data, or none does")
            starts = None
        lane_start = (
            [(_row(starts[f].inits, c), np.asarray(starts[f].inverse_mass)) for f in range(fits) for c in range(chains)]
            if starts is not None
            else None
        )
        # a program lane is `self.unit` chains: one chain (NUTS), or a fit's chains (ChEES)
        unit = self.unit
        lanes = np.arange(fits * chains).reshape(-1, unit)
        per_device = self.lanes_per_device or -(-lanes.shape[0] // self.devices)
        batch_lanes = per_device * self.devices
        lane_fit = np.repeat(np.arange(fits), chains)
        lane_key = np.concatenate([np.asarray(jax.random.split(jax.random.PRNGKey(s), chains)) for s in seeds])
        lead = (self.devices, per_device) if self.devices > 1 else (per_device,)
        shape = (*lead, unit) if self.grouped else lead

        def to_lanes(tree):  # noqa: ANN001, ANN202 -- (batch_lanes * unit, ...) to shape + (...)
            return jax.tree.map(lambda x: x.reshape(*shape, *x.shape[1:]), tree)

        def from_lanes(tree, keep: int):  # noqa: ANN001, ANN202 -- to (chains kept, ...)
            return jax.tree.map(
                lambda x: np.asarray(x).reshape(batch_lanes * unit, *x.shape[len(shape) :])[: keep * unit], tree
            )

        pieces = []
        for first in range(0, lanes.shape[0], batch_lanes):
            idx = np.arange(first, first + batch_lanes)
            idx = lanes[np.where(idx < lanes.shape[0], idx, first)].reshape(-1)  # padded with the batch's first
            which = lane_fit[idx]
            begin = (None, None) if lane_start is None else _stack([lane_start[i] for i in idx])
            args = to_lanes(
                (lane_key[idx], _stack([likelihoods[f] for f in which]), _stack([data[f] for f in which]), *begin)
            )
            out = jax.device_get(self._program(per_device)(*args))
            pieces.append(from_lanes(out, int(min(batch_lanes, lanes.shape[0] - first))))
        draws, extra = jax.tree.map(lambda *xs: np.concatenate(xs), *pieces)
        by_fit = jax.tree.map(lambda x: x.reshape(fits, chains, *x.shape[1:]), (draws, extra))
        return BatchResult(by_fit[0], _sampler_stats(by_fit[1]), time.perf_counter() - start)


class ChEESBatchSampler(BatchSampler):
    """Jittered HMC with ChEES-adapted trajectories (chees.py) over many data sets of one model:
    a program lane is one fit, its chains moving together, so that lanes wait only for fits
    with longer trajectories (T / eps), never for a chain's unlucky tree. Same interface and
    outputs as BatchSampler; a fit's draws do not depend on the batch it runs in."""

    def __init__(self, model: Callable[[Likelihood], None], config: SamplerConfig, lanes_per_device: int | None = None):
        super().__init__(model, config, lanes_per_device)
        self.unit, self.grouped = config.chains, True  # a fit's chains, however many
        self.sampler = ChEES(config)

    def _lane(self, key, likelihood, kwargs, params, inverse_mass):  # noqa: ANN001, ANN202 (traced pytrees)
        """One fit: its chains' starts (NumPyro's, as NUTS would start them: each leaf has a
        leading chain axis), then warm-up and draws with one step size, trajectory length and
        mass matrix; draws and statistics shaped (chains, draws, ...)."""
        first = lambda tree: jax.tree.map(lambda x: x[0], tree)  # noqa: E731 -- every chain has the fit's data
        args, kwargs = (first(likelihood),), first(kwargs)
        starts = jax.vmap(lambda k, p, m: init_state(self.kernel, self.config, k, p, m, args, kwargs))(
            key, params, inverse_mass
        )
        potential = self.kernel._potential_fn_gen(*args, **kwargs)
        postprocess = self.kernel.postprocess_fn(args, kwargs)
        value_and_grad = jax.vmap(jax.value_and_grad(lambda z: potential({FLAT: z})))
        step_size = jnp.exp(jnp.mean(jnp.log(starts.adapt_state.step_size)))
        (first_mass,) = starts.adapt_state.inverse_mass_matrix.values()
        state = self.sampler.init(
            jax.random.fold_in(key[0], 1),
            starts.z[FLAT],
            starts.potential_energy,
            starts.z_grad[FLAT],
            first_mass[0],
            step_size,
        )

        def warm(state, _):
            return self.sampler.step(state, value_and_grad)[0], None

        def draw(state, _):
            state, stats = self.sampler.step(state, value_and_grad)
            return state, (jax.vmap(lambda z: postprocess({FLAT: z}))(state.z), stats)

        state, _ = lax.scan(warm, state, None, length=self.config.warmup)
        _, out = lax.scan(draw, state, None, length=self.config.draws)
        return jax.tree.map(lambda x: jnp.swapaxes(x, 0, 1), out)


def batch_sampler(
    model: Callable[[Likelihood], None], config: SamplerConfig, lanes_per_device: int | None = None
) -> BatchSampler:
    """The batched engine of `config.kernel`: NUTS lanes of one chain, or ChEES lanes of one fit."""
    engine = ChEESBatchSampler if config.kernel == "chees" else BatchSampler
    return engine(model, config, lanes_per_device)


def sample_many(
    model: Callable[[Likelihood], None],
    likelihoods: Sequence[Likelihood],
    config: SamplerConfig,
    seeds: Sequence[int] | None = None,
    data: Sequence[dict] | None = None,
    lanes_per_device: int | None = None,
) -> BatchResult:
    """Fits of `model` to each of `likelihoods` in one compiled program; seeds default
    to config.seed + i for the i-th fit."""
    seeds = list(seeds) if seeds is not None else [config.seed + i for i in range(len(likelihoods))]
    return batch_sampler(model, config, lanes_per_device).run(likelihoods, seeds, data)
