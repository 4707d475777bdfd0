"""Comparing runs of different models on the same possessions: PSIS-LOO and holdout scores.

LOO compares models on the data they were fitted to, so every run must have been fitted to
the same possessions. The ranking is by elpd_loo; a model is called worse than the best
only when it trails by more than 4 and by more than two standard errors of the pointwise
difference (Sivula et al. 2022 on when an elpd difference is noise). Among the models
that are not worse and whose fit converged (no divergences, R-hat <= 1.01, ESS_bulk >= 100 per chain),
the recommendation is the one with the fewest effective parameters; when none converged,
nothing is recommended.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from lineup_numpyro.analysis.validation import (
    HoldoutScore,
    LooResult,
    data_config_of,
    load_posterior,
    psis_loo,
    require_same_builtin_season,
    run_data,
    score_holdout,
)
from lineup_numpyro.config import DataConfig
from lineup_numpyro.data.possessions import iter_chunks
from lineup_numpyro.errors import ConfigError, RunDirError
from lineup_numpyro.files import atomic_path, write_json
from lineup_numpyro.run.outputs import rhat_text
from lineup_numpyro.run.rundir import RunDir

NOISE_ELPD = 4.0  # an elpd difference below this is noise whatever its standard error
NOISE_SE = 2.0  # ... and so is one within this many standard errors

COMPARISON_CSV, COMPARISON_JSON = "comparison.csv", "comparison.json"


@dataclass(frozen=True)
class Comparison:
    table: pd.DataFrame  # one row per run, best first
    recommended: str | None  # run directory of the recommended model; None when no candidate converged
    verdict: str  # one sentence
    training_data: str
    holdout_data: str | None


def _same_training_data(configs: Sequence[DataConfig], run_dirs: Sequence[str]) -> None:
    first = configs[0]
    for run_dir, cfg in zip(run_dirs[1:], configs[1:]):
        mine = (cfg.path, cfg.seasons, cfg.where, cfg.holdout_fraction, cfg.split_seed)
        theirs = (first.path, first.seasons, first.where, first.holdout_fraction, first.split_seed)
        if mine != theirs:
            raise RunDirError(
                f"{run_dir} was fitted to {cfg.describe()}, but {run_dirs[0]} to {first.describe()}; "
                "LOO compares models on the same possessions: train them on the same data"
            )


def compare_runs(
    run_dirs: Sequence[str | Path], holdout: DataConfig | None = None, use_split: bool = True
) -> Comparison:
    """Rank the runs by PSIS-LOO, and score each on `holdout` (or on the possessions their
    random split held out, when `use_split` and they had one)."""
    run_dirs = [str(r) for r in run_dirs]
    if len(run_dirs) < 2:
        raise ConfigError("give at least two run directories to compare")
    loaded = [RunDir(r).require_complete("compare", nuts=True) for r in run_dirs]
    records = [run.record for run in loaded]
    fits = [_fit_health(run.diagnostics) for run in loaded]
    for run_dir, rec in zip(run_dirs, records):
        require_same_builtin_season(rec, run_dir)
    configs = [data_config_of(rec) for rec in records]
    _same_training_data(configs, run_dirs)
    posteriors = [load_posterior(r) for r in run_dirs]
    loos = [psis_loo(post, run_data(cfg, "train")) for post, cfg in zip(posteriors, configs)]
    if len({loo.n for loo in loos}) != 1:
        raise RunDirError("the runs scored different numbers of possessions; were they fitted to the same file?")

    holdout_source = None
    scores: list[HoldoutScore | None] = [None] * len(run_dirs)
    if holdout is not None:
        holdout_source = holdout.describe("holdout") if holdout.holdout_fraction else holdout.describe()
        scores = [
            score_holdout(
                post, iter_chunks(holdout.path, holdout.seasons, holdout.chunksize, where=holdout.where), holdout_source
            )
            for post in posteriors
        ]
    elif use_split and configs[0].holdout_fraction > 0:
        holdout_source = configs[0].describe("holdout")
        scores = [
            score_holdout(post, run_data(cfg, "holdout"), holdout_source) for post, cfg in zip(posteriors, configs)
        ]

    table = _table(run_dirs, [p.model for p in posteriors], loos, scores, fits)
    recommended, verdict = _recommend(table, run_dirs, [p.model for p in posteriors], loos, fits)
    return Comparison(table, recommended, verdict, configs[0].describe(), holdout_source)


def _fit_health(diag: dict) -> dict:
    return {
        "divergences": int(diag["divergences"]["count"]),
        "max_rhat": diag["max_rhat"],
        "min_ess_bulk": float(diag["min_ess_bulk"]),
        "converged": bool(diag["converged"]),
    }


def _recommend(
    table: pd.DataFrame, run_dirs: Sequence[str], models: Sequence[str], loos: Sequence[LooResult], fits: Sequence[dict]
) -> tuple[str | None, str]:
    """The run to use and one sentence saying why: the module docstring's rule, applied to the
    runs whose fits converged (an unconverged fit's elpd_loo is no evidence)."""
    healthy = [i for i, fit in enumerate(fits) if fit["converged"]]
    skipped = [
        f"{r['model']} ({r['divergences']} divergences, max R-hat {rhat_text(r['max_rhat'])}, "
        f"min ESS_bulk {r['min_ess_bulk']:.0f})"
        for _, r in table.iterrows()
        if not r["converged"]
    ]
    caveat = f"; not converged, so not considered: {', '.join(skipped)}" if skipped else ""
    if not healthy:
        return None, "no run converged" + caveat + "; see each run's problems in its diagnostics.json"
    sub = _table(
        [run_dirs[i] for i in healthy],
        [models[i] for i in healthy],
        [loos[i] for i in healthy],
        [None] * len(healthy),
        [fits[i] for i in healthy],
    )
    best = sub.iloc[0]
    close = sub[sub["verdict"] != "worse"]
    pick = close.sort_values("p_loo").iloc[0]
    of = " of the converged runs" if skipped else ""
    if pick["run"] == best["run"]:
        verdict = f"{pick['model']} ({pick['run']}) has the highest elpd_loo{of}"
        others = close[close["run"] != pick["run"]]
        if len(others):
            verdict += f"; {', '.join(others['model'])} within noise of it"
    else:
        verdict = (
            f"{pick['model']} ({pick['run']}) is within noise of the best elpd_loo{of} "
            f"({best['model']}) with fewer effective parameters ({pick['p_loo']:.0f} against "
            f"{best['p_loo']:.0f}); prefer the simpler model"
        )
    if pick["n_high_k"]:
        verdict += (
            f"; {pick['n_high_k']} of its possessions have Pareto k above the threshold, so its "
            "elpd_loo is approximate there (the holdout scores do not depend on it)"
        )
    return pick["run"], verdict + caveat


def _table(
    run_dirs: Sequence[str],
    models: Sequence[str],
    loos: Sequence[LooResult],
    scores: Sequence[HoldoutScore | None],
    fits: Sequence[dict],
) -> pd.DataFrame:
    order = np.argsort([-loo.elpd for loo in loos], kind="stable")
    best = loos[order[0]]
    rows = []
    for rank, i in enumerate(order, start=1):
        loo = loos[i]
        diff_i = best.elpd_i - loo.elpd_i
        diff = float(diff_i.sum())
        se_diff = float(math.sqrt(loo.n * np.var(diff_i)))
        if i == order[0]:
            verdict = "best"
        elif diff > NOISE_ELPD and diff > NOISE_SE * se_diff:
            verdict = "worse"
        else:
            verdict = "within noise"
        row = {
            "rank": rank,
            "run": run_dirs[i],
            "model": models[i],
            "elpd_loo": loo.elpd,
            "se": loo.se,
            "elpd_diff": diff,
            "se_diff": se_diff,
            "p_loo": loo.p_loo,
            "n_high_k": loo.n_high_k,
            "max_k": float(loo.pareto_k.max()),
            "verdict": verdict,
            **fits[i],
        }
        score = scores[i]
        if score is not None:
            row.update(
                holdout_n=score.n,
                holdout_mse=score.mse,
                holdout_rmse=score.rmse,
                holdout_mlpd=score.mlpd,
                coverage_50=score.coverage_50,
                coverage_90=score.coverage_90,
            )
        rows.append(row)
    return pd.DataFrame(rows)


def write_comparison(comparison: Comparison, out_dir: str | Path) -> None:
    """comparison.csv (the table) and comparison.json (table, verdict, data), each atomically."""
    out_dir = Path(out_dir)
    with atomic_path(out_dir / COMPARISON_CSV) as tmp:
        comparison.table.to_csv(tmp, index=False, float_format="%.6g")
    write_json(
        out_dir / COMPARISON_JSON,
        {
            "verdict": comparison.verdict,
            "recommended": comparison.recommended,
            "training_data": comparison.training_data,
            "holdout_data": comparison.holdout_data,
            "rules": {"noise_elpd": NOISE_ELPD, "noise_se": NOISE_SE},
            "runs": comparison.table.to_dict(orient="records"),
        },
    )
