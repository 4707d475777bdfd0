"""`predict`: a run's predictions for possessions it did not see (brms' posterior_predict,
cmdstanpy's generate_quantities).

Per possession: the posterior mean and 90% interval of E[y] (the expected points), the 90%
predictive interval of y itself, and flags where the prediction rests on the prior rather than
data (`u`: its matchup had no training possessions; `w`: a player's archetype whose coefficient
the data do not inform, named) or leaves what a possession can score (`!`). The outcome column
may be absent. Rows are read, predicted and written a chunk at a time; the predictive draws go
to a netCDF file's posterior_predictive group the same way (run/pointwise.py), so any number
of possessions fits in memory.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from lineup_numpyro import names
from lineup_numpyro.data.possessions import iter_chunks
from lineup_numpyro.errors import ConfigError
from lineup_numpyro.files import atomic_path
from lineup_numpyro.lineups.prepare import prepare_possessions
from lineup_numpyro.lineups.valuation import PLAUSIBLE_POINTS, SLACK, load_fit
from lineup_numpyro.run.pointwise import PointwiseWriter, pieces, predicted_means

COLUMNS = (
    "row",
    "season",
    "matchup_id",
    "matchup_label",
    "outcome",
    "mean",
    "5%",
    "95%",
    "predictive_5%",
    "predictive_95%",
    "flags",
    "uninformed",
)


@dataclass(frozen=True)
class PredictReport:
    """What `predict_file` wrote, and how many predictions rest on the prior."""

    n: int
    csv: str
    draws: str | None
    unseen: int  # rows in a matchup without training possessions ('u')
    uninformed: int  # rows with an archetype on the floor whose coefficient is uninformed ('w')
    implausible: int  # rows whose mean E[y] is outside what a possession can score ('!')


def _uninformed(weak: np.ndarray, x: np.ndarray) -> list[str]:
    """Per row, the archetypes on the floor whose coefficient in the row's matchup is
    uninformed, e.g. 'off 3; def 0' (the numbering of names.py)."""
    hit = weak & (x != 0)
    out = []
    for row in hit:
        parts = [f"off {a}" for a in np.flatnonzero(row[names.FAMILY_COLUMNS["beta_off"]])]
        parts += [f"def {a}" for a in np.flatnonzero(row[names.FAMILY_COLUMNS["beta_def"]])]
        out.append("; ".join(parts))
    return out


def predict_file(
    run_dir: str | Path,
    data: str | Path,
    out_csv: str | Path,
    seasons: Sequence[str] = (),
    draws: str | Path | None = None,
    seed: int = 0,
    chunksize: int = 200_000,
) -> PredictReport:
    """Predict every possession of `data` (a model input file; the outcome column optional)
    with the run in `run_dir`: a CSV of COLUMNS and, with `draws`, a netCDF file of the
    predictive draws (posterior_predictive, with observed_data when the outcomes are known)."""
    out_csv = Path(out_csv)
    if out_csv.suffix != ".csv":
        raise ConfigError(f"{out_csv}: the predictions are written as CSV; give a file name ending in .csv")
    if draws is not None and Path(draws).suffix != ".nc":
        raise ConfigError(f"{draws}: the predictive draws are written as netCDF; give a file name ending in .nc")
    fit = load_fit(run_dir)
    post = fit.posterior
    rng = np.random.default_rng(seed)
    lo, hi = PLAUSIBLE_POINTS
    n = unseen_n = weak_n = odd_n = 0
    with contextlib.ExitStack() as stack:
        tmp_csv = stack.enter_context(atomic_path(out_csv))
        writer = None
        if draws is not None:
            tmp_nc = stack.enter_context(atomic_path(draws))
            writer = stack.enter_context(PointwiseWriter(tmp_nc, post.chains, post.n_draws // post.chains, False))
        for rows in pieces(iter_chunks(data, seasons, chunksize, outcome=False)):
            mu = predicted_means(post, rows)
            rep = mu + post.sigma[:, None] * rng.standard_normal(mu.shape)
            e_lo, e_hi = np.quantile(mu, [0.05, 0.95], axis=0)
            p_lo, p_hi = np.quantile(rep, [0.05, 0.95], axis=0)
            mean = mu.mean(axis=0)
            unseen = fit.unseen(rows.matchup)
            uninformed = _uninformed(fit.weak[rows.matchup], rows.design())
            implausible = (mean < lo - SLACK) | (mean > hi + SLACK)
            flags = [
                ("u" if u else "") + ("w" if w else "") + ("!" if i else "")
                for u, w, i in zip(unseen, uninformed, implausible)
            ]
            frame = pd.DataFrame(
                {
                    "row": np.arange(n + 1, n + len(rows) + 1),
                    "season": rows.season if rows.season is not None else "",
                    "matchup_id": rows.matchup,
                    "matchup_label": np.asarray(names.MATCHUP_LABELS)[rows.matchup],
                    "outcome": rows.y,
                    "mean": mean,
                    "5%": e_lo,
                    "95%": e_hi,
                    "predictive_5%": p_lo,
                    "predictive_95%": p_hi,
                    "flags": flags,
                    "uninformed": uninformed,
                },
                columns=list(COLUMNS),
            )
            frame.to_csv(tmp_csv, mode="a", header=n == 0, index=False, float_format="%.6g")
            if writer is not None:
                writer.add(rows, rep)
            n += len(rows)
            unseen_n += int(unseen.sum())
            weak_n += sum(1 for u in uninformed if u)
            odd_n += int(implausible.sum())
    return PredictReport(n, str(out_csv), None if draws is None else str(draws), unseen_n, weak_n, odd_n)


def predict_lineups(
    run_dir: str | Path,
    lineups: str | Path,
    out_csv: str | Path,
    archetypes: str | Path,
    darko: str | Path,
    assignments: str | Path,
    draws: str | Path | None = None,
    seed: int = 0,
) -> PredictReport:
    """`predict_file` for possessions given as lineups (prepare's input: off_1..5, def_1..5,
    points optional), with the features `prepare` and `lineup` form. A player missing from a
    table is an error naming its row and column (prepare's --strict), so row k of the output
    is row k of `lineups`."""
    with tempfile.TemporaryDirectory(prefix="lineup-numpyro-predict-") as work:
        prepared = Path(work) / "possessions.csv"
        prepare_possessions(lineups, prepared, archetypes, darko, assignments, strict=True, points=False)
        return predict_file(run_dir, prepared, out_csv, draws=draws, seed=seed)
