"""Lineup valuation and player acquisition from a fitted posterior (paper eq. 2.7-2.8).

For each posterior draw s, the expected points of a possession with lineup l1 on offense and
l2 on defense is E_s[y(l1, l2)] = x(l1, l2) . b_s[m], with x = [1, z_off(l1), -z_def(l2)]
and m = 6 * supercluster(l1) + supercluster(l2). A lineup's value against another is
v(l1, l2) = E[y(l1, l2)] - E[y(l2, l1)] (net points per possession, so v(l1, l2) =
-v(l2, l1)), and against a set of opponents the mean of v over them. Every quantity is
computed for every draw, so its posterior mean and 90% interval come from the same draws.
"""

from __future__ import annotations

import re
import textwrap
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import arviz as az
import numpy as np
import pandas as pd

from lineup_numpyro import names
from lineup_numpyro.analysis.validation import Posterior, posterior_of
from lineup_numpyro.data.possessions import DataError, design_matrix
from lineup_numpyro.errors import RunDirError
from lineup_numpyro.files import atomic_path
from lineup_numpyro.lineups.players import Assignments, Lineup, Players, make_lineup
from lineup_numpyro.models.model import predict
from lineup_numpyro.run.outputs import FAMILIES, informed, prior_width_ratios
from lineup_numpyro.run.rundir import RunDir

INTERVAL = (0.05, 0.95)  # a central 90% interval
# What the outcome scale makes plausible: a possession scores 0 to 3 points (the samples'
# outcomes; an and-one's fourth point is rare), so an expected score outside [0, 3] and a net
# value v outside [-3, 3] cannot be real. A linear model's mean can stray a little below 0 for
# weak lineups, so values are flagged beyond a slack of half a point, with the reason.
PLAUSIBLE_POINTS = (0.0, 3.0)
SLACK = 0.5


@dataclass(frozen=True)
class Fit:
    """What valuation needs of a run: its coefficient draws and which matchups had data."""

    posterior: Posterior
    n_possessions: np.ndarray  # (36,) training possessions per matchup
    run_dir: str
    informed: np.ndarray | None = None  # (36, 17) the run's own verdict (outputs.informed); None: judge here

    @cached_property
    def by_matchup(self) -> np.ndarray:
        """The coefficient draws laid out matchup-first, (36, 17, S), for fast products."""
        return np.ascontiguousarray(self.posterior.coef.transpose(1, 2, 0))

    @cached_property
    def weak(self) -> np.ndarray:
        """(36, 17) bool: coefficients the data do not inform (outputs.informed: unseen, or a 90%
        interval not narrowed tenfold from the prior's), whose values are mostly the prior's."""
        if self.informed is not None:
            return ~np.asarray(self.informed, dtype=bool)
        coef = self.posterior.coef[None]  # (1, S, 36, 17): one "chain"
        cols = names.FAMILY_COLUMNS
        samples = {f: coef[..., cols[f]].squeeze(-1) if f == "beta_0" else coef[..., cols[f]] for f in FAMILIES}
        r = prior_width_ratios(samples, self.posterior.model)
        ratio = np.concatenate([r["beta_0"][:, None], r["beta_off"], r["beta_def"]], axis=1)
        return ~informed(np.ones_like(ratio, dtype=np.int64), ratio, self.posterior.model)

    def unseen(self, matchups: np.ndarray) -> np.ndarray:
        """Which of `matchups` had no training possessions (their coefficients are the prior's,
        or for the hierarchical model the population's); never true for the pooled model."""
        if self.posterior.model == "simplified":
            return np.zeros(np.shape(matchups), dtype=bool)
        return self.n_possessions[matchups] == 0


