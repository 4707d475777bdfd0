"""Running the reference Stan programs of models/ through PyStan 3: data, build, NUTS, timings.

Used by the parity harness and the benchmarks. Two forms exist per model: `reference`
(the original row-by-row likelihood) and `fast` (the same density from the sufficient
statistics). httpstan caches compiled programs; the fits it would also cache are deleted
after their draws and timings are read, so a repeated request really samples again and the
cache does not grow without bound.
"""

from __future__ import annotations

import contextlib
import fcntl
import gzip
import json
import multiprocessing as mp
import os
import re
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from lineup_numpyro import names
from lineup_numpyro.config import PRIORS_OF_MODEL, Priors
from lineup_numpyro.data.possessions import Possessions
from lineup_numpyro.data.suffstats import SuffStats
from lineup_numpyro.errors import StanUnavailable
from lineup_numpyro.models.cells import Cells
from lineup_numpyro.models.whitening import Whitening


def stan_dir() -> Path:
    """Where the Stan files are: $LINEUP_STAN_MODELS, else the package's copy (models/ of the
    repository, installed as lineup_numpyro.stan.files), else models/ of an uninstalled tree."""
    override = os.environ.get("LINEUP_STAN_MODELS")
    if override:
        return Path(override)
    try:
        return Path(str(resources.files("lineup_numpyro.stan.files")))
    except ModuleNotFoundError:
        return Path(__file__).resolve().parents[2] / "models"


STAN_FILES = {
    ("simplified", "reference"): "simplified.stan",
    ("matchup", "reference"): "matchup_specific.stan",
    ("matchup", "fast"): "matchup_specific_fast.stan",
    ("hierarchical", "reference"): "hierarchical.stan",
    ("hierarchical", "fast"): "hierarchical_fast.stan",
}
_ELAPSED = re.compile(r"([0-9.eE+-]+) seconds \((Warm-up|Sampling)\)")


def stan_file(model: str, form: str = "reference") -> Path:
    try:
        return stan_dir() / STAN_FILES[(model, form)]
    except KeyError:
        forms = sorted(f for m, f in STAN_FILES if m == model)
        raise ValueError(f"no Stan file for model {model!r} in form {form!r}; forms: {', '.join(forms)}") from None


def stan_data(
    model: str,
    form: str,
    rows: Possessions | None = None,
    stats: SuffStats | None = None,
    cells: Cells | None = None,
    whitening: Whitening | None = None,
    priors: Priors | None = None,
) -> dict:
    """The data block of the Stan file: rows for the reference files, statistics for the fast one,
    and for the per-matchup models the touched cells (cells.py; default: those of the data),
    each family's as 1-based (matchup, archetype) pairs, which the Stan files sample; for the
    hierarchical model each touched cell's whitening (default: from the data's statistics);
    the model's prior scales as `prior_<family>` (default: config.Priors())."""
    if form == "fast":
        if stats is None:
            raise ValueError("the fast Stan form needs sufficient statistics")
        data = {
            "M": names.N_MATCHUPS,
            "K": names.N_ARCHETYPES,
            "n": stats.n,
            "xtx": stats.xtx,
            "xty": stats.xty,
            "yty": stats.yty,
        }
    else:
        if rows is None:
            raise ValueError("the reference Stan files need the possessions in memory")
        data = {"N": len(rows), "K": names.N_ARCHETYPES, "y": rows.y, "z_off": rows.z_off, "z_def": rows.z_def}
        if model != "simplified":
            data.update(M=names.N_MATCHUPS, matchup=rows.matchup + 1)
    if model != "simplified":
        stats = stats if stats is not None else SuffStats.from_possessions(rows)
        cells = cells if cells is not None else Cells.from_stats(stats)
        if model == "hierarchical" and whitening is None:
            whitening = Whitening.from_stats(stats, (priors or Priors()).tau)
        data.update(_cell_data(cells, whitening if model == "hierarchical" else None))
    chosen = (priors or Priors()).to_dict()
    data.update({f"prior_{family}": chosen[family] for family in PRIORS_OF_MODEL[model]})
    return data


