"""NumPyro against Stan on the same data, settings and machine, and how each scales with data size.

Methods, each run in a fresh process so that compilation counts and peak memory is its own:

* `numpyro-suffstats`: `lineup-numpyro train` as a user runs it (streaming data pass, NUTS on
  the statistics), with a warm compilation cache (a second run on this machine);
* `numpyro-suffstats-cold`: the same with an empty compilation cache (a first run);
* `numpyro-rows`: the same NUTS on the row-by-row likelihood, every row in memory;
* `stan-loop`: the reference Stan file of models/ (row-by-row loop), through PyStan;
* `stan-fast`: its sufficient-statistics twin in Stan;
* `nutpie`: the peer an analyst would pick today, nutpie (Rust NUTS, gradient-based mass matrix
  adaptation) on a PyMC model of the same posterior through the same statistics
  (`benchmarks/pymc_models.py`, compiled with numba); needs the `[nutpie]` extra. nutpie does
  not time its phases, so its MCMC time is split into warm-up and sampling by their shares of
  the leapfrog steps (a step costs the same in both).

Runs alternate between methods (repeat, then size, then method), so drift of the machine
touches all of them. A method whose run is estimated, from its own run on the next smaller
data, to exceed the time budget runs with fewer iterations (marked `reduced`) or not at all
(`not run (budget)`); a run that overruns the budget by half is stopped and marked so.
Nothing is extrapolated into the figures: estimates appear only in the note of a run.
"""

from __future__ import annotations

import json
import math
import os
import platform as platform_module
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from lineup_numpyro.config import ModelName, SamplerConfig, default_warmup_max_tree_depth
from lineup_numpyro.errors import ConfigError

METHODS = ("numpyro-suffstats", "numpyro-suffstats-cold", "numpyro-rows", "stan-loop", "stan-fast", "nutpie")
COLD = "-cold"  # a NumPyro method run with an empty JAX compilation cache
SIZES = (10_000, 96_837, 1_000_000, 10_000_000)
PER_ROW = frozenset({"numpyro-rows", "stan-loop"})  # methods whose gradient costs grow with the rows
MIN_DRAWS = 100  # a run reduced below this many draws (and as many warm-up iterations) is not run
PILOT_ITERATIONS = 25  # warm-up and draws of the pilot that prices a row-by-row method's first run
POLL_S = 0.1  # how often the memory of a run's processes is sampled
STOP_FACTOR = 1.5  # a run is stopped at this multiple of the budget (plans aim at the budget itself)
RESULTS, TABLE, PLOT = "results.json", "results.md", "scaling.png"


@dataclass(frozen=True)
class BenchmarkConfig:
    """What to run: one model, its methods and data sizes, with one set of NUTS settings for all."""

    model: ModelName = "matchup"
    methods: tuple[str, ...] = METHODS
    sizes: tuple[int, ...] = SIZES
    sampler: SamplerConfig = field(default_factory=lambda: SamplerConfig(seed=1))
    repeats: int = 1
    budget_s: float = 1200.0  # per run, wall clock
    data_dir: Path = Path("benchmarks/data")
    cache_dir: Path = Path("benchmarks/data/jax-cache")  # the warm NumPyro runs' compilation cache
    data_seed: int = 2023
    # Repeat r samples with seed sampler.seed + r - 1 (every method the same seed), so that the
    # medians cover the chains' randomness too: min ESS_bulk of one method varies by 2-3x from
    # seed to seed (experiments/mass_estimate), more than the timings do.
    seed_per_repeat: bool = False

    def __post_init__(self) -> None:
        unknown = sorted(set(self.methods) - set(METHODS))
        if unknown:
            raise ConfigError(f"unknown method(s) {', '.join(unknown)}; expected some of {', '.join(METHODS)}")
        if not self.methods or not self.sizes:
            raise ConfigError("give at least one method and one size")
        if min(self.sizes) < 1 or self.repeats < 1 or self.budget_s <= 0:
            raise ConfigError("sizes and repeats must be at least 1 and the budget positive")
        if self.model == "simplified" and "stan-fast" in self.methods:
            raise ConfigError("the simplified model has no fast Stan form; drop stan-fast from the methods")


