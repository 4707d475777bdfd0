"""Simulation-based calibration (Talts et al. 2018; Modrák et al. 2023).

Draw parameters from the model's prior (MODELS.md's maths, in NumPy, independent of the
NumPyro model), simulate a season's sufficient statistics with a fixed design (exactly:
`simulate_stats`), fit all of them in one batched program (`inference.batched`), and record
for every parameter, and for the log-likelihood of the simulated data, the rank of the true
value among `thin_to` thinned posterior draws. Under a calibrated sampler each rank is
uniform on 0..thin_to. The fractional ranks u = (rank + U(0, 1)) / (thin_to + 1) are then
uniform on (0, 1), and each quantity's ECDF is tested against a simultaneous band (Säilynoja,
Bürkner & Vehtari 2022, ArviZ's `ecdf_confidence_band`) at level `level / quantities`
(Bonferroni), so that the whole check has family-wise level at most `level`.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import jax
import numpy as np
import pandas as pd
from arviz.stats.ecdf_utils import ecdf_confidence_band
from scipy.stats import uniform

from lineup_numpyro import names
from lineup_numpyro.config import Priors, SamplerConfig
from lineup_numpyro.data.suffstats import SuffStats, from_file
from lineup_numpyro.errors import ConfigError, RunDirError
from lineup_numpyro.files import atomic_path, write_json
from lineup_numpyro.inference.batched import BATCHED_INITS, batch_sampler
from lineup_numpyro.inference.runtime import configure_jax
from lineup_numpyro.models.cells import Cells
from lineup_numpyro.models.model import SuffStatsLikelihood, complete, get_model, start_for
from lineup_numpyro.models.simulate import simulate_season
from lineup_numpyro.models.whitening import Whitening

M, A, P = names.N_MATCHUPS, names.N_ARCHETYPES, names.N_FEATURES
LOG_LIK = "log_lik"  # the test quantity Modrák et al. recommend, ranked with the parameters


@dataclass(frozen=True)
class SBCConfig:
    """An SBC run: `fits` simulated data sets, each fitted with `sampler`; `priors` simulate
    (and, unless `fit_priors` is given, fit: a different one is a negative control)."""

    model: str = "matchup"
    fits: int = 100
    sampler: SamplerConfig = field(default_factory=lambda: SamplerConfig(warmup=500, draws=500))
    thin_to: int = 99  # ranks take values 0..thin_to
    level: float = 0.05  # family-wise
    seed: int = 0
    # fits per compiled call (default_batch: one for NUTS, whose vectorised lanes wait for the
    # slowest tree, and a prior draw with a sharp posterior runs depth-10 trees; several for chees)
    batch: int = 1
    priors: Priors = field(default_factory=Priors)
    fit_priors: Priors | None = None

    def __post_init__(self) -> None:
        init = self.sampler.init
        if init not in BATCHED_INITS or (init == "plugin" and self.model != "matchup"):
            raise ConfigError(
                f"sbc --init {init}: SBC fits start at NumPyro's random start (default), or, for the matchup "
                "model, at each matchup's own fit (plugin)"
            )


def default_batch(kernel: str) -> int:
    """Fits per compiled call: one with NUTS (vectorised lanes wait for the longest tree), two
    per device with chees (its fits wait only for longer trajectories; on 2 cores 4 fits a call
    gave the most fits per minute of 2-128: benchmarks/sbc_throughput.py)."""
    return 2 * jax.local_device_count() if kernel == "chees" else 1


def draw_prior(model: str, priors: Priors, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """One draw of every parameter of `model` (MODELS.md), Stan layout, 0-based arrays."""
    half = lambda scale, shape=(): np.abs(rng.normal(0.0, scale, shape))  # noqa: E731
    sigma = np.abs(priors.sigma * rng.standard_cauchy())
    if model == "simplified":
        return {"beta_0": rng.normal(0.0, priors.beta_0), "beta_off": half(priors.beta, A),
                "beta_def": half(priors.beta, A), "sigma": sigma}  # fmt: skip
    if model == "matchup":
        return {"beta_0": rng.normal(0.0, priors.beta_0, M), "beta_off": half(priors.beta, (M, A)),
                "beta_def": half(priors.beta, (M, A)), "sigma": sigma}  # fmt: skip
    if model != "hierarchical":
        raise ValueError(f"unknown model {model!r}; expected one of {', '.join(names.MODELS)}")
    out = {"mu_0": rng.normal(0.0, priors.beta_0), "tau_0": half(priors.tau)}
    for short in ("off", "def"):
        out[f"mu_{short}"] = rng.normal(priors.mu_loc, priors.mu_sd, A)
        out[f"tau_{short}"] = half(priors.tau, A)
    out.update(e_0=rng.standard_normal(M), e_off=rng.standard_normal((M, A)), e_def=rng.standard_normal((M, A)))
    out["beta_0"] = out["mu_0"] + out["tau_0"] * out["e_0"]
    out["beta_off"] = np.exp(out["mu_off"] + out["tau_off"] * out["e_off"])
    out["beta_def"] = np.exp(out["mu_def"] + out["tau_def"] * out["e_def"])
    out["sigma"] = sigma
    return out


def coefficient_matrix(params: dict[str, np.ndarray], pooled: bool) -> np.ndarray:
    """b = [beta_0, beta_off, beta_def] as (..., M, 17); a pooled model's (..., 17) is broadcast."""
    b = np.concatenate([np.asarray(params["beta_0"])[..., None], params["beta_off"], params["beta_def"]], axis=-1)
    return np.broadcast_to(b[..., None, :], (*b.shape[:-1], M, P)) if pooled else b