def _cell_data(cells: Cells, whitening: Whitening | None = None) -> dict:
    """K0, K_off, K_def touched cells, with their 1-based matchups (and archetypes), and with a
    whitening each cell's data precision p and location ehat."""
    out = {}
    for family, short in names.FAMILY_SHORT.items():
        m, a = cells.matchup_archetype(family)
        out[f"K_{short}"] = int(m.size)
        out[f"m_{short}"] = (m + 1).astype(int)
        if family != "beta_0":
            out[f"a_{short}"] = (a + 1).astype(int)
        if whitening is not None:
            out[f"p_{short}"], out[f"ehat_{short}"] = whitening.family(family, cells.index(family))
    return out


def build_stan(model: str, form: str, data: dict, seed: int = 0):
    """Compile (or fetch from httpstan's cache) the Stan program with `data` bound."""
    try:
        import stan
    except ImportError as exc:
        raise StanUnavailable("PyStan is not installed; run `pip install -e .[stan]`") from exc
    program = stan_file(model, form).read_text()
    with _one_build_at_a_time():
        return stan.build(program, data={k: np.asarray(v).tolist() for k, v in data.items()}, random_seed=seed)


@contextlib.contextmanager
def _one_build_at_a_time() -> Iterator[None]:
    """httpstan compiles into one cache per user: two processes building the same program at
    once (tests run in parallel, two parity commands) must not write it at the same time."""
    path = Path(tempfile.gettempdir()) / f"lineup-numpyro-stan-build-{os.getuid()}.lock"
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def stan_draws(fit) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(parameters, sampler stats) of a PyStan fit, each (chains, draws, ...)."""
    chains = fit.num_chains

    def by_chain(arr: np.ndarray) -> np.ndarray:
        # PyStan stacks draws with the chain varying fastest along the last axis
        arr = arr.reshape(*arr.shape[:-1], -1, chains)
        return np.moveaxis(np.moveaxis(arr, -1, 0), -1, 1)

    def scalar(name: str) -> np.ndarray:
        return by_chain(np.asarray(fit[name])[0])  # PyStan gives scalars a leading axis of 1

    params = {
        name: by_chain(np.asarray(fit[name])) if dims else scalar(name) for name, dims in zip(fit.param_names, fit.dims)
    }
    stats = {
        "diverging": scalar("divergent__").astype(bool),
        "tree_depth": scalar("treedepth__").astype(np.int64),
        "n_steps": scalar("n_leapfrog__").astype(np.int64),
        "lp": scalar("lp__"),
    }
    return params, stats


@dataclass(frozen=True)
class StanTiming:
    """Seconds: building (compiling or fetching from cache, and binding the data), the whole
    sample call (wall, chains in httpstan's worker processes), and Stan's own per-chain
    warm-up and sampling times."""

    build_s: float
    sample_wall_s: float
    chain_warmup_s: tuple[float, ...]
    chain_sampling_s: tuple[float, ...]

    @property
    def sampling_s(self) -> float:
        """Wall seconds of the sampling phase: the sample call's wall time, shared between
        the phases in proportion to the chains' own warm-up and sampling times."""
        busy = sum(self.chain_warmup_s) + sum(self.chain_sampling_s)
        return self.sample_wall_s * sum(self.chain_sampling_s) / busy if busy > 0 else float("nan")

    @property
    def warmup_s(self) -> float:
        return self.sample_wall_s - self.sampling_s


@dataclass(frozen=True)
class StanFit:
    samples: dict[str, np.ndarray]  # (chains, draws, ...) by Stan name
    stats: dict[str, np.ndarray]  # diverging, tree_depth, n_steps, lp; (chains, draws)
    timing: StanTiming
    files: tuple[str, ...] = ()  # httpstan's fit files, one per chain, when asked to keep them


def fit_files(model_dir: Path | None = None) -> set[Path]:
    """The fits httpstan holds on disk, of one compiled model or of all."""
    if model_dir is None:
        from httpstan import cache

        return set((cache.cache_directory() / "models").glob("*/fits/*.jsonlines.gz"))
    return set((model_dir / "fits").glob("*.jsonlines.gz"))


def _elapsed_times(fit_file: Path) -> tuple[float, float]:
    """(warm-up, sampling) seconds that Stan logged at the end of one chain's fit."""
    found = {}
    with gzip.open(fit_file, "rt") as fh:
        for line in fh:
            if '"logger"' not in line or "seconds" not in line:
                continue
            for value in json.loads(line).get("values", []):
                match = _ELAPSED.search(str(value))
                if match:
                    found[match.group(2)] = float(match.group(1))
    if set(found) != {"Warm-up", "Sampling"}:
        raise RuntimeError(f"{fit_file}: Stan logged no elapsed times")
    return found["Warm-up"], found["Sampling"]


def _sample_stan_here(model: str, form: str, data: dict, sampler, keep_files: bool = False) -> StanFit:
    from httpstan import cache

    try:
        start = time.perf_counter()
        stan_model = build_stan(model, form, data, seed=sampler.seed)
        built = time.perf_counter()
        model_dir = cache.model_directory(stan_model.model_name)
        before = fit_files(model_dir)
        fit = stan_model.sample(
            num_chains=sampler.chains,
            num_warmup=sampler.warmup,
            num_samples=sampler.draws,
            delta=sampler.target_accept,
            max_depth=sampler.max_tree_depth,
        )
        end = time.perf_counter()
        new = sorted(fit_files(model_dir) - before)
        if len(new) != sampler.chains:
            raise RuntimeError(
                f"expected {sampler.chains} new fits in {model_dir}, found {len(new)}: "
                "was the fit served from httpstan's cache?"
            )
        try:
            elapsed = [_elapsed_times(f) for f in new]
        finally:
            for f in new if not keep_files else ():
                f.unlink(missing_ok=True)
        params, stats = stan_draws(fit)
        timing = StanTiming(built - start, end - built, tuple(w for w, _ in elapsed), tuple(s for _, s in elapsed))
        return StanFit(params, stats, timing, tuple(str(f) for f in new) if keep_files else ())
    finally:
        # httpstan keeps its forked chain processes alive; without this the process never exits
        from httpstan import services_stub

        services_stub.executor.shutdown(wait=True)


def _finished_chains_here(model: str, form: str, data: dict, sampler, files: list[str]) -> StanFit:
    import stan.fit

    try:
        stan_model = build_stan(model, form, data, seed=sampler.seed)
        outputs = tuple(gzip.open(f, "rb").read() for f in files)
        fit = stan.fit.Fit(
            outputs,
            len(files),
            stan_model.param_names,
            stan_model.constrained_param_names,
            stan_model.dims,
            sampler.warmup,
            sampler.draws,
            1,
            False,
        )
        elapsed = [_elapsed_times(Path(f)) for f in files]
        params, stats = stan_draws(fit)
        # the chains ran side by side (one per core), so each phase lasted as long as its slowest chain
        warmup, sampling = max(w for w, _ in elapsed), max(s for _, s in elapsed)
        timing = StanTiming(0.0, warmup + sampling, tuple(w for w, _ in elapsed), tuple(s for _, s in elapsed))
        return StanFit(params, stats, timing)
    finally:
        from httpstan import services_stub

        services_stub.executor.shutdown(wait=True)


def finished_chains(model: str, form: str, data: dict, sampler, files: list[str]) -> StanFit:
    """The draws of the chains that finished before a run was stopped, from httpstan's fit
    files (one per finished chain); the caller deletes the files. Timing: the chains' own."""

    with ProcessPoolExecutor(max_workers=1, mp_context=mp.get_context("spawn")) as pool:
        return pool.submit(_finished_chains_here, model, form, data, sampler, files).result()


def sample_stan(model: str, form: str, data: dict, sampler, keep_files: bool = False) -> StanFit:
    """NUTS in Stan with `sampler`'s settings (chains, warm-up, draws, seed, target_accept, depth).

    httpstan forks its chain processes, and forking a process whose JAX threads are running
    can deadlock; so Stan samples from a freshly spawned interpreter that never started JAX.
    `keep_files` leaves httpstan's fit files on disk (their paths in `files`) for the caller.
    """

    with ProcessPoolExecutor(max_workers=1, mp_context=mp.get_context("spawn")) as pool:
        return pool.submit(_sample_stan_here, model, form, data, sampler, keep_files).result()