def season_path(config: BenchmarkConfig, n: int) -> Path:
    """A simulated season of `n` possessions from `config.model`, written once and reused."""
    from lineup_numpyro.models.simulate import iter_season, write_season_parquet

    path = Path(config.data_dir) / f"season_{config.model}_{n}_seed{config.data_seed}.parquet"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        truth, chunks = iter_season(n, config.model, config.data_seed)
        write_season_parquet(chunks, truth, path)
    return path


@dataclass(frozen=True)
class Plan:
    """How one (method, size) runs: in full, reduced to fewer iterations, or not at all."""

    sampler: SamplerConfig | None  # None: not run
    reduced: bool = False
    estimate_s: float | None = None
    why: str = ""  # why it does not run, when there is no estimate to say so

    @property
    def note(self) -> str:
        est = f"est. {self.estimate_s:,.0f} s" if self.estimate_s is not None else self.why
        if self.sampler is None:
            return f"not run (budget; {est})"
        if self.reduced:
            s = self.sampler
            return f"reduced to {s.chains}x({s.warmup}+{s.draws}) (budget; full run {est})"
        return ""


def cost_model(method: str, n: int, earlier: Sequence[dict]) -> tuple[float, float] | None:
    """(fixed seconds, seconds per iteration) of a run on `n` rows, scaled from this method's
    finished run on the most rows up to `n`; None if there is none.

    The data pass scales with the rows; warm-up and sampling scale with the iterations, and
    with the rows too for the row-by-row methods; the rest (start-up, compiling) is fixed.
    Every iteration is priced at the costlier phase's rate: early warm-up (small steps, deep
    trees) dominates a short run, so an average over a long run would price it too low.
    """
    done = [r for r in earlier if r["method"] == method and r["status"] in ("ok", "pilot") and r["n"] <= n]
    if not done:
        return None
    # the largest data; there, a real run before a pilot, and the longest run
    r = max(done, key=lambda r: (r["n"], r["status"] == "ok", r["warmup"] + r["draws"]))
    rows = n / r["n"]
    mcmc = r["warmup_s"] + r["sampling_s"]
    fixed = max(r["wall_s"] - r["data_s"] - mcmc, 0.0) + r["data_s"] * rows
    rate = max(r["warmup_s"] / max(r["warmup"], 1), r["sampling_s"] / max(r["draws"], 1))
    per_iteration = rate * (rows if method in PER_ROW else 1.0)
    return fixed, per_iteration


def plan_run(method: str, n: int, config: BenchmarkConfig, earlier: Sequence[dict]) -> Plan:
    """A full run if its estimate fits the budget; else as many iterations as fit (warm-up and
    draws cut in the same proportion); else none."""
    sampler = config.sampler
    cost = cost_model(method, n, earlier)
    if cost is None:
        return Plan(sampler)
    fixed, per_iteration = cost
    iterations = sampler.warmup + sampler.draws
    full = fixed + per_iteration * iterations
    if full <= config.budget_s:
        return Plan(sampler, estimate_s=full)
    share = (config.budget_s - fixed) / (per_iteration * iterations)
    draws = int(sampler.draws * share)
    if draws < MIN_DRAWS:
        return Plan(None, estimate_s=full)
    return Plan(replace(sampler, warmup=int(sampler.warmup * share), draws=draws), reduced=True, estimate_s=full)