def simulate_stats(design: SuffStats, b: np.ndarray, sigma: float, rng: np.random.Generator) -> SuffStats:
    """The statistics of y = X b_m + sigma eps (eps ~ N(0, I)) for the possessions of `design`,
    drawn exactly from X'X alone: with X'X = V diag(lam) V', X'eps = V sqrt(lam) g and
    eps'eps = |g_+|^2 + chi2(n - rank), g ~ N(0, I_17), g_+ its components with lam > 0."""
    b = np.broadcast_to(b, (M, P))
    xtx = np.asarray(design.xtx, dtype=np.float64)
    lam, vec = np.linalg.eigh(xtx)  # (M, 17), (M, 17, 17)
    positive = lam > 1e-10 * np.maximum(lam.max(axis=1, keepdims=True), 1e-300)
    g = rng.standard_normal((M, P)) * positive
    xte = np.einsum("mij,mj->mi", vec, np.sqrt(np.where(positive, lam, 0.0)) * g)
    rest = np.maximum(design.n - positive.sum(axis=1), 0)
    ete = (g**2).sum(axis=1) + rng.chisquare(np.maximum(rest, 1)) * (rest > 0)
    xtxb = np.einsum("mij,mj->mi", xtx, b)
    xty = xtxb + sigma * xte
    yty = np.einsum("mi,mi->m", b, xtxb) + 2.0 * sigma * np.einsum("mi,mi->m", b, xte) + sigma**2 * ete
    yty = np.where(design.n > 0, yty, 0.0)
    return SuffStats(design.n.copy(), xtx.copy(), xty, yty, design.nonzero.copy())


def design_stats(path: str | Path | None, seasons: tuple[str, ...] = ()) -> SuffStats:
    """The statistics whose n and X'X (the design) SBC simulates on: a file's, or the built-in season's."""
    if path is None:
        rows, _ = simulate_season()
        return SuffStats.from_possessions(rows)
    return from_file(path, seasons)