def load_fit(run_dir: str | Path) -> Fit:
    """The posterior of a complete run directory."""
    diag = RunDir(run_dir).require_complete("value with").diagnostics
    if diag.get("method") == "map":
        raise RunDirError(
            f"{run_dir}: a map run is one point, with no uncertainty to value with; use a nuts (or laplace, advi) run"
        )
    if diag.get("method") == "nuts" and diag.get("max_rhat") is None:
        warnings.warn(
            f"{run_dir}: one chain, so convergence was not checked (R-hat needs at least 2); "
            "do not act on its values before a run with more chains agrees",
            RuntimeWarning,
            stacklevel=2,
        )
    elif not diag["converged"]:
        warnings.warn(
            f"{run_dir}: the run did not converge (see its diagnostics.json); its values are not to be trusted",
            RuntimeWarning,
            stacklevel=2,
        )
    if not diag.get("evidence", {}).get("pareto_k_ok", True):
        warnings.warn(
            f"{run_dir}: a {diag['method']} approximation with Pareto k "
            f"{diag['evidence']['pareto_k']:.2f} > 0.7: its intervals are not the posterior's",
            RuntimeWarning,
            stacklevel=2,
        )
    idata = az.from_netcdf(str(RunDir(run_dir) / RunDir.POSTERIOR))
    const = idata.constant_data
    n = np.asarray(const["n_possessions"].values, dtype=np.int64)
    flags = None
    if "informed_beta_off" in const:  # the pooled model's (8,) flags apply to every matchup
        flags = np.empty((names.N_MATCHUPS, names.N_FEATURES), dtype=bool)
        for family in FAMILIES:
            cols = names.FAMILY_COLUMNS[family]
            flags[:, cols] = np.asarray(const[f"informed_{family}"].values, dtype=bool).reshape(
                -1, cols.stop - cols.start
            )
    return Fit(posterior_of(idata), n, str(run_dir), flags)


def matchup(offense: Lineup, defense: Lineup) -> int:
    """0-based matchup index of `offense` against `defense`."""
    return offense.supercluster * names.N_SUPERCLUSTERS + defense.supercluster


def expected_points(fit: Fit, offense: Sequence[Lineup], defense: Sequence[Lineup]) -> np.ndarray:
    """E_s[y(offense[i], defense[i])] for every draw s and pair i, shape (S, pairs)."""
    z_off = np.stack([lineup.z_off for lineup in offense])
    z_def = np.stack([lineup.z_def for lineup in defense])
    m = np.array([matchup(o, d) for o, d in zip(offense, defense)])
    return predict(fit.posterior.coef, m, design_matrix(z_off, z_def))


def value(fit: Fit, first: Sequence[Lineup], second: Sequence[Lineup]) -> np.ndarray:
    """v_s(first[i], second[i]) = E[y(first, second)] - E[y(second, first)], shape (S, pairs)."""
    return expected_points(fit, first, second) - expected_points(fit, second, first)


def value_over(fit: Fit, lineups: Sequence[Lineup], opponents: Sequence[Lineup]) -> np.ndarray:
    """v_s(l) averaged over `opponents`, for each lineup l, shape (S, lineups).

    The same as the mean of `value` over the opponents, but v is linear in the opponents'
    features, so they enter only through their count n_d and summed features per
    supercluster d. For a lineup l of supercluster s, with b = [b0, bo, bd] per matchup:
        sum_o v(l, o) = C_s + z_off(l) . P_s + z_def(l) . Q_s
        C_s = sum_d n_d (b0[s,d] - b0[d,s]) - Zdef_d . bd[s,d] - Zoff_d . bo[d,s]
        P_s = sum_d n_d bo[s,d],   Q_s = sum_d n_d bd[d,s]
    which costs a few products per supercluster instead of two per (lineup, opponent).
    """
    if not opponents:
        raise DataError("no opponent lineups to value against")
    k, a = names.N_SUPERCLUSTERS, names.N_ARCHETYPES
    coef = fit.by_matchup.reshape(k, k, names.N_FEATURES, -1)  # [off sc, def sc, feature, draw]
    b0, bo, bd = coef[:, :, 0], coef[:, :, 1 : 1 + a], coef[:, :, 1 + a :]
    sc = np.array([o.supercluster for o in opponents])
    n = np.bincount(sc, minlength=k).astype(float)  # (6,)
    zoff = np.stack([np.stack([o.z_off for o in opponents])[sc == d].sum(axis=0) for d in range(k)])  # (6, 8)
    zdef = np.stack([np.stack([o.z_def for o in opponents])[sc == d].sum(axis=0) for d in range(k)])
    out = np.empty((len(lineups), fit.posterior.n_draws))
    mine = np.array([lineup.supercluster for lineup in lineups])
    for s in np.unique(mine):
        c = (
            n @ (b0[s] - b0[:, s]) - np.einsum("da,das->s", zdef, bd[s]) - np.einsum("da,das->s", zoff, bo[:, s])
        )  # (S,)
        p = np.einsum("d,das->as", n, bo[s])  # (8, S)
        q = np.einsum("d,das->as", n, bd[:, s])
        rows = np.flatnonzero(mine == s)
        z_off = np.stack([lineups[i].z_off for i in rows])
        z_def = np.stack([lineups[i].z_def for i in rows])
        out[rows] = c + z_off @ p + z_def @ q
    return out.T / len(opponents)