def efficiency(table, n_steps: np.ndarray, diverging: np.ndarray, sampling_s: float) -> dict:
    """ESS (bulk and tail; min and median) per second of sampling, gradients per second, R-hat."""
    out = {
        "ess_bulk_min": float(table["ess_bulk"].min()),
        "ess_bulk_median": float(table["ess_bulk"].median()),
        "ess_tail_min": float(table["ess_tail"].min()),
        "ess_tail_median": float(table["ess_tail"].median()),
        "max_rhat": float(table["r_hat"].max()),
        "divergences": int(np.sum(diverging)),
        "leapfrog_steps": int(np.sum(n_steps)),
    }
    for key in ("ess_bulk_min", "ess_bulk_median", "ess_tail_min", "ess_tail_median"):
        out[f"{key}_per_s"] = out[key] / sampling_s
    out["leapfrog_per_s"] = out["leapfrog_steps"] / sampling_s
    return out


def _numpyro_worker(spec: dict) -> dict:
    """The figures of a finished `lineup-numpyro train` run directory (read after the timed run)."""
    import arviz as az

    from lineup_numpyro.stan.parity import summarise

    run = Path(spec["run_dir"])
    report = json.loads((run / "diagnostics.json").read_text())
    idata = az.from_netcdf(str(run / "posterior.nc"))
    samples = {k: idata.posterior[k].values for k in idata.posterior.data_vars}
    n_steps = idata.sample_stats["n_steps"].values
    diverging = idata.sample_stats["diverging"].values
    t = report["timing"]
    return {
        "data_s": t["data_s"],
        "compile_s": t["compile_s"],
        "warmup_s": t["warmup_s"],
        "sampling_s": t["sampling_s"],
        "chain_method": report["chain_method"],
        "device": report.get("device"),
        **efficiency(summarise(samples, spec["model"]), n_steps, diverging, t["sampling_s"]),
    }


def train_command(spec: dict, run_dir: Path) -> list[str]:
    """`lineup-numpyro train` with the spec's model, data and sampler settings."""
    s = spec["sampler"]
    likelihood = spec["method"].removesuffix(COLD).split("-", 1)[1]
    cmd = [sys.executable, "-m", "lineup_numpyro.cli", "train", "--model", spec["model"], "--data", spec["data"]]
    cmd += ["--likelihood", likelihood, "--out", str(run_dir), "--no-progress", "--no-log-likelihood"]
    for option, key in (
        ("--chains", "chains"),
        ("--warmup", "warmup"),
        ("--draws", "draws"),
        ("--seed", "seed"),
        ("--target-accept", "target_accept"),
        ("--max-tree-depth", "max_tree_depth"),
        ("--chain-method", "chain_method"),
        ("--platform", "platform"),
    ):
        cmd += [option, str(s[key])]
    return cmd


def _nutpie_worker(spec: dict) -> dict:
    """nutpie on the PyMC twin of the model (pymc_models.py), same statistics, chains, warm-up,
    draws, seed and target acceptance; cells the data do not touch drawn by models.complete."""
    start = time.perf_counter()
    try:
        import nutpie
    except ImportError as exc:
        raise ConfigError("the nutpie method needs the [nutpie] extra: pip install -e '.[nutpie]'") from exc
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from pymc_models import pymc_model

    from lineup_numpyro.data.suffstats import from_file
    from lineup_numpyro.models.cells import Cells
    from lineup_numpyro.models.model import complete
    from lineup_numpyro.stan.parity import summarise

    imports_s = time.perf_counter() - start
    start = time.perf_counter()
    stats = from_file(spec["data"])
    data_s = time.perf_counter() - start
    s = SamplerConfig(**spec["sampler"])
    start = time.perf_counter()
    compiled = nutpie.compile_pymc_model(pymc_model(spec["model"], stats), backend="numba")
    compile_s = time.perf_counter() - start
    start = time.perf_counter()
    trace = nutpie.sample(
        compiled,
        draws=s.draws,
        tune=s.warmup,
        chains=s.chains,
        cores=os.cpu_count(),
        seed=s.seed,
        target_accept=s.target_accept,
        maxdepth=s.max_tree_depth,
        progress_bar=False,
        save_warmup=True,
    )
    mcmc_s = time.perf_counter() - start
    warm_steps = float(trace.warmup_sample_stats["n_steps"].sum())
    n_steps = trace.sample_stats["n_steps"].values
    sampling_s = mcmc_s * float(n_steps.sum()) / (warm_steps + float(n_steps.sum()))
    sites = {k: trace.posterior[k].values for k in trace.posterior.data_vars if not k.endswith("__")}
    samples = complete(spec["model"], sites, Cells.from_stats(stats), seed=s.seed)
    return {
        "data_s": data_s,
        "compile_s": compile_s,
        "warmup_s": mcmc_s - sampling_s,
        "sampling_s": sampling_s,
        "imports_s": imports_s,
        "chain_method": f"nutpie threads ({os.cpu_count()} cores)",
        "device": {"platform": "cpu", "count": os.cpu_count()},
        **efficiency(summarise(samples, spec["model"]), n_steps, trace.sample_stats["diverging"].values, sampling_s),
    }


