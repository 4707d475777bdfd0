"""A run's report: RUN_DIR/report/report.html and its figures as PNG files beside it.

Sections: convergence diagnostics and per-matchup verdicts; rank plots (ArviZ) of the
parameters with the worst R-hat; forest plots of the archetype effects per matchup; a
posterior predictive check (the outcomes' distribution on a sample of possessions, and
each matchup's mean outcome, from the sufficient statistics so any size of data works);
the run's validations (one per data set scored) and a comparison, when there are. The report is written to a
temporary directory and swapped in whole, so a failed report never looks complete.
"""

from __future__ import annotations

import html
import json
import os
import shutil
import warnings
from collections.abc import Iterator
from pathlib import Path

import arviz as az
import numpy as np
import pandas as pd

from lineup_numpyro import names
from lineup_numpyro.analysis.validation import (
    Posterior,
    data_config_of,
    posterior_of,
    predicted_means,
    run_data,
)
from lineup_numpyro.data.possessions import DataWarning, Possessions
from lineup_numpyro.data.suffstats import SuffStats
from lineup_numpyro.errors import RunDirError
from lineup_numpyro.models.model import predict
from lineup_numpyro.names import Labels
from lineup_numpyro.run.outputs import rhat_text
from lineup_numpyro.run.rundir import RunDir

REPORT = "report.html"  # in RunDir.REPORT
WORST = 4  # parameters shown in the rank plots
PPC_ROWS = 20_000  # possessions sampled for the distribution check
PPC_DRAWS = 100  # posterior draws replicated for it
DPI = 110
NUMBERING = (
    "Numbering: archetypes 0-7 and superclusters 0-5 as in the input files; a matchup is "
    "'<offence>_vs_<defence>' supercluster. Parameter names are Stan's, 1-based: beta_off[m,a] is "
    "matchup id m-1 (= offence x 6 + defence) and archetype a-1."
)
# what a parameter's value is measured in, for axis labels
UNITS = {
    "beta_0": " (points per possession)",
    "beta_off": " (points per possession per DARKO point)",
    "beta_def": " (points per possession per DARKO point)",
    "sigma": " (points per possession)",
    "mu_0": " (points per possession)",
    "tau_0": " (points per possession)",
}


def _matplotlib():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> str:
    fig.savefig(path, dpi=DPI, format="png", bbox_inches="tight")
    _matplotlib().close(fig)
    return path.name


def _element(posterior, parameter: str):
    """The (chain, draw) DataArray of one Stan-named scalar, e.g. beta_off[3,2]."""
    var = parameter.split("[")[0]
    if "[" not in parameter:
        return posterior[var]
    index = [int(i) - 1 for i in parameter[len(var) + 1 : -1].split(",")]  # Stan's indices are 1-based
    return posterior[var].isel(dict(zip(posterior[var].dims[2:], index)))


def rank_plot(idata: az.InferenceData, table: pd.DataFrame, path: Path) -> str:
    """ArviZ rank plots (with the traces) of the WORST parameters by R-hat."""
    worst = table.sort_values("r_hat", ascending=False)["parameter"].head(WORST).tolist()
    ds = az.convert_to_dataset({p: _element(idata.posterior, p).values for p in worst})
    axes = az.plot_trace(
        ds, kind="rank_bars", compact=False, figsize=(11, 3.0 * len(worst)), backend_kwargs={"layout": "constrained"}
    )
    r_hat = table.set_index("parameter")["r_hat"]
    for row, parameter in zip(np.atleast_2d(axes), worst):
        density, ranks = row
        for ax in row:
            ax.set_title(f"{parameter} (R-hat {r_hat[parameter]:.3f})", fontsize=10)
        density.set_xlabel(f"{parameter}{UNITS.get(parameter.split('[')[0], '')}", fontsize=9)
        density.set_ylabel("density", fontsize=9)
        ranks.xaxis.label.set_size(9)
        ranks.yaxis.label.set_size(9)
    fig = np.ravel(axes)[0].figure
    fig.suptitle(
        "parameters with the highest R-hat: posterior density of each chain (left),\n"
        "ranks of each chain's draws among all draws (right; uniform bars when the chains agree)"
    )
    return _save(fig, path)


