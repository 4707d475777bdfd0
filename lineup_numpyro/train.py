"""A training run from start to finish: data -> sufficient statistics -> NUTS -> run directory.

All input is validated before the run directory is touched, so bad input leaves nothing
behind; once sampling starts, status.json says whether the run is running, complete or failed.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path

from . import outputs
from .config import RunConfig
from .data import Possessions, load_possessions
from .cells import Cells
from .models import complete, get_model, make_likelihood
from .runtime import configure_jax
from .sampling import sample_posterior
from .simulate import simulate_season
from .suffstats import SuffStats, from_file, require_fittable, warn_degenerate
from .whitening import Whitening


@dataclass(frozen=True)
class PreparedData:
    """What the likelihoods need: always the statistics, the rows only for `rows`."""

    stats: SuffStats
    rows: Possessions | None
    source: str
    truth: dict | None = None


def prepare_data(config: RunConfig) -> PreparedData:
    """Read and validate the data of `config` (or simulate the built-in season)."""
    split = config.data.split("train")
    if config.data.path is None:
        rows, truth = simulate_season()
        if split is not None:
            rows = rows.subset(split.keep(0, len(rows)))
        source = f"built-in simulated season ({len(rows):,} possessions, {rows.source})"
        return PreparedData(SuffStats.from_possessions(rows), rows if config.likelihood == "rows" else None,
                            source, truth.to_json())
    if config.likelihood == "rows":
        rows = load_possessions(config.data.path, config.data.seasons, config.data.chunksize, split)
        return PreparedData(SuffStats.from_possessions(rows), rows, str(config.data.path))
    stats = from_file(config.data.path, config.data.seasons, config.data.chunksize, split)
    return PreparedData(stats, None, str(config.data.path))


def train(config: RunConfig, out: str | Path, overwrite: bool = False) -> dict:
    """Fit `config.model` and write its run directory; returns the diagnostics report.

    The run record is written first and the sampler saves its progress under
    RUN_DIR/checkpoint as it goes, so that `resume` can finish a run that was stopped.
    """
    configure_jax(config.sampler.platform, config.sampler.chains)
    start = time.perf_counter()
    data = prepare_data(config)
    data_s = time.perf_counter() - start
    warn_degenerate(data.stats, data.source)
    require_fittable(data.stats, data.source)
    run_dir = outputs.prepare_run_dir(out, overwrite)
    outputs.write_record(run_dir, config, data.stats, data.source)
    return _sample_and_write(run_dir, config, data, data_s)


def resume(run_dir: str | Path) -> dict:
    """Finish a run that was stopped (killed, crashed, or its machine lost) from its checkpoint,
    with the configuration it was started with; the result is the same as an unbroken run's."""
    run_dir = Path(run_dir)
    status = outputs.read_status(run_dir)
    if status.get("state") == "complete":
        raise outputs.RunDirError(f"{run_dir}: the run is already complete; nothing to resume")
    record = outputs.read_record(run_dir)
    config = RunConfig.from_dict(record["config"])
    configure_jax(config.sampler.platform, config.sampler.chains)
    start = time.perf_counter()
    data = prepare_data(config)
    data_s = time.perf_counter() - start
    if data.stats.total != record["data"]["n_possessions"]:
        raise outputs.RunDirError(
            f"{run_dir}: the run was started on {record['data']['n_possessions']:,} possessions but "
            f"{data.source} now gives {data.stats.total:,}; the data changed, start a new run"
        )
    return _sample_and_write(run_dir, config, data, data_s)


def _whitening(config: RunConfig, data: PreparedData) -> Whitening | None:
    """The hierarchical model's whitened coordinates (None: plain non-centred, or another model)."""
    if config.model == "hierarchical" and config.parameterization == "whitened":
        return Whitening.from_stats(data.stats)
    return None


def _sample_and_write(run_dir: Path, config: RunConfig, data: PreparedData, data_s: float) -> dict:
    """NUTS (checkpointed), or one of the approximations, which take seconds and start over."""
    outputs.set_status(run_dir, "running")
    try:
        likelihood = make_likelihood(config.likelihood, stats=data.stats, rows=data.rows)
        if data.truth is not None:
            outputs.write_json(run_dir / "true_params.json", data.truth)
        cells = Cells.from_stats(data.stats)
        model = get_model(config.model, cells, _whitening(config, data))
        if config.method == "nuts":
            result = sample_posterior(model, likelihood, config.sampler, checkpoint_dir=run_dir / outputs.CHECKPOINT)
            result = replace(result, samples=complete(config.model, result.samples, cells, config.sampler.seed))
            report = outputs.write_outputs(run_dir, result, config, data.stats, data.source, data_s)
        else:
            from .approx import approximate

            fit = approximate(config.method, model, likelihood, config.approx)
            fit = replace(fit, samples=complete(config.model, fit.samples, cells, config.approx.seed))
            report = outputs.write_approx_outputs(run_dir, fit, config, data.stats, data.source, data_s)
    except BaseException as exc:
        outputs.set_status(run_dir, "failed", error=f"{type(exc).__name__}: {exc}")
        raise
    outputs.set_status(run_dir, "complete", converged=report["converged"])
    shutil.rmtree(run_dir / outputs.CHECKPOINT, ignore_errors=True)
    return report