def _stan_worker(spec: dict) -> dict:
    from lineup_numpyro.data.possessions import load_possessions
    from lineup_numpyro.data.suffstats import SuffStats, from_file
    from lineup_numpyro.stan.parity import summarise
    from lineup_numpyro.stan.runner import finished_chains, sample_stan, stan_data

    form = "reference" if spec["method"] == "stan-loop" else "fast"
    start = time.perf_counter()
    if form == "fast":
        data = stan_data(spec["model"], form, stats=from_file(spec["data"]))
    else:
        rows = load_possessions(spec["data"])
        data = stan_data(spec["model"], form, rows=rows, stats=SuffStats.from_possessions(rows))
    data_s = time.perf_counter() - start
    sampler = SamplerConfig(**spec["sampler"])
    if spec.get("finished_chains"):
        fit = finished_chains(spec["model"], form, data, sampler, spec["finished_chains"])
    else:
        fit = sample_stan(spec["model"], form, data, sampler)
    t = fit.timing
    return {
        "data_s": data_s,
        "compile_s": t.build_s,
        "warmup_s": t.warmup_s,
        "sampling_s": t.sampling_s,
        "chain_method": "httpstan worker processes",
        "device": {"platform": "cpu", "count": os.cpu_count()},
        **efficiency(summarise(fit.samples, spec["model"]), fit.stats["n_steps"], fit.stats["diverging"], t.sampling_s),
    }


def worker(spec: dict) -> dict:
    """One run, in this process: the figures of `spec["method"]` on `spec["data"]`."""
    if spec["method"] == "nutpie":
        return _nutpie_worker(spec)
    return (_numpyro_worker if spec["method"].startswith("numpyro") else _stan_worker)(spec)


def _tree_rss(proc) -> int:
    """Resident memory of a process and all its descendants, in bytes."""
    import psutil

    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


def run_in_subprocess(spec: dict, timeout_s: float) -> dict:
    """Run `worker(spec)` in a fresh interpreter; adds wall time and peak memory of its process tree."""
    with tempfile.TemporaryDirectory() as tmp:
        spec_file, result_file = Path(tmp) / "spec.json", Path(tmp) / "result.json"
        spec_file.write_text(json.dumps(spec))
        out = run_command([sys.executable, str(Path(__file__).resolve()), str(spec_file), str(result_file)], timeout_s)
        if out["status"] != "ok":
            return out
        if not result_file.exists():
            return {**out, "status": "failed", "note": "the worker wrote no result"}
        return {**out, **json.loads(result_file.read_text())}


def run_command(cmd: list[str], timeout_s: float, env: dict | None = None) -> dict:
    """Run `cmd` in a fresh process: wall time from start to exit and the peak resident memory
    of its process tree; stopped (status 'stopped (budget)') after `timeout_s`."""
    import psutil

    start = time.perf_counter()
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        env=env,
    )
    ps = psutil.Process(proc.pid)
    peak = 0
    stderr_lines: list[str] = []
    reader = _drain(proc.stderr, stderr_lines)
    killed = False
    while proc.poll() is None:
        peak = max(peak, _tree_rss(ps))
        if time.perf_counter() - start > timeout_s:
            os.killpg(proc.pid, 9)
            killed = True
            proc.wait()
            break
        time.sleep(POLL_S)
    wall = time.perf_counter() - start
    reader.join(timeout=5)
    out = {"wall_s": wall, "peak_rss_mb": peak / 2**20, "status": "ok"}
    if killed:
        return {**out, "status": "stopped (budget)", "note": f"stopped after {wall:,.0f} s (budget)"}
    if proc.returncode != 0:
        tail = "".join(stderr_lines[-20:]).strip()
        return {**out, "status": "failed", "note": f"exit {proc.returncode}: {tail[-2000:]}"}
    return out


