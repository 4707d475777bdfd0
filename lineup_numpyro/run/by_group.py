"""`train --by season`: one model per season, all fitted in one batched program (issue 19).

Every season's statistics come from one pass over the file; the fits share one compiled
program (`inference.batched`: each season's chains are lanes of it) and every season gets
the seed of the run, so season s's draws are those of `train --season s` with the same seed
(up to rounding). The fits sample the cells touched in any season: a cell a season never
touches is then drawn by NUTS from what is, for that season, its exact conditional (the
prior, or the population), instead of afterwards; the posterior is the same.

Each season is written as a complete run directory (OUT/<season>/, the files of `train`),
then OUT/index.json and index.csv list them. A run stopped before the end leaves the season
directories already written, each marked complete, and no index.
"""

from __future__ import annotations

import re
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from lineup_numpyro.config import RunConfig
from lineup_numpyro.data.suffstats import by_season, require_fittable, warn_degenerate
from lineup_numpyro.errors import ConfigError
from lineup_numpyro.files import atomic_path, write_json
from lineup_numpyro.inference.batched import BatchSampler
from lineup_numpyro.inference.runtime import configure_jax
from lineup_numpyro.inference.sampling import SamplingResult, Timing
from lineup_numpyro.models.cells import Cells
from lineup_numpyro.models.model import complete, get_model, make_likelihood
from lineup_numpyro.run import outputs
from lineup_numpyro.run.rundir import RunDir
from lineup_numpyro.run.train import whitening_for

GROUP_COLUMNS = ("season",)  # the columns a run can be split by


def group_dir_name(group: str) -> str:
    """A directory name for a group's value: its characters other than letters, digits, '-',
    '_' and '.' become '_'."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", group) or "_"


def train_by(config: RunConfig, out: str | Path, by: str = "season", overwrite: bool = False) -> pd.DataFrame:
    """Fit `config.model` to each group of the data (NUTS, batched); returns the index."""
    if by not in GROUP_COLUMNS:
        raise ConfigError(f"--by {by!r}: runs can be split by {', '.join(GROUP_COLUMNS)}")
    if config.data.path is None:
        raise ConfigError("--by needs --data: the built-in season has no seasons to split by")
    if config.method != "nuts" or config.likelihood != "suffstats":
        raise ConfigError("--by fits NUTS with the suffstats likelihood (the defaults)")
    if config.data.seasons:
        raise ConfigError("--by season fits every season; drop --season")
    config = replace(config, data=replace(config.data, path=str(Path(config.data.path).resolve())))
    configure_jax(config.sampler.platform, config.sampler.chains)
    start = time.perf_counter()
    groups = by_season(config.data.path, config.data.chunksize, config.data.split("train"))
    data_s = time.perf_counter() - start
    for group, stats in groups.items():
        source = f"{config.data.path} ({by} {group})"
        warn_degenerate(stats, source)
        require_fittable(stats, source)
    out = Path(out)
    names = {group: group_dir_name(group) for group in groups}
    if len(set(names.values())) < len(names):
        raise ConfigError(f"--by {by}: two groups map to the same directory name: {sorted(names)}")
    runs = {group: RunDir(out / name) for group, name in names.items()}
    for run in runs.values():
        run.prepare(overwrite)

    cells = Cells(np.logical_or.reduce([Cells.from_stats(s).touched for s in groups.values()]))
    whitenings = [whitening_for(config, s) for s in groups.values()]
    data = [{"whitening": w} for w in whitenings] if whitenings[0] is not None else None
    model = get_model(config.model, cells, whitenings[0], config.priors)
    fit = BatchSampler(model, config.sampler).run(
        [make_likelihood("suffstats", stats=s) for s in groups.values()], [config.sampler.seed] * len(groups), data
    )
    per_fit = fit.seconds / len(groups)
    rows = []
    for i, (group, stats) in enumerate(groups.items()):
        run = runs[group]
        group_config = replace(config, data=replace(config.data, seasons=(group,)))
        with run.holding():
            outputs.write_record(run.path, group_config, stats, f"{config.data.path} ({by} {group})")
            run.set_status("running")
            samples = complete(
                config.model, {k: v[i] for k, v in fit.samples.items()}, cells, config.sampler.seed, config.priors
            )
            result = SamplingResult(
                samples,
                {k: v[i] for k, v in fit.stats.items()},
                Timing(0.0, 0.0, per_fit, per_fit),  # a batched fit: its share of the batch's wall time
                config.sampler,
                "batched",
            )
            report = outputs.write_outputs(run.path, result, group_config, stats, group_config.data.path, data_s)
            run.set_status("complete", converged=report["converged"])
        rows.append(
            {
                by: group,
                "run": names[group],
                "possessions": int(stats.total),
                "converged": bool(report["converged"]),
                "divergences": int(report["divergences"]["count"]),
                "max_rhat": report["max_rhat"],
                "min_ess_bulk": report["min_ess_bulk"],
            }
        )
    index = pd.DataFrame(rows)
    with atomic_path(out / "index.csv") as tmp:
        index.to_csv(tmp, index=False)
    write_json(
        out / "index.json",
        {"by": by, "model": config.model, "groups": rows, "seconds": round(time.perf_counter() - start, 1)},
    )
    return index