def unseen_pairings(fit: Fit, lineup: Lineup, opponents: Sequence[Lineup]) -> int:
    """How many of the lineup's 2 x len(opponents) matchups (offense and defense) had no data."""
    m = [matchup(lineup, o) for o in opponents] + [matchup(o, lineup) for o in opponents]
    return int(fit.unseen(np.array(m)).sum())


def weak_archetypes(fit: Fit, lineup: Lineup, opponents: Sequence[Lineup]) -> tuple[int, ...]:
    """Archetypes (0-7) of the lineup whose coefficients, in a matchup the lineup plays against
    `opponents` (on offense or defense), are barely informed by the data (Fit.weak)."""
    a = names.N_ARCHETYPES
    on_off = np.array([matchup(lineup, o) for o in opponents])
    on_def = np.array([matchup(o, lineup) for o in opponents])
    weak_off = fit.weak[on_off][:, 1 : 1 + a].any(axis=0) & (lineup.z_off != 0)
    weak_def = fit.weak[on_def][:, 1 + a :].any(axis=0) & (lineup.z_def != 0)
    return tuple(int(k) for k in np.flatnonzero(weak_off | weak_def))


def weak_players(fit: Fit, lineup: Lineup, opponents: Sequence[Lineup]) -> list[str]:
    """'Name (archetype A)' for each player of the lineup whose archetype's coefficient is
    uninformed in a matchup the lineup plays against `opponents`."""
    weak = set(weak_archetypes(fit, lineup, opponents))
    return [f"{name} (archetype {a})" for name, a in zip(lineup.names, lineup.archetypes) if a in weak]


def implausible(what: str, mean: float, lo: float, hi: float) -> str | None:
    """Why a value in points per possession cannot be real (PLAUSIBLE_POINTS), or None."""
    low, high = PLAUSIBLE_POINTS
    if what.startswith("v("):
        low, high = low - high, high - low
    low, high = low - SLACK, high + SLACK
    if not low <= mean <= high:
        return f"implausible: posterior mean {mean:+.2f} outside [{low:+g}, {high:+g}] points per possession"
    if lo < low or hi > high:
        return f"uncertain: 90% interval [{lo:+.2f}, {hi:+.2f}] reaches outside [{low:+g}, {high:+g}]"
    return None


def summarize(draws: np.ndarray) -> dict[str, float]:
    """Posterior mean and central 90% interval of draws (S,) or column-wise of (S, k)."""
    lo, hi = np.quantile(draws, INTERVAL, axis=0)
    return {"mean": draws.mean(axis=0), "5%": lo, "95%": hi}


@dataclass(frozen=True)
class Valuation:
    """The answers of `lineup value`, one row each (points per possession)."""

    table: pd.DataFrame  # quantity, mean, 5%, 95%, matchup, no_data
    notes: list[str]  # lineups placed by a nearest listed archetype-lineup; unseen matchups