def _drain(stream, lines: list[str]):
    """Read a child's stderr in a thread so a full pipe never blocks it."""
    import threading

    thread = threading.Thread(target=lambda: lines.extend(stream), daemon=True)
    thread.start()
    return thread


def load_prices(path: str | Path, model: str) -> list[dict]:
    """The runs of an earlier results.json of the same model, to price this benchmark's runs."""
    try:
        saved = json.loads(Path(path).read_text())
        saved_model, runs = saved["config"]["model"], saved["runs"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{path}: not a readable benchmark results.json ({type(exc).__name__}: {exc})") from exc
    if saved_model != model:
        raise ConfigError(f"{path}: those runs are of the {saved_model} model, not {model}")
    return [r for r in runs if r["status"] in ("ok", "pilot")]


def run_benchmark(
    config: BenchmarkConfig,
    out_dir: str | Path,
    on_result: Callable[[dict], None] | None = None,
    prices: Sequence[dict] = (),
) -> list[dict]:
    """Every (repeat, size, method) in that order; results are rewritten to `out_dir` after each run.

    `prices`: runs of an earlier benchmark on this machine, used only to price these runs
    (so a costly pilot need not be repeated); they appear in no table.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    results: list[dict] = []
    plans: dict[tuple[str, int], Plan] = {}
    for repeat in range(1, config.repeats + 1):
        for n in sorted(config.sizes):
            path = season_path(config, n)
            for method in config.methods:
                if (method, n) not in plans:
                    before = len(results)
                    plans[(method, n)] = _plan(method, n, path, config, prices, results)
                    for pilot in results[before:]:
                        write_results(config, results, out_dir)
                        if on_result:
                            on_result(pilot)
                plan = plans[(method, n)]
                result = {
                    "method": method,
                    "n": n,
                    "repeat": repeat,
                    "reduced": plan.reduced,
                    "estimate_s": plan.estimate_s,
                    **_iterations(plan.sampler or config.sampler),
                }
                if plan.sampler is None:
                    result.update(status="not run (budget)", note=plan.note)
                else:
                    sampler = plan.sampler
                    if config.seed_per_repeat:
                        sampler = replace(sampler, seed=sampler.seed + repeat - 1)
                    result["seed"] = sampler.seed
                    outcome = _execute(method, path, config, sampler)
                    note = "; ".join(x for x in (plan.note, outcome.pop("note", "")) if x)
                    result.update(outcome, note=note)
                results.append(result)
                write_results(config, results, out_dir)
                if on_result:
                    on_result(result)
    return results


def _plan(
    method: str, n: int, path: Path, config: BenchmarkConfig, prices: Sequence[dict], results: list[dict]
) -> Plan:
    """Price a run from earlier ones; a row-by-row method with none first runs a pilot
    (PILOT_ITERATIONS of warm-up and draws, appended to `results` with repeat 0). Early
    warm-up is the slowest part of a run, so a pilot's price errs high."""
    if method in PER_ROW and cost_model(method, n, [*prices, *results]) is None:
        sampler = replace(config.sampler, warmup=PILOT_ITERATIONS, draws=PILOT_ITERATIONS)
        pilot = {
            "method": method,
            "n": n,
            "repeat": 0,
            "reduced": True,
            "estimate_s": None,
            **_iterations(sampler),
            **_execute(method, path, config, sampler),
        }
        if pilot["status"] != "ok":
            results.append(pilot)
            return Plan(None, why=f"its pilot run: {pilot['note']}")
        results.append({**pilot, "status": "pilot"})
    return plan_run(method, n, config, [*prices, *results])


def _execute(method: str, path: Path, config: BenchmarkConfig, sampler: SamplerConfig) -> dict:
    """One run in a fresh process. A Stan run stopped at the budget still reports the chains
    that had finished (httpstan writes each chain's draws when it ends)."""
    spec = {
        "method": method,
        "model": config.model,
        "data": str(path),
        "sampler": asdict(_sampler_for(method, sampler)),
    }
    if method == "nutpie":
        return run_in_subprocess(spec, STOP_FACTOR * config.budget_s)
    if not method.startswith("stan"):
        return _execute_numpyro(spec, config)
    from lineup_numpyro.stan.runner import fit_files

    before = fit_files()
    outcome = run_in_subprocess(spec, STOP_FACTOR * config.budget_s)
    left = sorted(fit_files() - before)  # the fits of a stopped run's finished chains
    try:
        if outcome["status"] == "stopped (budget)" and left:
            harvest = run_in_subprocess({**spec, "finished_chains": [str(f) for f in left]}, config.budget_s)
            if harvest["status"] == "ok":
                note = (
                    f"{outcome['note']}; figures from the {len(left)} of {sampler.chains} chains that had "
                    "finished, timed by Stan's own per-chain clocks"
                )
                return {
                    **harvest,
                    "wall_s": outcome["wall_s"],
                    "peak_rss_mb": outcome["peak_rss_mb"],
                    "chains": len(left),
                    "status": "ok",
                    "note": note,
                }
    finally:
        for f in left:
            f.unlink(missing_ok=True)
    return outcome


def _execute_numpyro(spec: dict, config: BenchmarkConfig) -> dict:
    """`lineup-numpyro train` timed from the shell, process start to exit; then its run directory
    read in another, untimed, process. A cold run gets an empty compilation cache; a warm one
    the benchmark's own cache, filled first by an untimed run if it is empty."""
    cold = spec["method"].endswith(COLD)
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "jax-cache" if cold else Path(config.cache_dir)
        env = {**os.environ, "LINEUP_NUMPYRO_JAX_CACHE": str(cache)}
        if not cold and not any(cache.glob("*-cache")):
            run_command(train_command(spec, Path(tmp) / "prime"), STOP_FACTOR * config.budget_s, env)
        run_dir = Path(tmp) / "run"
        outcome = run_command(train_command(spec, run_dir), STOP_FACTOR * config.budget_s, env)
        if outcome["status"] != "ok":
            return outcome
        figures = run_in_subprocess({**spec, "run_dir": str(run_dir)}, STOP_FACTOR * config.budget_s)
        if figures["status"] != "ok":
            return {**outcome, "status": "failed", "note": f"reading the run: {figures.get('note', '')}"}
        return {**figures, **outcome}


def _iterations(sampler: SamplerConfig) -> dict:
    return {"chains": sampler.chains, "warmup": sampler.warmup, "draws": sampler.draws}


def _sampler_for(method: str, sampler: SamplerConfig) -> SamplerConfig:
    """Stan always runs on the CPU; on a GPU the NumPyro chains are vectorised on its one device."""
    if method.startswith("stan"):
        return replace(sampler, platform="cpu")
    if sampler.platform == "gpu" and sampler.chain_method == "parallel":
        return replace(sampler, chain_method="vectorized")
    return sampler


def machine() -> dict:
    import importlib.metadata as md

    versions = {}
    for package in ("numpyro", "jax", "jaxlib", "arviz", "pystan", "httpstan"):
        try:
            versions[package] = md.version(package)
        except md.PackageNotFoundError:
            versions[package] = None
    return {
        "cpu_count": os.cpu_count(),
        "processor": platform_module.processor() or platform_module.machine(),
        "python": platform_module.python_version(),
        "versions": versions,
    }


FIGURES = (
    "wall_s",
    "data_s",
    "compile_s",
    "warmup_s",
    "sampling_s",
    "leapfrog_per_s",
    "ess_bulk_min_per_s",
    "ess_bulk_median_per_s",
    "ess_tail_min_per_s",
    "ess_tail_median_per_s",
    "max_rhat",
    "peak_rss_mb",
)


def medians(results: Sequence[dict]) -> list[dict]:
    """One row per (size, method): medians over the repeats that ran, and how many there were."""
    rows = []
    for n in sorted({r["n"] for r in results}):
        for method in dict.fromkeys(r["method"] for r in results):
            runs = [r for r in results if r["n"] == n and r["method"] == method and r["repeat"] > 0]
            if not runs:
                continue
            ok = [r for r in runs if r["status"] == "ok"]
            row = {
                "n": n,
                "method": method,
                "runs": len(ok),
                "status": "ok" if ok else runs[-1]["status"],
                "chains": runs[-1]["chains"],
                "warmup": runs[-1]["warmup"],
                "draws": runs[-1]["draws"],
                "reduced": runs[-1]["reduced"],
                "note": runs[-1]["note"],
                "divergences": max((r["divergences"] for r in ok), default=None),
            }
            for key in FIGURES:
                row[key] = statistics.median(r[key] for r in ok) if ok else None
            if ok:
                row["device"] = ok[-1].get("device")
            rows.append(row)
    return rows


def ratios(rows: Sequence[dict], n: int) -> dict:
    """min ESS_bulk/s of numpyro-suffstats over each Stan form's and nutpie's, at size `n` (None where missing)."""
    by = {r["method"]: r["ess_bulk_min_per_s"] for r in rows if r["n"] == n and r["status"] == "ok"}
    ours = by.get("numpyro-suffstats")
    out = {}
    for method in ("stan-loop", "stan-fast", "nutpie"):
        out[method] = ours / by[method] if ours and by.get(method) else None
    stan = [v for k, v in by.items() if k.startswith("stan") and v]
    out["best stan"] = ours / max(stan) if ours and stan else None
    return out


def _devices(rows: Sequence[dict]) -> str:
    seen = {
        f"{d['platform']} ({d.get('device_kind', '')}, {d['count']} device(s))"
        for r in rows
        if r["method"].startswith("numpyro") and (d := r.get("device"))
    }
    return ", ".join(sorted(seen)) or "—"


def _fmt(value, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, float):
        if abs(value) >= 100:
            return f"{value:,.0f}"
        return f"{value:.{digits}f}"
    return str(value)


def markdown(config: BenchmarkConfig, results: Sequence[dict], info: dict) -> str:
    """The results table (medians) and the NumPyro/Stan ratios, as Markdown."""
    rows = medians(results)
    s = config.sampler
    last = s.seed + config.repeats - 1
    seeds = f"seeds {s.seed}-{last}, one per repeat" if config.seed_per_repeat and last > s.seed else f"seed {s.seed}"
    lines = [
        f"Model `{config.model}`, {s.chains} chains x ({s.warmup} warm-up + {s.draws} draws), "
        f"target acceptance {s.target_accept}, max tree depth {s.max_tree_depth} (NumPyro's warm-up: "
        f"{default_warmup_max_tree_depth(config.model)}), {seeds}; "
        f"{info['cpu_count']} CPU cores; budget {config.budget_s:,.0f} s per run; "
        f"medians of {config.repeats} repeat(s). Per-second figures are per second of sampling (wall).",
        f"NumPyro ran on: {_devices(rows)}; Stan on the CPU.",
        "",
        "| possessions | method | runs | iterations | wall s | data s | compile s | warm-up s | sampling s "
        "| grad/s | min ESS_bulk/s | median ESS_bulk/s | min ESS_tail/s | median ESS_tail/s | div | max R-hat "
        "| peak MB | note |",
        "|" + "---|" * 18,
    ]
    for r in rows:
        its = f"{r['chains']}x({r['warmup']}+{r['draws']})"
        if r["status"] != "ok":
            lines.append(f"| {r['n']:,} | {r['method']} | 0 | {its} | " + "— | " * 13 + f"{r['note'] or r['status']} |")
            continue
        lines.append(
            f"| {r['n']:,} | {r['method']} | {r['runs']} | {its} | {_fmt(r['wall_s'])} | {_fmt(r['data_s'])} | "
            f"{_fmt(r['compile_s'])} | {_fmt(r['warmup_s'])} | {_fmt(r['sampling_s'])} | {_fmt(r['leapfrog_per_s'])} | "
            f"{_fmt(r['ess_bulk_min_per_s'], 2)} | {_fmt(r['ess_bulk_median_per_s'], 2)} | "
            f"{_fmt(r['ess_tail_min_per_s'], 2)} | {_fmt(r['ess_tail_median_per_s'], 2)} | {r['divergences']} | "
            f"{r['max_rhat']:.3f} | {_fmt(r['peak_rss_mb'])} | {r['note']} |"
        )
    lines.append("")
    for n in sorted({r["n"] for r in rows}):
        q = ratios(rows, n)
        if any(v is not None for v in q.values()):
            parts = [f"{_fmt(v)}x {k}" for k, v in q.items() if v is not None]
            lines.append(f"- {n:,} possessions: numpyro-suffstats min ESS_bulk/s = " + ", ".join(parts))
    return "\n".join(lines) + "\n"


def plot(results: Sequence[dict], path: str | Path) -> None:
    """Wall time and min ESS_bulk per second of sampling against possessions, per method (log-log)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in medians(results) if r["status"] == "ok"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for method in dict.fromkeys(r["method"] for r in rows):
        mine = [r for r in rows if r["method"] == method]
        n = [r["n"] for r in mine]
        for ax, key in zip(axes, ("wall_s", "ess_bulk_min_per_s")):
            (line,) = ax.plot(n, [r[key] for r in mine], marker="o", label=method)
            reduced = [r for r in mine if r["reduced"]]
            ax.scatter(
                [r["n"] for r in reduced],
                [r[key] for r in reduced],
                s=90,
                facecolors="none",
                edgecolors=line.get_color(),
                zorder=3,
            )
    axes[0].set(
        xscale="log", yscale="log", xlabel="possessions", ylabel="wall seconds (whole run)", title="cost of one fit"
    )
    axes[1].set(
        xscale="log",
        yscale="log",
        xlabel="possessions",
        ylabel="min ESS_bulk per second of sampling",
        title="sampling efficiency (higher is better)",
    )
    for ax in axes:
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(title="open circle: fewer iterations", fontsize=8, title_fontsize=8)
    fig.tight_layout()
    from lineup_numpyro.files import atomic_path

    with atomic_path(Path(path)) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)


def write_results(config: BenchmarkConfig, results: Sequence[dict], out_dir: str | Path) -> None:
    """results.json (every run, the medians, the machine), results.md and scaling.png, each atomically."""
    from lineup_numpyro.files import atomic_path, write_json

    out_dir = Path(out_dir)
    info = machine()
    cfg = asdict(config)
    cfg["data_dir"] = str(config.data_dir)
    cfg["cache_dir"] = str(config.cache_dir)
    write_json(
        out_dir / RESULTS,
        {"config": cfg, "machine": info, "command": sys.argv, "runs": list(results), "medians": medians(results)},
    )
    with atomic_path(out_dir / TABLE) as tmp:
        tmp.write_text(markdown(config, results, info))
    plot(results, out_dir / PLOT)


def _main(argv: Sequence[str]) -> None:
    spec_file, result_file = map(Path, argv)
    result = worker(json.loads(spec_file.read_text()))
    tmp = result_file.with_suffix(".tmp")
    tmp.write_text(json.dumps(result))
    tmp.replace(result_file)


if __name__ == "__main__":
    _main(sys.argv[1:])
