"""Production coefficients: per matchup, the matchup-level fit where it can be trusted and the
pooled model's coefficients otherwise.

Matchup model: a matchup's own coefficients are used when its parameters converged (every
R-hat <= 1.01, every ESS_bulk >= 100 per chain), it has at least `min_possessions` possessions and the
run had no divergent transitions; otherwise the pooled (simplified) run's. Hierarchical model:
its own coefficients for every matchup, sparse and empty ones included (partial pooling is
what they are for), wherever the run had no divergences and the matchup's parameters
converged; the pooled run's only where not. The table keeps the
original project's `parameter,mean` columns first, so its downstream code reads it, and
says for every row which run it came from and why. `force` (for a pipeline test, or a decision
that cannot wait) keeps each matchup's own coefficients whatever the convergence checks say and
accepts an unconverged pooled run; every row it affects says so in `reason`.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pandas as pd

from lineup_numpyro import names
from lineup_numpyro.errors import RunDirError
from lineup_numpyro.files import atomic_path
from lineup_numpyro.inference.diagnostics import RHAT_MAX, ess_min
from lineup_numpyro.run.outputs import rhat_text
from lineup_numpyro.run.rundir import RunDir

MIN_POSSESSIONS = 200  # fewer possessions than this and a matchup's own estimate is mostly prior
COLUMNS = ("parameter", "mean", "sd", "5%", "50%", "95%", "matchup_id", "label", "source", "reason")


def _complete_run(run_dir: str | Path) -> tuple[dict, pd.DataFrame, dict]:
    run = RunDir(run_dir).require_complete("export", nuts=True)
    return run.record, run.table.set_index("parameter"), run.diagnostics


def _data_reason(verdict: dict, min_possessions: int, model: str) -> str | None:
    """Too little data for a matchup model's own estimate (partial pooling is what sparse
    matchups of a hierarchical run are for)."""
    n = verdict["n_possessions"]
    if model != "hierarchical":
        if n == 0:
            return "no possessions in this matchup"
        if n < min_possessions:
            return f"{n} possessions < {min_possessions}"
    return None


def _convergence_reason(verdict: dict, divergences: int, chains: int) -> str | None:
    """Why matchup `verdict`'s own fit cannot be trusted; None when it converged."""
    if divergences:
        return f"the run had {divergences} divergent transitions"
    if verdict["max_rhat"] is None:
        return "not checked: R-hat needs at least 2 chains"
    if verdict["max_rhat"] > RHAT_MAX:
        return f"not converged: R-hat {verdict['max_rhat']:.3f} > {RHAT_MAX}"
    if verdict["min_ess_bulk"] < ess_min(chains):
        return f"not converged: ESS_bulk {verdict['min_ess_bulk']:.0f} < {ess_min(chains)} (100 per chain)"
    return None


def production_coefficients(
    run_dir: str | Path, pooled_dir: str | Path, min_possessions: int = MIN_POSSESSIONS, force: bool = False
) -> pd.DataFrame:
    """The per-matchup coefficient table (see the module docstring), in Stan names."""
    record, table, diag = _complete_run(run_dir)
    pooled_record, pooled, pooled_diag = _complete_run(pooled_dir)
    if diag["model"] not in ("matchup", "hierarchical"):
        raise RunDirError(f"{run_dir}: a {diag['model']} run; export takes a matchup or hierarchical run")
    if pooled_diag["model"] != "simplified":
        raise RunDirError(f"{pooled_dir}: a {pooled_diag['model']} run; --pooled takes a simplified run")
    pooled_caveat = ""
    if not pooled_diag["converged"]:
        problem = (
            f"the pooled run did not converge (max R-hat {rhat_text(pooled_diag['max_rhat'])}, "
            f"min ESS_bulk {pooled_diag['min_ess_bulk']:.0f}, {pooled_diag['divergences']['count']} divergences)"
        )
        if not force:
            raise RunDirError(f"{pooled_dir}: {problem}; it cannot serve as the fallback (--force to use it anyway)")
        pooled_caveat = f"; forced: {problem}"
    divergences, chains = int(diag["divergences"]["count"]), int(diag["chains"])
    stats = ["mean", "sd", "5%", "50%", "95%"]
    rows = []
    for verdict in diag["matchups"]:
        m = verdict["matchup_id"] + 1  # Stan's index
        unconverged = _convergence_reason(verdict, divergences, chains)
        why_not = _data_reason(verdict, min_possessions, diag["model"]) or (None if force else unconverged)
        source = "simplified" if why_not else diag["model"]
        if why_not:
            reason = why_not + pooled_caveat
        elif unconverged:
            reason = f"forced: {unconverged}, {verdict['n_possessions']} possessions"
        else:
            reason = (
                f"converged: R-hat {verdict['max_rhat']:.3f}, ESS_bulk {verdict['min_ess_bulk']:.0f}, "
                f"{verdict['n_possessions']} possessions"
            )
        if not why_not and diag["model"] == "hierarchical" and verdict["n_possessions"] < min_possessions:
            reason += " (partially pooled toward the league-wide effects)"
        own = [
            f"beta_0[{m}]",
            *(f"beta_{side}[{m},{a}]" for side in ("off", "def") for a in range(1, names.N_ARCHETYPES + 1)),
        ]
        fallback = [
            "beta_0",
            *(f"beta_{side}[{a}]" for side in ("off", "def") for a in range(1, names.N_ARCHETYPES + 1)),
        ]
        for name, pooled_name in zip(own, fallback):
            values = pooled.loc[pooled_name, stats] if why_not else table.loc[name, stats]
            rows.append(
                {
                    "parameter": name,
                    **values.to_dict(),
                    "matchup_id": verdict["matchup_id"],
                    "label": verdict["label"],
                    "source": source,
                    "reason": reason,
                }
            )
    sigma = table.loc["sigma", stats].to_dict()
    rows.append(
        {
            "parameter": "sigma",
            **sigma,
            "matchup_id": None,
            "label": "",
            "source": diag["model"],
            "reason": "noise scale of the matchup-level run",
        }
    )
    out = pd.DataFrame(rows, columns=list(COLUMNS))
    out["matchup_id"] = out["matchup_id"].astype("Int64")
    mine, theirs = (r.get("data", {}).get("source") for r in (record, pooled_record))
    if mine != theirs:
        warnings.warn(
            f"the runs were fitted to different data ({run_dir}: {mine}; {pooled_dir}: {theirs})",
            UserWarning,
            stacklevel=2,
        )
    return out


def write_production(table: pd.DataFrame, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False, float_format="%.6g")
