"""`train --by COLUMN`: one model per value of a column (a season, a team, ...), all fitted
in one batched program (issue 19).

Every group's statistics come from one pass over the file; the fits share one compiled
program (`inference.batched`: each group's chains are lanes of it) and every group gets the
seed of the run, so group g's draws are those of `train --season g` (by season) or `train
--where COLUMN=g` with the same seed (up to rounding). The fits sample the cells touched in
any group: a cell a group never touches is then drawn by NUTS from what is, for that group,
its exact conditional (the prior, or the population), instead of afterwards; the posterior
is the same.

Each group is written as a complete run directory (OUT/<value>/, the files of `train`, whose
run_config.json says how to read its rows again: `--season` or `--where`, so that `resume`,
`validate` and the data check work on it), then OUT/index.json and index.csv list them. A run
stopped before the end leaves the group directories already written, each marked complete,
and no index.
"""

from __future__ import annotations

import re
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from lineup_numpyro import names
from lineup_numpyro.config import DataConfig, RunConfig, check_group_column
from lineup_numpyro.data.suffstats import by_column, require_fittable, warn_degenerate
from lineup_numpyro.errors import ConfigError
from lineup_numpyro.files import atomic_path, write_json
from lineup_numpyro.inference.batched import BATCHED_INITS, batch_sampler
from lineup_numpyro.inference.runtime import configure_jax
from lineup_numpyro.inference.sampling import SamplingResult, Timing
from lineup_numpyro.models.cells import Cells
from lineup_numpyro.models.model import complete, get_model, make_likelihood, start_for
from lineup_numpyro.run import outputs
from lineup_numpyro.run.rundir import RunDir
from lineup_numpyro.run.train import whitening_for


def group_dir_name(group: str) -> str:
    """A directory name for a group's value: its characters other than letters, digits, '-',
    '_' and '.' become '_'."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", group) or "_"


def group_data(data: DataConfig, by: str, group: str) -> DataConfig:
    """The data of one group's run: its season (`train --season`) or its value of the column
    (`train --where`), on top of the run's other filters."""
    return replace(data, seasons=(group,)) if by == names.SEASON else replace(data, where=(by, group))


def train_by(config: RunConfig, out: str | Path, by: str = "season", overwrite: bool = False) -> pd.DataFrame:
    """Fit `config.model` to each group of the data (NUTS, batched); returns the index."""
    check_group_column(by)
    if config.data.path is None:
        raise ConfigError(f"--by needs --data: the built-in season has no column {by!r} to split by")
    if config.method != "nuts" or config.likelihood != "suffstats":
        raise ConfigError("--by fits NUTS with the suffstats likelihood (the defaults)")
    if config.sampler.init not in BATCHED_INITS:
        init = config.sampler.init
        raise ConfigError(f"--by starts NUTS at random (default) or from the data (plugin), not --init {init}")
    if by == names.SEASON and config.data.seasons:
        raise ConfigError("--by season fits every season; drop --season")
    if config.data.where:
        raise ConfigError(
            f"--by {by} with --where {'='.join(config.data.where)}: a run has one column filter, and each group's "
            "run is filtered by its value; drop --where (--season still narrows the rows)"
        )
    config = replace(config, data=replace(config.data, path=str(Path(config.data.path).resolve())))
    configure_jax(config.sampler.platform, config.sampler.chains)
    start = time.perf_counter()
    data = config.data
    groups = by_column(data.path, by, data.seasons, data.chunksize, data.split("train"))
    data_s = time.perf_counter() - start
    for group, stats in groups.items():
        source = group_data(data, by, group).describe()
        warn_degenerate(stats, source)
        require_fittable(stats, source)
    out = Path(out)
    dirs = {group: group_dir_name(group) for group in groups}
    if len(set(dirs.values())) < len(dirs):
        raise ConfigError(f"--by {by}: two groups map to the same directory name: {sorted(dirs)}")
    runs = {group: RunDir(out / name) for group, name in dirs.items()}
    for run in runs.values():
        run.prepare(overwrite)

    cells = Cells(np.logical_or.reduce([Cells.from_stats(s).touched for s in groups.values()]))
    whitenings = [whitening_for(config, s) for s in groups.values()]
    keywords = [{"whitening": w} for w in whitenings] if whitenings[0] is not None else None
    model = get_model(config.model, cells, whitenings[0], config.priors)
    sampler = config.sampler
    starts = [start_for(sampler.init, s, cells, config.priors, sampler.chains, sampler.seed) for s in groups.values()]
    fit = batch_sampler(model, sampler).run(
        [make_likelihood("suffstats", stats=s) for s in groups.values()], [sampler.seed] * len(groups), keywords, starts
    )
    per_fit = fit.seconds / len(groups)
    rows = []
    for i, (group, stats) in enumerate(groups.items()):
        run = runs[group]
        group_config = replace(config, data=group_data(data, by, group))
        with run.holding():
            outputs.write_record(run.path, group_config, stats, group_config.data.describe())
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
                "run": dirs[group],
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