def value_lineup(fit: Fit, lineup: Lineup, opponent: Lineup | None, opponents: Sequence[Lineup]) -> Valuation:
    """E[y] both ways and v against `opponent` (when given), and v averaged over `opponents`."""
    rows, notes = [], [lin.note for lin in (lineup, opponent) if lin is not None and lin.note]
    if opponent is not None:
        e_off = expected_points(fit, [lineup], [opponent])[:, 0]
        e_def = expected_points(fit, [opponent], [lineup])[:, 0]
        both = np.array([matchup(lineup, opponent), matchup(opponent, lineup)])
        for what, draws, m in (
            ("E[y(lineup, opponent)]", e_off, both[0]),
            ("E[y(opponent, lineup)]", e_def, both[1]),
            ("v(lineup, opponent)", e_off - e_def, None),
        ):
            unseen = bool(fit.unseen(both).any()) if m is None else bool(fit.unseen(np.array([m]))[0])
            rows.append(
                {
                    "quantity": what,
                    **summarize(draws),
                    "matchup": names.MATCHUP_LABELS[m] if m is not None else "",
                    "no_data": unseen,
                }
            )
            rows[-1]["uninformed"] = ", ".join(
                [*weak_players(fit, lineup, [opponent]), *weak_players(fit, opponent, [lineup])]
            )
            if unseen and m is not None:
                notes.append(
                    f"matchup {names.MATCHUP_LABELS[m]} had no training possessions: {what} "
                    f"rests on the {'population' if fit.posterior.model == 'hierarchical' else 'prior'}"
                )
    if opponents:
        over = value_over(fit, [lineup], opponents)[:, 0]
        unseen = unseen_pairings(fit, lineup, opponents)
        rows.append(
            {
                "quantity": f"v(lineup) over {len(opponents)} opponents",
                **summarize(over),
                "matchup": "",
                "no_data": unseen > 0,
            }
        )
        rows[-1]["uninformed"] = ", ".join(weak_players(fit, lineup, opponents))
        if unseen:
            notes.append(
                f"{unseen} of the {2 * len(opponents)} matchups against the opponents had no training possessions"
            )
        placed = sum(o.note is not None for o in opponents)
        if placed:
            notes.append(
                f"{placed} of the {len(opponents)} opponent lineups are not in the assignment table; "
                "each took the supercluster of its nearest listed archetype-lineup"
            )
    table = pd.DataFrame(rows, columns=["quantity", "mean", "5%", "95%", "matchup", "no_data", "uninformed"])
    table["flag"] = [implausible(r["quantity"], r["mean"], r["5%"], r["95%"]) or "" for _, r in table.iterrows()]
    for _, r in table.iterrows():
        if r["uninformed"]:
            notes.append(
                f"{r['quantity']} rests on coefficients the data do not inform, for "
                f"{r['uninformed']}: its value is mostly the prior's"
            )
        if r["flag"]:
            notes.append(f"{r['quantity']}: {r['flag']}")
    return Valuation(table, notes)


@dataclass(frozen=True)
class Recommendation:
    """Candidates for the fifth spot, best first, and the draws of v for each (S, candidates)."""

    table: pd.DataFrame  # rank, player_id, player, team, archetype, salary, mean, 5%, 95%, p_best, ...
    draws: np.ndarray  # columns in the table's order
    core: tuple[str, ...]
    n_opponents: int
    excluded: dict[str, int]  # why candidates were left out, and how many


