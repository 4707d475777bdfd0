"""Approximate fits against NUTS, and NUTS started from the MAP.

1. For each model on the 96,837-possession simulated season and on the real 10K sample
   (../shared/data/quick_sample_10k.csv): the time of NUTS (4 x (1,000 + 1,000)) and of map,
   laplace and advi, and how far each one's posterior means and sds are from NUTS's, in NUTS
   posterior sds (largest and median over the reported parameters).
2. `--init map` against the default start: NUTS on the simulated season (matchup model),
   alternating the two, `--repeats` times each, at each `--warmups` length; warm-up time
   includes finding the mode.

    python benchmarks/approx.py [--out benchmarks/results/approx] [--repeats 3] [--warmups 1000,200]

Writes results.json and results.md to --out and prints the tables.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/approx"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmups", default="1000,200")
    parser.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument("--models", default="simplified,matchup,hierarchical")
    args = parser.parse_args()

    from lineup_numpyro.inference.runtime import configure_jax

    configure_jax("cpu", 4)
    import arviz as az
    import numpy as np

    from lineup_numpyro import names
    from lineup_numpyro.config import ApproxConfig, SamplerConfig
    from lineup_numpyro.data.suffstats import SuffStats, from_file
    from lineup_numpyro.inference.approx import approximate
    from lineup_numpyro.inference.sampling import sample_posterior
    from lineup_numpyro.models.model import get_model, make_likelihood
    from lineup_numpyro.models.simulate import simulate_season

    rows, _ = simulate_season()
    datasets = {
        "simulated 96,837": SuffStats.from_possessions(rows),
        "real quick_sample_10k": from_file(args.shared / "quick_sample_10k.csv"),
    }

    def flat(samples: dict, model: str) -> np.ndarray:
        reported = [v for v in names.POSTERIOR_DIMS[model] if v in ("beta_0", "beta_off", "beta_def", "sigma")]
        return np.concatenate(
            [samples[v].reshape(samples[v].shape[0] * samples[v].shape[1], -1) for v in reported], axis=1
        )

    comparison, table = [], []

    def emit(line: str) -> None:
        print(line, flush=True)
        table.append(line)

    emit(
        "| data | model | method | time s | max mean diff (NUTS sd) | median | max sd diff (NUTS sd) "
        "| converged | Pareto k |"
    )
    emit("| --- | --- | --- | ---: | ---: | ---: | ---: | --- | ---: |")
    for label, stats in datasets.items():
        likelihood = make_likelihood("suffstats", stats=stats)
        for model in args.models.split(","):
            start = time.perf_counter()
            nuts = sample_posterior(get_model(model), likelihood, SamplerConfig(seed=1))
            nuts_s = time.perf_counter() - start
            ref = flat(nuts.samples, model)
            mean, sd = ref.mean(axis=0), ref.std(axis=0)
            row = {"data": label, "model": model, "method": "nuts", "time_s": nuts_s}
            comparison.append(row)
            emit(f"| {label} | {model} | nuts | {nuts_s:.1f} | 0 | 0 | 0 | {not nuts.stats['diverging'].any()} | |")
            for method in ("map", "laplace", "advi"):
                start = time.perf_counter()
                fit = approximate(method, get_model(model), likelihood, ApproxConfig(seed=1))
                took = time.perf_counter() - start
                ours = flat(fit.samples, model)
                dmean = np.abs(ours.mean(axis=0) - mean) / sd
                dsd = np.abs(ours.std(axis=0) - sd) / sd if method != "map" else np.full_like(sd, np.nan)
                row = {
                    "data": label,
                    "model": model,
                    "method": method,
                    "time_s": took,
                    "max_mean_diff_sd": float(dmean.max()),
                    "median_mean_diff_sd": float(np.median(dmean)),
                    "max_sd_diff_sd": float(np.nanmax(dsd)) if method != "map" else None,
                    "converged": fit.converged,
                    "pareto_k": fit.evidence.get("pareto_k"),
                }
                comparison.append(row)
                k = f"{row['pareto_k']:.2f}" if row["pareto_k"] is not None else ""
                sd_text = f"{row['max_sd_diff_sd']:.2f}" if row["max_sd_diff_sd"] is not None else "n/a"
                emit(
                    f"| {label} | {model} | {method} | {took:.1f} | {row['max_mean_diff_sd']:.2f} | "
                    f"{row['median_mean_diff_sd']:.2f} | {sd_text} | {fit.converged} | {k} |"
                )

    likelihood = make_likelihood("suffstats", stats=datasets["simulated 96,837"])
    starts = []
    for warmup in (int(w) for w in args.warmups.split(",")):
        for repeat in range(args.repeats):
            for init in ("default", "map"):
                result = sample_posterior(
                    get_model("matchup"), likelihood, SamplerConfig(seed=1 + repeat, warmup=warmup, init=init)
                )
                post = az.from_dict(posterior=result.samples)
                starts.append(
                    {
                        "warmup": warmup,
                        "init": init,
                        "repeat": repeat,
                        "warmup_s": result.timing.warmup_s,
                        "compile_s": result.timing.compile_s,
                        "total_s": result.timing.total_s,
                        "divergences": int(result.stats["diverging"].sum()),
                        "max_rhat": float(az.rhat(post).to_array().max()),
                        "min_ess_bulk": float(az.ess(post, method="bulk").to_array().min()),
                    }
                )
                s = starts[-1]
                print(
                    f"init {init:7} warm-up {warmup:5}: warm-up {s['warmup_s']:.1f} s, compile {s['compile_s']:.1f} s, "
                    f"total {s['total_s']:.1f} s, divergences {s['divergences']}, max R-hat {s['max_rhat']:.4f}, "
                    f"min ESS_bulk {s['min_ess_bulk']:.0f}",
                    flush=True,
                )
    summary = []
    for warmup in sorted({s["warmup"] for s in starts}, reverse=True):
        for init in ("default", "map"):
            these = [s for s in starts if s["warmup"] == warmup and s["init"] == init]
            summary.append(
                {
                    "warmup": warmup,
                    "init": init,
                    "runs": len(these),
                    **{
                        k: statistics.median(s[k] for s in these)
                        for k in ("warmup_s", "compile_s", "total_s", "max_rhat", "min_ess_bulk")
                    },
                    "divergences_max": max(s["divergences"] for s in these),
                }
            )
    lines = [
        "| warm-up iterations | init | runs | warm-up s | compile s | total s | max R-hat | min ESS_bulk "
        "| divergences (max) |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for s in summary:
        lines.append(
            f"| {s['warmup']} | {s['init']} | {s['runs']} | {s['warmup_s']:.1f} | {s['compile_s']:.1f} | "
            f"{s['total_s']:.1f} | {s['max_rhat']:.4f} | {s['min_ess_bulk']:.0f} | {s['divergences_max']} |"
        )
    print("\n".join(lines))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(
        json.dumps({"comparison": comparison, "init_runs": starts, "init_medians": summary}, indent=2)
    )
    (args.out / "results.md").write_text("\n".join(table) + "\n\n" + "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
