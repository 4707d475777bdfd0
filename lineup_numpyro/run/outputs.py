"""The results a run writes into its run directory (rundir.py names the files), under the
Stan names of ../shared/MODELS.md: posterior.nc (ArviZ's groups: posterior, sample_stats,
constant_data with n per matchup and, per coefficient, n_on_floor_*, prior_width_ratio_*,
informed_*; where not too large, observed_data, log_likelihood and posterior_predictive, see
pointwise.py), coefficients.csv (summary, R-hat, ESS, and how much of each coefficient is data),
diagnostics.json (convergence, divergences, timings, per-matchup verdicts; for map/laplace/advi
the method's own evidence) and run_config.json (configuration, data, versions).

posterior.nc is built as an xarray DataTree in ArviZ's layout (ArviZ 1.x's own type; ArviZ
0.23's `az.from_netcdf` reads the file as InferenceData), so that `train` does not import
ArviZ: 0.5-2 s of the default job's start-up, for nothing it uses.
"""

from __future__ import annotations

import platform
import sys
import time
import warnings
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import xarray as xr

from lineup_numpyro import names
from lineup_numpyro.config import Priors, RunConfig
from lineup_numpyro.data.suffstats import SuffStats
from lineup_numpyro.files import atomic_path, write_json
from lineup_numpyro.inference.diagnostics import RHAT_MAX, convergence_problems, ess_min, parameter_summary
from lineup_numpyro.inference.runtime import device_summary
from lineup_numpyro.inference.sampling import SamplingResult
from lineup_numpyro.models.model import prior_width
from lineup_numpyro.run.pointwise import pointwise_decision, write_pointwise
from lineup_numpyro.run.rundir import RunDir

if TYPE_CHECKING:
    from lineup_numpyro.inference.approx import Approximation

# A coefficient is informed when its central 90% posterior interval is at most this share of
# its prior's (models.prior_width): the data, or for the hierarchical model the population,
# narrowed it tenfold. The priors are ~100x wider than the effects (N+(0, 5) against ~0.01
# points per DARKO point), so halving the width (a possession or two can) is not enough.
# Interval widths rather than sds: the hierarchical model's prior for beta has infinite variance.
INFORMED_MAX_WIDTH_RATIO = 0.1
FAMILIES = ("beta_0", "beta_off", "beta_def")
PACKAGES = ("lineup-numpyro", "numpyro", "jax", "jaxlib", "arviz", "numpy", "pandas", "optax", "typer")


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for pkg in PACKAGES:
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = "not installed"
    return versions


def to_inference_data(
    samples: dict[str, np.ndarray],
    sample_stats: dict[str, np.ndarray],
    model: str,
    stats: SuffStats,
    attrs: dict | None = None,
    priors: Priors | None = None,
) -> xr.DataTree:
    """Posterior with Stan names and matchup/archetype coordinates as names.COORDS numbers them,
    plus per-draw stats (prior width ratios against `priors`, default config.Priors()): groups
    posterior, sample_stats and constant_data, laid out as ArviZ lays out InferenceData."""
    dims = names.POSTERIOR_DIMS[model]
    constant = {"n_possessions": (["matchup"], stats.n.astype(np.int64))}
    for family, (n_on_floor, ratio) in coverage(samples, model, stats, priors).items():
        constant[f"n_on_floor_{family}"] = (list(dims[family]), n_on_floor)
        constant[f"prior_width_ratio_{family}"] = (list(dims[family]), ratio)
        constant[f"informed_{family}"] = (list(dims[family]), informed(n_on_floor, ratio, model))
    attrs = {
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()),
        "model": model,
        "inference_library": "numpyro",
        "inference_library_version": package_versions()["numpyro"],
        **(attrs or {}),
    }
    draws = {var: (["chain", "draw", *d], samples[var]) for var, d in dims.items()}
    per_draw = {var: (["chain", "draw"], value) for var, value in sample_stats.items()}
    return xr.DataTree.from_dict(
        {
            "/": xr.Dataset(attrs=attrs),
            "posterior": _group(draws, attrs, label_matchups=True),
            "sample_stats": _group(per_draw, attrs),
            "constant_data": _group(constant, attrs, label_matchups=True),
        }
    )