def recommend(
    fit: Fit,
    players: Players,
    assignments: Assignments,
    core: Sequence[int],
    opponents: Sequence[Lineup],
    candidates: Sequence[int] | None = None,
    salary_cap: float | None = None,
    informed_only: bool = False,
) -> Recommendation:
    """Rank fifth players for a core of four by the posterior mean of v(core + candidate)
    over `opponents`, with each one's probability of being the best of the candidates.

    Candidates are `candidates` (ids) or every player not in the core; with `salary_cap`,
    only those that keep the five players' total salary within it; with `informed_only`,
    only those whose lineup has no archetype with barely informed coefficients.
    """
    core = tuple(int(i) for i in core)
    if len(core) != 4 or len(set(core)) != 4:
        raise DataError(
            f"the core must be four different players; got {len(core)} ({', '.join(players.name(i) for i in core)})"
        )
    pool = list(dict.fromkeys(int(i) for i in candidates)) if candidates is not None else list(players.table.index)
    excluded: dict[str, int] = {}
    in_core = [i for i in pool if i in core]
    if in_core and candidates is not None:
        excluded["in the core"] = len(in_core)
    pool = [i for i in pool if i not in core]
    if salary_cap is not None:
        pay = players.table["salary"]
        unknown = [players.name(i) for i in core if np.isnan(pay[i])]
        if unknown:
            raise DataError(f"--salary-cap needs the core's salaries; none for {', '.join(unknown)}")
        room = salary_cap - float(pay[list(core)].sum())
        no_salary = [i for i in pool if np.isnan(pay[i])]
        over = [i for i in pool if not np.isnan(pay[i]) and pay[i] > room]
        if no_salary:
            excluded["no salary"] = len(no_salary)
        if over:
            excluded[f"salary above the {room:,.0f} left under the cap"] = len(over)
        pool = [i for i in pool if i not in no_salary and i not in over]
    if not pool:
        raise DataError("no candidate is left to rank" + (f" ({_excluded_text(excluded)})" if excluded else ""))
    lineups = [make_lineup(players, assignments, core + (c,)) for c in pool]
    weak = [weak_archetypes(fit, lineup, opponents) for lineup in lineups]
    if informed_only:
        kept = [i for i, w in enumerate(weak) if not w]
        if len(kept) < len(pool):
            excluded["barely informed archetypes in the lineup"] = len(pool) - len(kept)
        pool, lineups, weak = [pool[i] for i in kept], [lineups[i] for i in kept], [weak[i] for i in kept]
        if not pool:
            raise DataError(f"no candidate is left to rank ({_excluded_text(excluded)})")
    draws = value_over(fit, lineups, opponents)  # (S, candidates)
    best = np.bincount(draws.argmax(axis=1), minlength=len(pool)) / draws.shape[0]
    stats = summarize(draws)
    rows = players.table.loc[pool]
    table = pd.DataFrame(
        {
            "player_id": pool,
            "player": rows["name"].to_numpy(),
            "team": rows["team"].to_numpy(),
            "archetype": rows["archetype"].to_numpy(),
            "salary": rows["salary"].to_numpy(),
            "mean": stats["mean"],
            "5%": stats["5%"],
            "95%": stats["95%"],
            "p_best": best,
            "lineup": [lin.key for lin in lineups],
            "supercluster": [lin.supercluster for lin in lineups],
            "nearest_listed": [lin.note is not None for lin in lineups],
            "no_data_matchups": [unseen_pairings(fit, lin, opponents) for lin in lineups],
            "weak_archetypes": [" ".join(map(str, w)) for w in weak],
            "flag": [implausible("v(", *vals) or "" for vals in zip(stats["mean"], stats["5%"], stats["95%"])],
        }
    )
    order = np.argsort(-table["mean"].to_numpy(), kind="stable")
    table = table.iloc[order].reset_index(drop=True)
    table.insert(0, "rank", np.arange(1, len(table) + 1))
    return Recommendation(table, draws[:, order], tuple(players.name(i) for i in core), len(opponents), excluded)


def _excluded_text(excluded: dict[str, int]) -> str:
    return "; ".join(f"{n} {why}" for why, n in excluded.items())


def plot_candidates(rec: Recommendation, path: str | Path, top: int = 10) -> Path:
    """Ridge plot of the top candidates' posterior distributions of v, with 5/50/95% marks."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = min(top, len(rec.table))
    labels = [f"{r.rank}. {r.player}" for r in rec.table.head(k).itertuples()]
    idata = az.from_dict(
        posterior={"v": rec.draws[None, :, :k]}, dims={"v": ["candidate"]}, coords={"candidate": labels}
    )
    axes = az.plot_forest(
        idata,
        var_names=["v"],
        kind="ridgeplot",
        combined=True,
        ridgeplot_overlap=1.6,
        ridgeplot_quantiles=[0.05, 0.5, 0.95],
        ridgeplot_alpha=0.6,
        colors="C0",
        figsize=(8, 1.0 + 0.55 * k),
    )
    ax = np.ravel(axes)[0]
    ax.set_yticklabels([re.sub(r"^v?\[(.*)\]$", r"\1", t.get_text()) for t in ax.get_yticklabels()])
    ax.axvline(0.0, color="0.5", lw=0.8, ls="--")
    ax.set_xlabel(f"v: net points per possession over {rec.n_opponents} opponent lineups")
    ax.set_title(textwrap.fill(f"Fifth player for {', '.join(rec.core)}", 70), fontsize=10)
    fig = ax.get_figure()
    fig.tight_layout()
    path = Path(path)
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=120, format="png")
    finally:
        plt.close(fig)
    return path
