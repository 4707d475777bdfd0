"""A training run from start to finish: data -> sufficient statistics -> NUTS -> run directory.

All input is validated before the run directory is touched, so bad input leaves nothing
behind; once sampling starts, status.json says whether the run is running, complete, failed or
interrupted, and the run holds the directory's lock (rundir.RunDir) until it ends. A stopped
run is finished by `resume`, which refuses changed data and changed settings.
"""

from __future__ import annotations

import hashlib
import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from lineup_numpyro.config import FIXED_ON_RESUME, RunConfig
from lineup_numpyro.data.possessions import Possessions, load_possessions
from lineup_numpyro.data.suffstats import SuffStats, from_file, require_fittable, warn_degenerate
from lineup_numpyro.errors import CheckpointError, RunDirError
from lineup_numpyro.files import write_json
from lineup_numpyro.inference.approx import approximate
from lineup_numpyro.inference.runtime import configure_jax
from lineup_numpyro.inference.sampling import sample_posterior
from lineup_numpyro.models.cells import Cells
from lineup_numpyro.models.model import complete, get_model, make_likelihood, start_for
from lineup_numpyro.models.simulate import simulate_season
from lineup_numpyro.models.whitening import Whitening
from lineup_numpyro.run import outputs
from lineup_numpyro.run.rundir import RunDir


@dataclass(frozen=True)
class PreparedData:
    """What the likelihoods need: always the statistics, the rows only for `rows`."""

    stats: SuffStats
    rows: Possessions | None
    source: str
    truth: dict | None = None

    def digest(self) -> dict:
        """Fingerprints of the data for run_config.json: the statistics always, the rows when
        the likelihood reads them."""
        out = {"suffstats": self.stats.digest()}
        if self.rows is not None:
            h = hashlib.sha256()
            for a in (self.rows.y, self.rows.matchup, self.rows.z_off, self.rows.z_def):
                h.update(np.ascontiguousarray(a).tobytes())
            out["rows"] = h.hexdigest()
        return out


def prepare_data(config: RunConfig) -> PreparedData:
    """Read and validate the data of `config` (or simulate the built-in season)."""
    split = config.data.split("train")
    if config.data.path is None:
        rows, truth = simulate_season()
        if split is not None:
            rows = rows.subset(split.keep(0, len(rows)))
        source = f"built-in simulated season ({len(rows):,} possessions, {rows.source})"
        return PreparedData(
            SuffStats.from_possessions(rows), rows if config.likelihood == "rows" else None, source, truth.to_json()
        )
    if config.likelihood == "rows":
        rows = load_possessions(config.data.path, config.data.seasons, config.data.chunksize, split, config.data.where)
        return PreparedData(SuffStats.from_possessions(rows), rows, config.data.describe())
    stats = from_file(config.data.path, config.data.seasons, config.data.chunksize, split, config.data.where)
    return PreparedData(stats, None, config.data.describe())


def train(config: RunConfig, out: str | Path, overwrite: bool = False) -> dict:
    """Fit `config.model` and write its run directory; returns the diagnostics report.

    The run record is written first and the sampler saves its progress under
    RUN_DIR/checkpoint as it goes, so that `resume` can finish a run that was stopped.
    """
    if config.data.path is not None:  # recorded absolute: resume, validate and compare work from anywhere
        config = replace(config, data=replace(config.data, path=str(Path(config.data.path).resolve())))
    configure_jax(config.sampler.platform, config.sampler.chains)
    start = time.perf_counter()
    data = prepare_data(config)
    data_s = time.perf_counter() - start
    warn_degenerate(data.stats, data.source)
    require_fittable(data.stats, data.source)
    run = RunDir(out)
    with run.holding():
        run.prepare(overwrite)
        outputs.write_record(run.path, config, data.stats, data.source, data.digest())
        return _sample_and_write(run, config, data, data_s)