def _intervals(draws: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """mean, 5%, 25%, 75%, 95% over the (chain, draw) axes."""
    flat = draws.reshape(-1, *draws.shape[2:])
    q05, q25, q75, q95 = np.quantile(flat, [0.05, 0.25, 0.75, 0.95], axis=0)
    return flat.mean(axis=0), q05, q25, q75, q95


def _interval_panel(ax, values: np.ndarray, labels: list[str], colour: str = "C0") -> None:  # noqa: ANN001
    """One row per value: 90% (thin) and 50% (thick) central intervals and the mean (dot)."""
    mean, q05, q25, q75, q95 = _intervals(values)
    y = np.arange(len(labels))[::-1]
    ax.hlines(y, q05, q95, color=colour, lw=1.2, label="90% interval")
    ax.hlines(y, q25, q75, color=colour, lw=4.0, label="50% interval")
    ax.plot(mean, y, "o", color="black", ms=4, label="posterior mean")
    ax.set_yticks(y, labels, fontsize=8)
    ax.axvline(0.0, color="0.6", lw=0.6)
    ax.tick_params(axis="x", labelsize=8)


def archetype_effects_plot(idata: az.InferenceData, path: Path, labels: Labels = Labels()) -> str:
    """The archetype effects every model has: the pooled model's beta_off[a], beta_def[a]; the
    hierarchical model's league-wide effects exp(mu_off[a]), exp(mu_def[a]) and their spreads
    across matchups tau_off[a], tau_def[a]. The matchup model's are per matchup (forest_plot)."""
    plt = _matplotlib()
    post = idata.posterior
    rows = [f"archetype {labels.archetype(a)}" for a in range(names.N_ARCHETYPES)]
    model = str(idata.attrs.get("model", ""))
    if model == "hierarchical":
        panels = [
            (np.exp(post["mu_off"].values), "exp(mu_off[a]): league-wide offensive effect", UNITS["beta_off"]),
            (np.exp(post["mu_def"].values), "exp(mu_def[a]): league-wide defensive effect", UNITS["beta_def"]),
            (post["tau_off"].values, "tau_off[a]: spread across matchups", " (log scale sd)"),
            (post["tau_def"].values, "tau_def[a]: spread across matchups", " (log scale sd)"),
        ]
        fig, axes = plt.subplots(2, 2, figsize=(12, 7.5), sharey=True)
    else:
        panels = [
            (post["beta_off"].values, "beta_off[a]: offensive effect", UNITS["beta_off"]),
            (post["beta_def"].values, "beta_def[a]: defensive effect", UNITS["beta_def"]),
        ]
        fig, axes = plt.subplots(1, 2, figsize=(12, 4.2), sharey=True)
    for ax, (values, title, unit) in zip(np.ravel(axes), panels):
        _interval_panel(ax, values, rows)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel(unit.strip(" ()"), fontsize=9)
    handles, texts = np.ravel(axes)[0].get_legend_handles_labels()
    fig.legend(handles, texts, loc="lower center", ncol=3, fontsize=9, frameon=False)
    what = "league-wide archetype effects and their spread" if model == "hierarchical" else "archetype effects"
    fig.suptitle(f"{model} model: {what} (Stan index a = archetype + 1)", fontsize=11)
    fig.tight_layout(rect=(0, 0.06, 1, 0.97))
    return _save(fig, path)


def forest_plot(idata: az.InferenceData, side: str, path: Path, labels: Labels = Labels()) -> str:
    """90% intervals of beta_<side>[m, a]: one panel per archetype, one row per matchup.

    Coefficients the data do not inform (outputs.informed) are drawn in light grey, and each
    panel's scale is set by the informed ones, so that the prior's wide intervals of unseen
    cells do not flatten the real effects into dots at 0 (their intervals run off the edge).
    """
    plt = _matplotlib()
    var = f"beta_{side}"
    draws = idata.posterior[var].values  # (chain, draw, matchup, archetype)
    flat = draws.reshape(-1, *draws.shape[2:])
    mean = flat.mean(axis=0)
    lo, hi = np.quantile(flat, [0.05, 0.95], axis=0)
    const = idata.constant_data
    informed = (
        const[f"informed_{var}"].values.astype(bool) if f"informed_{var}" in const else np.ones(mean.shape, dtype=bool)
    )
    m_count, a_count = mean.shape
    fig, axes = plt.subplots(2, 4, figsize=(14, 12), sharey=True)
    y = np.arange(m_count)[::-1]
    for a, ax in enumerate(np.ravel(axes)):
        ok = informed[:, a]
        if ok.any():
            left, right = lo[ok, a].min(), hi[ok, a].max()
            pad = 0.05 * max(right - left, 1e-3)
            ax.set_xlim(min(left, 0.0) - pad, right + pad)
        else:
            ax.set_xlim(0.0, 0.2)
        for mask, colour, label in ((~ok, "0.8", "not informed (prior)"), (ok, "C0", "informed by data")):
            if mask.any():
                ax.hlines(y[mask], lo[mask, a], hi[mask, a], color=colour, lw=1.6, label=label)
                ax.plot(np.clip(mean[mask, a], *ax.get_xlim()), y[mask], "o", color=colour, ms=3.5)
        ax.axvline(0.0, color="0.6", lw=0.6)
        ax.set_title(
            f"archetype {labels.archetype(a)}: {var}[·,{a + 1}]\n{int(ok.sum())} of {m_count} informed", fontsize=9
        )
        ax.set_xlabel(UNITS[var].strip(" ()"), fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in axes[:, 0]:
        ax.set_yticks(y, list(names.MATCHUP_LABELS), fontsize=7)
        ax.set_ylabel("matchup (offence_vs_defence supercluster)", fontsize=8)
    key = [  # both entries always, whichever panels have which
        plt.Line2D([], [], color="C0", lw=1.6, marker="o", ms=3.5, label="informed by data: mean and 90% interval"),
        plt.Line2D([], [], color="0.8", lw=1.6, marker="o", ms=3.5, label="not informed (mostly prior)"),
    ]
    fig.legend(handles=key, loc="lower center", ncol=2, fontsize=9, frameon=False)
    fig.suptitle(f"{var}: posterior mean and 90% interval per matchup; scale set by the informed coefficients", y=0.995)
    fig.tight_layout(rect=(0, 0.03, 1, 0.98))
    return _save(fig, path)


def _sample_rows(chunks: Iterator[Possessions], total: int, seed: int = 0) -> tuple[SuffStats, Possessions]:
    """Statistics of every possession, and a uniform sample of about PPC_ROWS of them."""
    rng = np.random.default_rng(seed)
    share = min(1.0, PPC_ROWS / max(total, 1))
    stats, kept = SuffStats.zeros(), []
    for chunk in chunks:
        stats = stats + SuffStats.from_possessions(chunk)
        kept.append(chunk.subset(rng.random(len(chunk)) < share) if share < 1 else chunk)
    return stats, Possessions.concat(kept)


def ppc_plots(
    post: Posterior, stats: SuffStats, rows: Possessions, dist_path: Path, means_path: Path, seed: int = 0
) -> tuple[str, str]:
    """The outcomes' cumulative distribution against PPC_DRAWS replicated ones (ArviZ), and
    each matchup's observed mean outcome against its posterior predictive 90% interval."""

    plt = _matplotlib()
    rng = np.random.default_rng(seed)
    draws = rng.choice(post.n_draws, size=min(PPC_DRAWS, post.n_draws), replace=False)
    few = Posterior(post.model, post.coef[draws], post.sigma[draws], post.reff)
    mu = predicted_means(few, rows)
    y_rep = mu + few.sigma[:, None] * rng.standard_normal(mu.shape)
    idata = az.from_dict(posterior_predictive={"y": y_rep[None]}, observed_data={"y": rows.y})
    ax = az.plot_ppc(idata, kind="cumulative", num_pp_samples=len(draws), figsize=(8, 4.5), random_seed=seed)
    ax = np.ravel(ax)[0]
    ax.set_title(f"outcome: observed (black) and {len(draws)} replicated data sets, {len(rows):,} possessions")
    ax.set_xlabel("points on the possession", fontsize=10)
    ax.set_ylabel("share of possessions with at most x points", fontsize=10)
    dist = _save(ax.figure, dist_path)

    # a matchup's mean outcome is the prediction at its mean design row, X'X[m, 0, :] / n_m (x_0 = 1)
    present = np.flatnonzero(stats.n > 0)
    n = stats.n[present]
    mean_mu = predict(post.coef, present, stats.xtx[present, 0, :] / n[:, None])
    rep = mean_mu + post.sigma[:, None] / np.sqrt(n) * rng.standard_normal(mean_mu.shape)
    lo, hi = np.quantile(rep, [0.05, 0.95], axis=0)
    observed = stats.sum_y[present] / n
    inside = (observed >= lo) & (observed <= hi)
    fig, ax = plt.subplots(figsize=(12, 4.5))
    x = np.arange(len(present))
    ax.vlines(x, lo, hi, color="tab:blue", lw=3, alpha=0.5, label="posterior predictive 90%")
    ax.scatter(x[inside], observed[inside], color="black", zorder=3, s=18, label="observed")
    ax.scatter(x[~inside], observed[~inside], color="tab:red", zorder=3, s=24, label="observed, outside 90%")
    ax.set_xticks(x, [names.MATCHUP_LABELS[m] for m in present], rotation=90, fontsize=8)
    ax.set_ylabel("mean points per possession")
    ax.set_xlabel("matchup (offence_vs_defence supercluster)")
    ax.set_title(f"mean outcome per matchup: {inside.sum()} of {len(present)} inside their 90% predictive interval")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return dist, _save(fig, means_path)


def _table_html(frame: pd.DataFrame) -> str:
    return frame.to_html(index=False, float_format=lambda v: f"{v:.4g}", border=0, classes="t", na_rep="")


def _swap_in(tmp: Path, target: Path) -> None:
    """Replace directory `target` by `tmp` (the old one is removed only after the rename)."""
    old = target.with_name(f".{target.name}.old.{os.getpid()}")
    if target.exists():
        os.replace(target, old)
    os.replace(tmp, target)
    shutil.rmtree(old, ignore_errors=True)


def write_report(run_dir: str | Path, comparison: str | Path | None = None, labels: Labels = Labels()) -> Path:
    """Write RUN_DIR/report/ (report.html and PNGs), with `labels`' names on archetypes and
    superclusters; returns the path of report.html."""
    run = RunDir(run_dir)
    run_dir = run.path
    done = run.require_complete("report", nuts=True)
    record, table, diag = done.record, done.table, done.diagnostics
    comparison_data = _load_comparison(comparison) if comparison is not None else None
    idata = az.from_netcdf(str(run / RunDir.POSTERIOR))
    post = posterior_of(idata)
    data = data_config_of(record)
    tmp = run_dir / f".{RunDir.REPORT}.tmp.{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        with warnings.catch_warnings():
            # ArviZ 0.x calls matplotlib APIs that matplotlib 3.11 deprecates: theirs to fix, not the user's
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", DataWarning)  # said when the run was trained on these data
            figures = {"rank": rank_plot(idata, table, tmp / "rank.png")}
            if post.model != "matchup":
                figures["effects"] = archetype_effects_plot(idata, tmp / "effects.png", labels)
            if post.model != "simplified":
                for side in ("off", "def"):
                    figures[f"forest_{side}"] = forest_plot(idata, side, tmp / f"forest_{side}.png", labels)
            stats, rows = _sample_rows(run_data(data, "train"), int(record.get("data", {}).get("n_possessions", 0)))
            figures["ppc"], figures["matchup_means"] = ppc_plots(
                post, stats, rows, tmp / "ppc.png", tmp / "matchup_means.png"
            )
            (tmp / REPORT).write_text(
                _html(run_dir, record, diag, figures, data.describe(), run.validations(), comparison_data, labels)
            )
            _swap_in(tmp, run / RunDir.REPORT)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return run / RunDir.REPORT / REPORT


def _load_comparison(path: str | Path) -> dict:
    path = Path(path)
    if path.is_dir():
        path = path / "comparison.json"
    if not path.exists():
        raise RunDirError(f"{path}: no such comparison; write one with `lineup-numpyro compare ... --out DIR`")
    return json.loads(path.read_text())


CSS = """body{font-family:system-ui,sans-serif;max-width:1150px;margin:2em auto;color:#222}
table.t{border-collapse:collapse;font-size:13px;margin:0.5em 0 1.5em}
table.t td,table.t th{padding:3px 8px;border-bottom:1px solid #ddd;text-align:right}
.bad{color:#b00;font-weight:bold}.good{color:#070;font-weight:bold}img{max-width:100%}"""


def _html(
    run_dir: Path,
    record: dict,
    diag: dict,
    figures: dict,
    data: str,
    validations: list[dict],
    comparison: dict | None,
    labels: Labels = Labels(),
) -> str:
    e = html.escape
    ok = diag["converged"]
    cfg = record.get("config", {}).get("sampler", {})
    summary = pd.DataFrame(
        [
            {
                "max R-hat": rhat_text(diag["max_rhat"]),
                "worst parameter": diag["max_rhat_parameter"] or "",
                "min ESS_bulk": diag["min_ess_bulk"],
                "min ESS_tail": diag["min_ess_tail"],
                "divergences": diag["divergences"]["count"],
                "share at max tree depth": diag["max_tree_depth"]["share_at_limit"],
                "sampling s": diag["timing"]["sampling_s"],
            }
        ]
    )
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{e(diag['model'])} run report</title>"
        f"<style>{CSS}</style></head><body>",
        f"<h1>{e(diag['model'])} model: {e(str(run_dir))}</h1>",
        f"<p>Data: {e(data)}, {record.get('data', {}).get('n_possessions', 0):,} possessions. "
        f"NUTS: {cfg.get('chains')} chains × ({cfg.get('warmup')} warm-up + {cfg.get('draws')} draws), "
        f"target acceptance {cfg.get('target_accept')}.</p>",
        f"<p>{e(NUMBERING)}</p>",
        *(
            [
                "<p>Archetypes: "
                + e(", ".join(labels.archetype(a) for a in range(names.N_ARCHETYPES)))
                + ". Superclusters: "
                + e(", ".join(labels.supercluster(c) for c in range(names.N_SUPERCLUSTERS)))
                + ".</p>"
            ]
            if labels.named
            else []
        ),
        "<h2>Convergence</h2>",
        f"<p class='{'good' if ok else 'bad'}'>"
        f"{'Converged' if ok else 'Not converged'}: thresholds R-hat ≤ {diag['thresholds']['r_hat_max']}, "
        f"ESS_bulk ≥ {diag['thresholds']['ess_bulk_min']} (100 per chain), no divergences"
        f"{'' if diag['max_rhat'] is not None else ' (R-hat needs at least 2 chains: not checked)'}.</p>",
    ]
    if diag.get("problems"):
        parts.append("<ul>" + "".join(f"<li>{e(p)}</li>" for p in diag["problems"]) + "</ul>")
    parts += [_table_html(summary)]
    if diag.get("matchups"):
        verdicts = pd.DataFrame(diag["matchups"])
        counts = verdicts["verdict"].value_counts().to_dict()
        parts += [
            f"<h3>Per matchup</h3><p>{e(', '.join(f'{n} {v}' for v, n in counts.items()))}</p>",
            _table_html(verdicts[verdicts["verdict"] != "converged"]) if counts.get("converged", 0) < 36 else "",
        ]
    parts += ["<h2>Worst parameters</h2>", f"<img src='{figures['rank']}' alt='rank plots'>"]
    if "effects" in figures:
        parts += ["<h2>Archetype effects</h2>", f"<img src='{figures['effects']}' alt='archetype effects'>"]
    if "forest_off" in figures:
        parts += [
            "<h2>Archetype effects per matchup</h2>",
            f"<img src='{figures['forest_off']}' alt='beta_off forest'>",
            f"<img src='{figures['forest_def']}' alt='beta_def forest'>",
        ]
    parts += [
        "<h2>Posterior predictive check</h2>",
        "<p>The model is Gaussian while the points of a possession are 0, 1, 2 or 3: the replicated "
        "outcomes are continuous, so compare the curves' levels at each whole number.</p>",
        f"<img src='{figures['ppc']}' alt='predictive check'>",
        f"<img src='{figures['matchup_means']}' alt='matchup means'>",
    ]
    if validations:
        parts.append("<h2>Validation</h2>")
    for validation in validations:  # one per data set scored (validate), each named by what it scored
        h = validation["holdout"]
        in_sample = validation.get("in_sample", False)
        label = "In-sample data (the run's own training possessions, not a holdout)" if in_sample else "Held-out data"
        parts += [
            f"<p{' class=bad' if in_sample else ''}>{label}: {e(h['source'])}</p>",
            _table_html(
                pd.DataFrame(
                    [{k: h[k] for k in ("n", "mse", "rmse", "mlpd", "coverage_50", "coverage_90", "outcome_var")}]
                )
            ),
        ]
        if "loo" in validation:
            parts.append(_table_html(pd.DataFrame([validation["loo"]])))
    if comparison:
        runs = pd.DataFrame(comparison["runs"])
        parts += ["<h2>Model comparison</h2>", f"<p><b>{e(comparison['verdict'])}</b></p>", _table_html(runs)]
    parts.append("</body></html>")
    return "\n".join(parts)