def _quantities(model: str, params: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Every ranked scalar by Stan name: params (lead..., ...) -> {name: (lead...)}."""
    sites = ["beta_0", "beta_off", "beta_def", "sigma"]
    if model == "hierarchical":
        sites = ["mu_0", "tau_0", "mu_off", "tau_off", "mu_def", "tau_def", *sites]
    lead = np.shape(params["sigma"])
    out = {}
    for site in sites:
        values = np.asarray(params[site]).reshape(*lead, -1)
        shape = np.shape(params[site])[len(lead) :]
        for flat, index in enumerate(np.ndindex(*shape) if shape else [()]):
            out[names.stan_name(site, index) if shape else site] = values[..., flat]
    return out


def _log_lik(stats: SuffStats, b: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """The model's Gaussian log-likelihood (SuffStatsLikelihood) of `stats` at b (..., M, 17)
    and sigma (...)."""
    b, sigma = np.asarray(b), np.asarray(sigma)
    flat = _log_lik_draws(SuffStatsLikelihood.from_stats(stats), b.reshape(-1, M, P), sigma.reshape(-1))
    return np.asarray(flat).reshape(sigma.shape)


@jax.jit
def _log_lik_draws(likelihood: SuffStatsLikelihood, b: jax.Array, sigma: jax.Array) -> jax.Array:
    """One compiled program per number of draws (op by op, the log-likelihoods of a fit took
    10 ms on a CPU and more where each operation went to a GPU)."""
    return jax.vmap(likelihood.log_likelihood)(b, sigma)


def _thin(x: np.ndarray, keep: int) -> np.ndarray:
    """(chains, draws, ...) -> (keep, ...): evenly spaced draws of every chain."""
    chains, draws = x.shape[:2]
    per = -(-keep // chains)
    idx = np.linspace(0, draws - 1, per).round().astype(int)
    return x[:, idx].reshape(chains * per, *x.shape[2:])[:keep]


@dataclass(frozen=True)
class SBCResult:
    ranks: dict[str, np.ndarray]  # quantity -> (fits,) integer ranks in 0..thin_to
    u: dict[str, np.ndarray]  # fractional ranks in (0, 1)
    failed: list[str]  # quantities whose ECDF leaves the band
    passed: bool
    divergences: np.ndarray  # (fits,)
    seconds: float
    config: SBCConfig
    fits_run: int | None = None  # fits this call ran (the rest were saved by an earlier one); None: all

    @property
    def fits_per_minute(self) -> float:
        run = self.config.fits if self.fits_run is None else self.fits_run
        return 60.0 * run / self.seconds if self.seconds > 0 else float("nan")

    def summary(self) -> dict:
        return {
            "model": self.config.model,
            "fits": self.config.fits,
            "passed": self.passed,
            "family_wise_level": self.config.level,
            "quantities": len(self.ranks),
            "failed": self.failed,
            "thin_to": self.config.thin_to,
            "divergent_fits": int((self.divergences > 0).sum()),
            "seconds": round(self.seconds, 1),
            "fits_run": self.config.fits if self.fits_run is None else self.fits_run,
            "fits_per_minute": round(self.fits_per_minute, 2),
            "config": asdict(self.config),
        }


def _band(n: int, quantities: int, level: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Evaluation points and the simultaneous ECDF band of n uniform draws at level
    `level / quantities` (Bonferroni: all quantities pass together with probability >= 1 - level)."""
    points = np.linspace(0.0, 1.0, min(n, 100) + 1)[1:-1]
    low, high = ecdf_confidence_band(n, points, uniform.cdf(points), prob=1.0 - level / quantities, method="optimized")
    return points, low, high


def _ecdf(values: np.ndarray, points: np.ndarray) -> np.ndarray:
    return np.searchsorted(np.sort(values), points, side="right") / len(values)


def ecdf_test(u: dict[str, np.ndarray], level: float) -> list[str]:
    """The quantities whose fractional ranks' ECDF leaves the simultaneous band (`_band`)."""
    points, low, high = _band(len(next(iter(u.values()))), len(u), level)
    return [name for name, v in u.items() if np.any(_ecdf(v, points) < low) or np.any(_ecdf(v, points) > high)]


def write_sbc(result: SBCResult, out: str | Path, panels: int = 12) -> None:
    """sbc.json (verdict, figures, settings), ranks.csv (one row per fit) and ecdf.png: ECDF
    differences with their band for the log-likelihood, sigma, every failed quantity and
    those furthest from uniform, up to `panels`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out)
    with atomic_path(out / "ranks.csv") as tmp:
        pd.DataFrame(result.ranks).to_csv(tmp, index_label="fit")
    points, low, high = _band(result.config.fits, len(result.u), result.config.level)
    distance = {k: float(np.max(np.abs(_ecdf(v, points) - points))) for k, v in result.u.items()}
    shown = list(dict.fromkeys([LOG_LIK, "sigma", *result.failed, *sorted(distance, key=distance.get, reverse=True)]))
    shown = shown[:panels]
    cols = 4
    rows = -(-len(shown) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.4 * rows), squeeze=False, sharex=True)
    for ax, name in zip(axes.flat, shown, strict=False):
        ax.fill_between(points, low - points, high - points, color="0.85", step="post", label="band")
        ax.step(
            points, _ecdf(result.u[name], points) - points, where="post", color="C3" if name in result.failed else "C0"
        )
        ax.axhline(0.0, color="0.4", lw=0.6)
        ax.set_title(name + (" (fails)" if name in result.failed else ""), fontsize=9)
    for ax in list(axes.flat)[len(shown) :]:
        ax.axis("off")
    fig.suptitle(
        f"SBC, {result.config.model} model, {result.config.fits} fits: ECDF - uniform of the fractional ranks "
        f"({'passed' if result.passed else 'FAILED'}; family-wise level {result.config.level})",
        fontsize=10,
    )
    fig.supxlabel("fractional rank")
    fig.tight_layout()
    with atomic_path(out / "ecdf.png") as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    write_json(out / "sbc.json", {**result.summary(), "max_ecdf_distance": distance})


def sbc_batch(config: SBCConfig, design: SuffStats, first: int, size: int) -> tuple[dict[str, list[int]], list[int]]:
    """Fits first .. first + size - 1: each one's prior draw, simulation and NUTS seed depend only
    on (config.seed, its index), so a batch gives the same ranks wherever and whenever it runs
    (in this process or as a Ray task, first time or retried). Returns ranks by quantity and
    divergent transitions per fit."""
    cells = Cells.from_stats(design)  # every simulated season has the design's touched cells
    fit_priors = config.fit_priors or config.priors
    pooled = config.model == "simplified"
    key = (config.model, cells.touched.tobytes(), config.sampler, fit_priors)
    if _SAMPLERS.get("key") != key:  # one compiled program per process and setting
        model = get_model(config.model, None if pooled else cells, priors=fit_priors)
        _SAMPLERS.update(key=key, sampler=batch_sampler(model, config.sampler))
    sampler = _SAMPLERS["sampler"]
    truths, stats = [], []
    for index in range(first, first + size):
        rng = np.random.default_rng([config.seed, 0x534243, index])
        truths.append(draw_prior(config.model, config.priors, rng))
        stats.append(simulate_stats(design, coefficient_matrix(truths[-1], pooled), float(truths[-1]["sigma"]), rng))
    data = (
        [{"whitening": Whitening.from_stats(s, fit_priors.tau)} for s in stats]
        if config.model == "hierarchical"
        else None
    )
    seeds = [config.seed * 1_000_003 + index for index in range(first, first + size)]
    init, chains = config.sampler.init, config.sampler.chains
    starts = [start_for(init, s, cells, fit_priors, chains, seed) for s, seed in zip(stats, seeds, strict=True)]
    fit = sampler.run([SuffStatsLikelihood.from_stats(s) for s in stats], seeds, data, starts)
    ranks: dict[str, list[int]] = {}
    for i, (truth, stat) in enumerate(zip(truths, stats, strict=True)):
        # thinned first: the untouched cells' exact draws are then made for the kept draws only
        kept = {k: _thin(np.asarray(v[i]), config.thin_to)[None] for k, v in fit.samples.items()}
        thinned = {k: v[0] for k, v in complete(config.model, kept, cells, seed=seeds[i], priors=fit_priors).items()}
        posterior = _quantities(config.model, thinned)
        true = _quantities(config.model, truth)
        posterior[LOG_LIK] = _log_lik(stat, coefficient_matrix(thinned, pooled), thinned["sigma"])
        true[LOG_LIK] = _log_lik(stat, coefficient_matrix(truth, pooled), np.asarray(truth["sigma"]))
        for name, values in posterior.items():
            ranks.setdefault(name, []).append(int(np.sum(values < true[name])))
    return ranks, fit.stats["diverging"].sum(axis=(1, 2)).tolist()


_SAMPLERS: dict = {}  # this process's compiled batch sampler (sbc_batch)


BatchResult = tuple[dict[str, list[int]], list[int]]  # ranks by quantity, divergent transitions per fit


class SBCProgress:
    """An SBC run's finished batches in OUT/progress.jsonl, so that a stopped run (killed, its
    machine lost) goes on where it was: the first line names the run (its settings and the
    design's digest), then one line per finished batch, flushed and synced as it ends. A line
    cut short by a kill is dropped; a run with other settings in the same directory is refused.
    sbc.json, ranks.csv and ecdf.png are written only when every fit is done."""

    NAME = "progress.jsonl"

    def __init__(self, out: str | Path, config: SBCConfig, design: SuffStats) -> None:
        self.path = Path(out) / self.NAME
        # the batch size too: lanes of one program round differently in the last bits, so that a
        # fit's draws after hundreds of iterations depend (slightly) on how many fits shared it
        self.header = {"sbc": asdict(config), "design": design.digest()}

    def load(self) -> dict[int, tuple[dict[str, int], int]]:
        """Finished fits by index: (rank by quantity, divergent transitions); starts the file
        when there is none."""
        if not self.path.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._append(self.header)
            return {}
        text = self.path.read_text()
        if not text.endswith("\n"):  # a line cut short by a kill: drop it, so the next one starts clean
            text = text[: text.rfind("\n") + 1]
            with open(self.path, "r+") as f:
                f.truncate(len(text.encode()))
        lines = text.splitlines()
        try:
            header = json.loads(lines[0]) if lines else None
        except json.JSONDecodeError:
            header = None
        if _with_defaults(header) != json.loads(json.dumps(self.header)):
            raise RunDirError(
                f"{self.path}: holds another SBC run (other settings or design); give another --out, "
                "or delete it to start over"
            )
        done = {}
        for line in lines[1:]:
            batch = json.loads(line)
            for i in range(batch["size"]):
                ranks = {name: values[i] for name, values in batch["ranks"].items()}
                done[batch["first"] + i] = (ranks, batch["divergences"][i])
        return done

    def add(self, first: int, size: int, result: BatchResult) -> None:
        self._append({"first": first, "size": size, "ranks": result[0], "divergences": result[1]})

    def _append(self, record: dict) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()
            os.fsync(f.fileno())


def _with_defaults(header: dict | None) -> dict | None:
    """A saved header with the settings added to SBCConfig or SamplerConfig since it was written
    (e.g. the sampler's kernel) at their defaults: the run it describes used them."""
    if not isinstance(header, dict) or not isinstance(header.get("sbc"), dict):
        return header
    defaults = json.loads(json.dumps(asdict(SBCConfig())))
    sbc = {**defaults, **header["sbc"]}
    if isinstance(sbc.get("sampler"), dict):
        sbc["sampler"] = {**defaults["sampler"], **sbc["sampler"]}
    return {**header, "sbc": sbc}


def run_sbc(
    config: SBCConfig, design: SuffStats, ray_address: str | None = None, out: str | Path | None = None
) -> SBCResult:
    """Fit `config.fits` data sets simulated on `design`'s possessions; rank the truth. The
    batches run here, or with `ray_address` as tasks on a Ray cluster ('local': one started on
    this machine), each retried up to RAY_RETRIES times if its worker is lost. With `out`, each
    finished batch is saved there (SBCProgress) and a stopped run resumes from what was saved;
    `seconds` is this call's time, and the fits it ran."""
    start = time.perf_counter()
    progress = SBCProgress(out, config, design) if out is not None else None
    fits: dict[int, tuple[dict[str, int], int]] = progress.load() if progress else {}
    todo = _batches([i for i in range(config.fits) if i not in fits], config.batch)

    def finished(first: int, size: int, result: BatchResult) -> None:
        for i in range(size):
            fits[first + i] = ({name: values[i] for name, values in result[0].items()}, result[1][i])
        if progress:
            progress.add(first, size, result)

    if ray_address is None:
        for first, size in todo:
            finished(first, size, sbc_batch(config, design, first, size))
    else:
        _on_ray(ray_address, config, design, todo, finished)
    names_ = list(fits[0][0])
    rank_arrays = {name: np.asarray([fits[i][0][name] for i in range(config.fits)]) for name in names_}
    divergences = np.asarray([fits[i][1] for i in range(config.fits)])
    jitter = np.random.default_rng([config.seed, 0x756E]).uniform(size=config.fits)
    u = {k: (v + jitter) / (config.thin_to + 1) for k, v in rank_arrays.items()}
    failed = ecdf_test(u, config.level)
    seconds = time.perf_counter() - start
    return SBCResult(rank_arrays, u, failed, not failed, divergences, seconds, config, sum(n for _, n in todo))


def _batches(indices: list[int], batch: int) -> list[tuple[int, int]]:
    """(first, size) of runs of consecutive `indices`, at most `batch` fits each."""
    out: list[tuple[int, int]] = []
    for i in indices:
        if out and out[-1][0] + out[-1][1] == i and out[-1][1] < batch:
            out[-1] = (out[-1][0], out[-1][1] + 1)
        else:
            out.append((i, 1))
    return out


RAY_RETRIES = 3


def _ray_batch(config: SBCConfig, design: SuffStats, first: int, size: int, platform: str):  # noqa: ANN202
    """A Ray task: set JAX up in the worker (its devices) before the first fit."""
    configure_jax(platform, config.sampler.chains)
    return sbc_batch(config, design, first, size)


def _on_ray(
    address: str,
    config: SBCConfig,
    design: SuffStats,
    batches: list[tuple[int, int]],
    finished: Callable[[int, int, BatchResult], None],
) -> None:
    """The batches as Ray tasks, each handed to `finished` as it ends (Ray retries a task whose
    worker dies; a finished one is kept whatever happens to the others)."""
    try:
        import ray
    except ImportError as exc:
        raise ConfigError("--ray needs Ray: pip install 'lineup-numpyro[ray]'") from exc
    started = not ray.is_initialized()
    if started:
        kwargs = {"include_dashboard": False, "log_to_driver": False}
        ray.init(**kwargs) if address == "local" else ray.init(address=address, **kwargs)
    try:
        task = ray.remote(max_retries=RAY_RETRIES)(_ray_batch)
        design_ref = ray.put(design)
        pending = {
            task.remote(config, design_ref, first, size, config.sampler.platform): (first, size)
            for first, size in batches
        }
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                first, size = pending.pop(ref)
                finished(first, size, ray.get(ref))
    finally:
        if started:
            ray.shutdown()