def resume(run_dir: str | Path, options: Mapping[str, object] | None = None) -> dict:
    """Finish a run that was stopped (killed, crashed, or its machine lost) from its checkpoint,
    with the configuration it was started with; the result is the same as an unbroken run's.

    `options` (RunConfig paths, e.g. {"sampler.draws": 600}) are settings the user gave again:
    each must match the run's, or the resume is refused (a resumed run cannot change them).
    The data must give the same statistics (digest) as when the run started.
    """
    run = RunDir(run_dir)
    if run.status().get("state") == "complete":
        raise RunDirError(f"{run}: the run is already complete; nothing to resume")
    record = run.record()
    config = RunConfig.from_dict(record["config"])
    _require_same_options(run, config, options or {})
    configure_jax(config.sampler.platform, config.sampler.chains)
    start = time.perf_counter()
    data = prepare_data(config)
    data_s = time.perf_counter() - start
    saved = record["data"].get("digest")
    if data.stats.total != record["data"]["n_possessions"] or (saved is not None and saved != data.digest()):
        raise CheckpointError(
            f"{run}: the run was started on other data than {data.source} now holds "
            f"({record['data']['n_possessions']:,} possessions then, {data.stats.total:,} now; their statistics "
            "differ); start a new run with --overwrite"
        )
    with run.holding():
        return _sample_and_write(run, config, data, data_s)


def _require_same_options(run: RunDir, config: RunConfig, options: Mapping[str, object]) -> None:
    recorded = config.to_dict()
    changed = []
    for key, value in options.items():
        if key not in FIXED_ON_RESUME:
            continue
        section, _, name = key.partition(".")
        old = recorded[section][name] if name else recorded[section]
        if key == "data.path" and value is not None and old is not None:
            value, old = str(Path(str(value)).resolve()), str(Path(old).resolve())
        if key == "data.seasons":
            value, old = tuple(value or ()), tuple(old or ())
        if key == "data.where":
            value, old = (tuple(x) if x else None for x in (value, old))
        if key == "priors":  # name only the families that differ
            differ = [k for k in old if value.get(k) != old[k]]
            value, old = {k: value.get(k) for k in differ}, {k: old[k] for k in differ}
        if value != old:
            changed.append(f"{key.split('.')[-1]} {value!r} (the run has {old!r})")
    if changed:
        raise RunDirError(
            f"{run}: a resumed run keeps the settings it started with; these differ: "
            f"{'; '.join(changed)}. Drop them, or start a new run with --out (or --overwrite)"
        )


def whitening_for(config: RunConfig, stats: SuffStats) -> Whitening | None:
    """The hierarchical model's whitened coordinates (None: plain non-centred, or another model)."""
    if config.model == "hierarchical" and config.parameterization == "whitened":
        return Whitening.from_stats(stats, config.priors.tau)
    return None


def _sample_and_write(run: RunDir, config: RunConfig, data: PreparedData, data_s: float) -> dict:
    """NUTS (checkpointed), or one of the approximations, which take seconds and start over."""
    run.set_status("running")
    try:
        likelihood = make_likelihood(config.likelihood, stats=data.stats, rows=data.rows)
        if data.truth is not None:
            write_json(run / RunDir.TRUE_PARAMS, data.truth)
        cells = Cells.from_stats(data.stats)
        model = get_model(config.model, cells, whitening_for(config, data.stats), config.priors)
        if config.method == "nuts":
            sampler = config.sampler
            start = start_for(sampler.init, data.stats, cells, config.priors, sampler.chains, sampler.seed)
            result = sample_posterior(
                model, likelihood, config.sampler, checkpoint_dir=run / RunDir.CHECKPOINT, start=start
            )
            samples = complete(config.model, result.samples, cells, config.sampler.seed, config.priors)
            result = replace(result, samples=samples)
            report = outputs.write_outputs(run.path, result, config, data.stats, data.source, data_s)
        else:
            fit = approximate(config.method, model, likelihood, config.approx)
            fit = replace(fit, samples=complete(config.model, fit.samples, cells, config.approx.seed, config.priors))
            report = outputs.write_approx_outputs(run.path, fit, config, data.stats, data.source, data_s)
    except KeyboardInterrupt:
        _mark(run, "interrupted")
        raise
    except BaseException as exc:
        _mark(run, "failed", error=f"{type(exc).__name__}: {exc}")
        raise
    run.set_status("complete", converged=report["converged"])
    shutil.rmtree(run / RunDir.CHECKPOINT, ignore_errors=True)
    return report


def _mark(run: RunDir, state: str, **details: object) -> None:
    """Record how the run ended, if the disk still lets us (a full disk may be why it ended)."""
    try:
        run.set_status(state, **details)
    except OSError:
        pass
