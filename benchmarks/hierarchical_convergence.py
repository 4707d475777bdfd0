"""Does the hierarchical model converge at default settings? (issue 15, point 3)

Fits the hierarchical model with the defaults of `lineup-numpyro train --model hierarchical`
(4 chains x (1,000 + 1,000), its default target acceptance, whitened coordinates) to:

- ../shared/data/quick_sample_10k.csv and stratified_sample_10k.csv (real samples);
- one season (2022-23) of a three-season file in the original project's second layout, each
  season simulated from the hierarchical model (30,000 possessions, 4 empty matchups, seeds
  21-23), selected with --season as a user would;
- the built-in simulated 96,837-possession season (drawn from the matchup model).

and prints divergences, max R-hat, min ESS_bulk (over every Stan-named parameter) and the
wall time of each fit. `--parameterization noncentred` runs the plain form, to compare.

    python benchmarks/hierarchical_convergence.py [--seeds 1,2] [--parameterization whitened]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import pandas as pd

from lineup_numpyro.config import (
    DataConfig,
    RunConfig,
    SamplerConfig,
    default_target_accept,
    default_warmup_max_tree_depth,
)
from lineup_numpyro.inference.runtime import configure_jax
from lineup_numpyro.models.simulate import simulate_season

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def multi_season_file(directory: Path) -> Path:
    """Three simulated seasons in one CSV with integer matchup ids and a season column."""
    frames = []
    for seed, season in ((21, "2021-22"), (22, "2022-23"), (23, "2023-24")):
        data, _ = simulate_season(30_000, model="hierarchical", seed=seed, empty_matchups=4)
        frame = data.to_frame("integer")
        frame["season"] = season
        frames.append(frame.sample(frac=1.0, axis=1, random_state=seed))  # column order is not significant
    path = directory / "three_seasons.csv"
    pd.concat(frames, ignore_index=True).to_csv(path, index=False)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="1,2")
    parser.add_argument("--parameterization", default="whitened", choices=("whitened", "noncentred"))
    parser.add_argument("--first-mass", default="identity", choices=("identity", "noise"))
    args = parser.parse_args()
    configure_jax("cpu", chains=4)
    from lineup_numpyro.run.train import train

    work = Path(tempfile.mkdtemp(prefix="hier_conv_"))
    datasets = {
        "quick_sample_10k": DataConfig(path=str(SHARED / "quick_sample_10k.csv")),
        "stratified_sample_10k": DataConfig(path=str(SHARED / "stratified_sample_10k.csv")),
        "2022-23 of a 3-season file": DataConfig(path=str(multi_season_file(work)), seasons=("2022-23",)),
        "simulated 96,837": DataConfig(),
    }
    rows = []
    for label, data in datasets.items():
        for seed in (int(s) for s in args.seeds.split(",")):
            config = RunConfig(
                model="hierarchical",
                data=data,
                parameterization=args.parameterization,
                sampler=SamplerConfig(
                    seed=seed,
                    target_accept=default_target_accept("hierarchical"),
                    warmup_max_tree_depth=default_warmup_max_tree_depth("hierarchical"),
                    first_mass=args.first_mass,
                ),
            )
            out = work / f"{label.split()[0]}_{seed}"
            start = time.perf_counter()
            train(config, out)
            wall = time.perf_counter() - start
            d = json.loads((out / "diagnostics.json").read_text())
            rows.append(
                {
                    "data": label,
                    "seed": seed,
                    "divergences": d["divergences"]["count"],
                    "max R-hat": round(d["max_rhat"], 3),
                    "min ESS_bulk": round(d["min_ess_bulk"]),
                    "lowest-ESS parameter": d["min_ess_bulk_parameter"],
                    "wall s": round(wall, 1),
                }
            )
            print(rows[-1], flush=True)
    print(
        f"\nhierarchical, {args.parameterization}, target acceptance {default_target_accept('hierarchical')}, "
        "4 chains x (1,000 + 1,000)\n"
    )
    table = pd.DataFrame(rows).astype(str)
    print("| " + " | ".join(table.columns) + " |\n|" + " --- |" * len(table.columns))
    for _, row in table.iterrows():
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
