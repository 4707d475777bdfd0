"""Are lineup values plausible? E[y] and v over every pair of the 30 default 2024-25 opponents.

For a fitted run, value every ordered pair (l1, l2) of the default opponents (each team's five
highest-DARKO players): E[y(l1, l2)] and v(l1, l2). Prints the distribution of the posterior
means, and how many values lie outside what a possession can score, each of which must carry
a flag (valuation.implausible) with its reason; also how many rest on uninformed coefficients.

    python benchmarks/lineup_values.py RUN_DIR [--tables ../shared/data]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from lineup_numpyro.lineups.players import default_opponents, find_tables, load_assignments, load_players
from lineup_numpyro.lineups.valuation import (
    PLAUSIBLE_POINTS,
    SLACK,
    expected_points,
    implausible,
    load_fit,
    value,
    weak_archetypes,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--tables", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    args = parser.parse_args()
    found = find_tables(args.tables)
    players = load_players(found["archetypes"], found["darko"])
    table = load_assignments(found["assignments"])
    teams = default_opponents(players, table)
    fit = load_fit(args.run_dir)
    pairs = [(a, b) for a in teams for b in teams if a is not b]
    first, second = [p[0] for p in pairs], [p[1] for p in pairs]
    ey = expected_points(fit, first, second)  # (S, pairs)
    v = value(fit, first, second)
    print(
        f"run: {args.run_dir} ({fit.posterior.model}), {len(teams)} lineups, {len(pairs)} ordered pairs, "
        f"{fit.posterior.n_draws} draws"
    )
    low, high = PLAUSIBLE_POINTS
    for name, draws in (("E[y(l1, l2)]", ey), ("v(l1, l2)", v)):
        mean = draws.mean(axis=0)
        lo, hi = np.quantile(draws, [0.05, 0.95], axis=0)
        flags = [implausible(name, *x) for x in zip(mean, lo, hi)]
        bound = (low - SLACK, high + SLACK) if name.startswith("E") else (low - high - SLACK, high - low + SLACK)
        outside = (mean < bound[0]) | (mean > bound[1])
        reach = (lo < bound[0]) | (hi > bound[1])
        q = np.quantile(mean, [0.0, 0.05, 0.5, 0.95, 1.0])
        print(
            f"{name}: posterior means min {q[0]:+.3f}, 5% {q[1]:+.3f}, median {q[2]:+.3f}, 95% {q[3]:+.3f}, "
            f"max {q[4]:+.3f}; 90% interval width median {np.median(hi - lo):.3f}"
        )
        print(
            f"  outside [{bound[0]:+g}, {bound[1]:+g}]: {int(outside.sum())} means, {int(reach.sum())} intervals; "
            f"flagged {sum(f is not None for f in flags)}; every one of them flagged: "
            f"{all(f is not None for f, r in zip(flags, reach) if r)}"
        )
        example = next((f for f in flags if f), None)
        if example:
            print(f"  e.g. {example}")
    weak = sum(bool(weak_archetypes(fit, a, [b]) or weak_archetypes(fit, b, [a])) for a, b in pairs)
    print(f"pairs resting on an uninformed coefficient (flag w): {weak} of {len(pairs)}")


if __name__ == "__main__":
    main()