def _group(variables: dict[str, tuple[list[str], np.ndarray]], attrs: dict, label_matchups: bool = False) -> xr.Dataset:
    """One group of posterior.nc: the variables with their dims, chain and draw numbered from 0,
    matchups and archetypes as names.COORDS numbers them (with each matchup's label), and each
    array stored as one HDF5 chunk (h5py's automatic chunks for (chain, draw, ...) arrays are a
    few hundred values each, and writing thousands of them took 2-3 s per run)."""
    data = {}
    for var, (dims, value) in variables.items():
        value = np.asarray(value)
        data[var] = xr.Variable(dims, value, encoding={"chunksizes": value.shape} if value.ndim and value.size else {})
    ds = xr.Dataset(data, attrs=attrs)
    coords = {dim: np.arange(ds.sizes[dim]) for dim in ("chain", "draw") if dim in ds.dims}
    coords |= {dim: np.asarray(values) for dim, values in names.COORDS.items() if dim in ds.dims}
    if label_matchups and "matchup" in ds.dims:
        coords["matchup_label"] = ("matchup", np.asarray(names.MATCHUP_LABELS))
    return ds.assign_coords(coords)


def coverage(
    samples: dict[str, np.ndarray], model: str, stats: SuffStats, priors: Priors | None = None
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per coefficient family: (possessions with the coefficient's column non-zero, 90% interval
    width / the prior's), each shaped like the family's parameter (pooled counts for the pooled model)."""
    nonzero = np.asarray(stats.nonzero, dtype=np.int64)
    ratios = prior_width_ratios(samples, model, priors)
    out = {}
    for family in FAMILIES:
        counts = nonzero[:, names.FAMILY_COLUMNS[family]]
        counts = counts[:, 0] if family == "beta_0" else counts
        out[family] = (counts.sum(axis=0) if model == "simplified" else counts, ratios[family])
    return out


def prior_width_ratios(
    samples: dict[str, np.ndarray], model: str, priors: Priors | None = None
) -> dict[str, np.ndarray]:
    """Width of each coefficient's central 90% posterior interval / its prior's under `priors`
    (models.prior_width; default config.Priors()), per family; NaN for a single draw (a MAP point)."""
    out = {}
    for family in FAMILIES:
        draws = np.asarray(samples[family], dtype=np.float64)
        flat = draws.reshape(-1, *draws.shape[2:])
        if flat.shape[0] > 1:
            lo, hi = np.quantile(flat, [0.05, 0.95], axis=0)
            width = hi - lo
        else:
            width = np.full(flat.shape[1:], np.nan)
        out[family] = width / prior_width(model, family, priors or Priors())
    return out


def informed(n_on_floor: np.ndarray, prior_width_ratio: np.ndarray, model: str) -> np.ndarray:
    """Coefficients the data stand behind: the 90% posterior interval at most INFORMED_MAX_WIDTH_RATIO of
    the prior's, and the cell seen in the data (or, hierarchical model, pooled from the matchups
    that were). A point estimate (no sd) counts as informed where it was seen."""
    ratio = np.asarray(prior_width_ratio, dtype=np.float64)
    moved = np.isnan(ratio) | (ratio <= INFORMED_MAX_WIDTH_RATIO)  # NaN: a point estimate (map)
    seen = np.asarray(n_on_floor) > 0
    if model == "hierarchical":  # an unseen cell counts when pooling narrowed it
        return moved & (seen | ~np.isnan(ratio))
    return seen & moved


def source_of(n_on_floor: int, is_informed: bool, model: str) -> str:
    """'data' (seen and informed), 'weak' (seen, posterior close to the prior), 'population'
    (hierarchical, unseen, pooled from other matchups) or 'prior' (nothing behind it)."""
    if n_on_floor > 0:
        return "data" if is_informed else "weak"
    return "population" if is_informed and model == "hierarchical" else "prior"


def coefficient_table(idata: xr.DataTree, model: str) -> pd.DataFrame:
    """One row per scalar parameter, in Stan's order and names, with its matchup's data count."""
    table = parameter_summary(idata["posterior"], model)
    const = idata["constant_data"]
    n_matchup = const["n_possessions"].values
    matchup = table.pop("matchup")
    table["n_possessions"] = pd.array(
        [None if m is None or pd.isna(m) else int(n_matchup[int(m)]) for m in matchup], dtype="Int64"
    )
    table["no_data"] = (table["n_possessions"] == 0).fillna(False).astype(bool)
    n_on_floor, ratio, is_informed, source = {}, {}, {}, {}
    for family in FAMILIES:
        if f"n_on_floor_{family}" not in const:
            continue
        n = const[f"n_on_floor_{family}"].values
        r = const[f"prior_width_ratio_{family}"].values
        inf = const[f"informed_{family}"].values.astype(bool)
        for index in np.ndindex(*np.shape(n)):
            name = names.stan_name(family, index)
            n_on_floor[name], ratio[name], is_informed[name] = int(n[index]), float(r[index]), bool(inf[index])
            source[name] = source_of(int(n[index]), bool(inf[index]), model)
    params = table["parameter"]
    table["n_on_floor"] = pd.array([n_on_floor.get(p) for p in params], dtype="Int64")
    table["prior_width_ratio"] = [ratio.get(p, np.nan) for p in params]
    table["informed"] = pd.array([is_informed.get(p) for p in params], dtype="boolean")
    table["source"] = [source.get(p, "") for p in params]
    # the numbering people read (names.py): matchup id and label, archetype 0-7
    table["matchup_id"] = pd.array([None if m is None or pd.isna(m) else int(m) for m in matchup], dtype="Int64")
    table["matchup_label"] = [names.MATCHUP_LABELS[int(m)] if pd.notna(m) else "" for m in table["matchup_id"]]
    table["archetype"] = pd.array([_archetype_of(p) for p in table["parameter"]], dtype="Int64")
    return table


def _archetype_of(parameter: str) -> int | None:
    """0-7 for a parameter indexed by archetype (its last index), None otherwise."""
    var, index = names.parse_stan_name(parameter)
    for dims in names.POSTERIOR_DIMS.values():
        if var in dims and dims[var] and dims[var][-1] == "archetype":
            return index[-1]
    return None


def rhat_text(max_rhat: float | None, digits: int = 3) -> str:
    """An R-hat for people: 'n/a (one chain)' where there was none to compute."""
    return "n/a (one chain)" if max_rhat is None else f"{max_rhat:.{digits}f}"


def _matchup_of(parameter: str) -> int | None:
    """0-based matchup of a matchup-indexed Stan name, None for global parameters."""
    if "[" not in parameter:
        return None
    var = parameter.split("[")[0]
    first = int(parameter.split("[")[1].rstrip("]").split(",")[0])
    for dims in names.POSTERIOR_DIMS.values():
        if var in dims and dims[var] and dims[var][0] == "matchup":
            return first - 1
    return None


def diagnostics(table: pd.DataFrame, result: SamplingResult, model: str) -> dict:
    """Convergence summary: worst R-hat and ESS, divergences, tree depth, timings, per matchup."""
    stats = result.stats
    n_draws = stats["diverging"].size
    n_div = int(stats["diverging"].sum())
    at_max = float(np.mean(stats["tree_depth"] >= result.config.max_tree_depth))
    known = table["r_hat"].dropna()  # none with one chain: convergence cannot be checked then
    worst_rhat = table.loc[known.idxmax()] if len(known) else None
    max_rhat = None if worst_rhat is None else float(worst_rhat["r_hat"])
    worst_ess = table.loc[table["ess_bulk"].idxmin()]
    chains, draws = result.config.chains, result.config.draws
    problems = convergence_problems(
        max_rhat, float(worst_ess["ess_bulk"]), n_div, chains, draws, result.config.target_accept
    )
    report = {
        "model": model,
        "method": "nuts",
        "chains": result.config.chains,
        "warmup": result.config.warmup,
        "draws": result.config.draws,
        "chain_method": result.chain_method,
        "device": device_summary(),
        "max_rhat": max_rhat,  # None: not available (one chain)
        "max_rhat_parameter": None if worst_rhat is None else worst_rhat["parameter"],
        "min_ess_bulk": float(worst_ess["ess_bulk"]),
        "min_ess_bulk_parameter": worst_ess["parameter"],
        "min_ess_tail": float(table["ess_tail"].min()),
        "divergences": {"count": n_div, "percent": 100.0 * n_div / n_draws},
        "max_tree_depth": {"limit": result.config.max_tree_depth, "share_at_limit": at_max},
        "mean_step_size": float(np.mean(stats["step_size"][:, -1])),
        "timing": {
            "compile_s": result.timing.compile_s,
            "warmup_s": result.timing.warmup_s,
            "sampling_s": result.timing.sampling_s,
            "total_s": result.timing.total_s,
        },
        "thresholds": {"r_hat_max": RHAT_MAX, "ess_bulk_min": ess_min(chains), "ess_bulk_per_chain": ess_min(1)},
        "converged": not problems,
        "problems": problems,  # what kept it from converging, each with its advice
        "matchups": _matchup_verdicts(table, ess_min(chains)) if model != "simplified" else [],
    }
    return report


def _matchup_verdicts(table: pd.DataFrame, ess_bulk_min: float) -> list[dict]:
    matchup = table["parameter"].map(_matchup_of)
    verdicts = []
    for m in range(names.N_MATCHUPS):
        rows = table[matchup == m]
        n = int(rows["n_possessions"].iloc[0])
        max_rhat, min_ess = rows["r_hat"].max(), float(rows["ess_bulk"].min())
        max_rhat = None if pd.isna(max_rhat) else float(max_rhat)
        if n == 0:
            verdict = "no data"
        elif max_rhat is None:
            verdict = "not checked"
        elif max_rhat <= RHAT_MAX and min_ess >= ess_bulk_min:
            verdict = "converged"
        else:
            verdict = "not converged"
        verdicts.append(
            {
                "matchup_id": m,
                "label": names.MATCHUP_LABELS[m],
                "n_possessions": n,
                "max_rhat": max_rhat,
                "min_ess_bulk": min_ess,
                "verdict": verdict,
            }
        )
    return verdicts


def write_outputs(
    run_dir: Path,
    result: SamplingResult,
    config: RunConfig,
    stats: SuffStats,
    source: str,
    data_s: float | None = None,
) -> dict:
    """Write posterior, coefficients, diagnostics and run record; returns the diagnostics.

    `data_s` is the time spent reading and validating the data, recorded with the sampler's.
    """
    idata = to_inference_data(
        result.samples,
        result.stats,
        config.model,
        stats,
        attrs={"likelihood": config.likelihood, "method": "nuts"},
        priors=config.priors,
    )
    table = coefficient_table(idata, config.model)
    report = diagnostics(table, result, config.model)
    return _write(run_dir, idata, table, report, config, stats, source, data_s)


def write_approx_outputs(
    run_dir: Path, approx: Approximation, config: RunConfig, stats: SuffStats, source: str, data_s: float | None = None
) -> dict:
    """The same files for an approximation (map, laplace, advi): its draws as one chain, and
    diagnostics.json with the method's own convergence evidence in place of the sampler's."""
    with warnings.catch_warnings():  # map's one draw: no sd, R-hat or ESS (said below)
        warnings.simplefilter("ignore", RuntimeWarning)
        idata = to_inference_data(
            approx.samples,
            {"lp": approx.log_density[None], "log_weight": approx.log_weight[None]},
            config.model,
            stats,
            attrs={"likelihood": config.likelihood, "method": approx.method},
            priors=config.priors,
        )
        table = coefficient_table(idata, config.model)
    report = {
        "model": config.model,
        "method": approx.method,
        "draws": int(approx.log_density.size),
        "evidence": approx.evidence,
        "converged": approx.converged,
        "note": (
            "a point estimate: no posterior sd, R-hat or ESS"
            if approx.method == "map"
            else "independent draws from an approximation; pareto_k > 0.7 says it differs from the posterior"
        ),
        "timing": {"fit_s": approx.fit_s, "total_s": approx.fit_s},
        "matchups": [],
    }
    return _write(run_dir, idata, table, report, config, stats, source, data_s)


def _write(
    run_dir: Path,
    idata: xr.DataTree,
    table: pd.DataFrame,
    report: dict,
    config: RunConfig,
    stats: SuffStats,
    source: str,
    data_s: float | None,
) -> dict:
    report["likelihood"] = config.likelihood
    if data_s is not None:
        report["timing"]["data_s"] = data_s
    write, why = pointwise_decision(
        config.log_likelihood, stats.total, idata["posterior"].sizes["chain"] * idata["posterior"].sizes["draw"]
    )
    report["log_likelihood"] = why
    with atomic_path(run_dir / RunDir.POSTERIOR) as tmp:
        # uncompressed: zlib saved 6% of a matchup run's file and tripled the time to write it
        idata.to_netcdf(tmp, engine="h5netcdf")
        if write:
            write_pointwise(
                tmp, idata, config.data, seed=config.sampler.seed if config.method == "nuts" else config.approx.seed
            )
    with atomic_path(run_dir / RunDir.COEFFICIENTS) as tmp:
        table.to_csv(tmp, index=False, float_format="%.6g")
    write_json(run_dir / RunDir.DIAGNOSTICS, report)
    return report


def write_record(run_dir: Path, config: RunConfig, stats: SuffStats, source: str, digest: dict | None = None) -> None:
    """run_config.json: the configuration, the data it read (with the digest `resume` checks),
    versions and command line."""
    write_json(
        run_dir / RunDir.RUN_CONFIG,
        {
            "config": config.to_dict(),
            "data": {
                "source": source,
                "n_possessions": stats.total,
                "matchups_with_data": int((stats.n > 0).sum()),
                "digest": digest or {"suffstats": stats.digest()},
            },
            "versions": package_versions(),
            "command": sys.argv,
        },
    )


def largest_effects(table: pd.DataFrame, k: int = 10) -> pd.DataFrame:
    """The k archetype coefficients with the largest posterior means, among those the data
    inform in their own matchup (source 'data': never a prior, nor a population draw)."""
    keep = ~table["no_data"].astype(bool)
    if "source" in table:
        keep &= table["source"] == "data"
    effects = table[table["parameter"].str.match(r"beta_(off|def)\[") & keep]
    return effects.sort_values("mean", ascending=False).head(k)
