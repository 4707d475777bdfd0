"""Experiment (issue 18): one NUTS setting's variants against each other, per gradient and per second.

Each model is fitted on the built-in season and on a file (default: the real quick_sample_10k),
the variants of SamplerConfig.SETTING alternating per seed in one process, from NumPyro's
random start with the CLI's settings for that model. Warm-up and sampling exclude compilation.
One JSON line per fit. Used for:

    # first inverse mass matrix: identity or noise-scaled (experiments/noise_scaled_mass)
    python benchmarks/experiments/variants.py --setting first_mass --variants identity,noise --repeats 3
    # the warm-up's mass-matrix estimate: draws' variances or nutpie's gradient-based one
    python benchmarks/experiments/variants.py --setting mass_estimate --variants variance,gradient --repeats 6 \
        [--models simplified,matchup,hierarchical] [--data ../shared/data/quick_sample_10k.csv] [--seed0 0]
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace

from lineup_numpyro.inference.runtime import configure_jax


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", default="../shared/data/quick_sample_10k.csv")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--models", default="simplified,matchup,hierarchical")
    parser.add_argument("--setting", default="first_mass", help="a SamplerConfig field")
    parser.add_argument("--variants", default="identity,noise", help="its values, comma-separated")
    parser.add_argument("--seed0", type=int, default=0, help="the first seed")
    parser.add_argument("--no-builtin", action="store_true", help="only the file, not the built-in season")
    args = parser.parse_args()
    configure_jax("cpu", 4)

    import numpy as np
    import xarray as xr

    from lineup_numpyro.config import DataConfig, RunConfig, model_sampler
    from lineup_numpyro.inference import sampling
    from lineup_numpyro.inference.diagnostics import parameter_summary
    from lineup_numpyro.models.cells import Cells
    from lineup_numpyro.models.model import complete, get_model, make_likelihood
    from lineup_numpyro.run.train import prepare_data, whitening_for

    for path in ([] if args.no_builtin else [None]) + ([args.data] if args.data else []):
        for name in args.models.split(","):
            config = RunConfig(model=name, data=DataConfig(path=path))
            data = prepare_data(config)
            stats = data.stats
            cells = Cells.from_stats(stats)
            model = get_model(name, None if name == "simplified" else cells, whitening_for(config, stats), config.priors)
            likelihood = make_likelihood("suffstats", stats=stats)
            base = model_sampler(name)  # the command line's settings for this model
            for seed in range(args.seed0, args.seed0 + args.repeats):
                for variant in args.variants.split(","):
                    cfg = replace(base, seed=seed, **{args.setting: variant})
                    t = time.perf_counter()
                    result = sampling.sample_posterior(model, likelihood, cfg)
                    wall = time.perf_counter() - t
                    samples = complete(name, result.samples, cells, cfg.seed, config.priors)
                    post = xr.Dataset(
                        {
                            k: (("chain", "draw", *[f"{k}_{i}" for i in range(v.ndim - 2)]), v)
                            for k, v in samples.items()
                        }
                    )
                    table = parameter_summary(post, name)
                    ess = float(np.nanmin(table["ess_bulk"]))
                    run_s = result.timing.warmup_s + result.timing.sampling_s
                    row = {
                        "data": path or "built-in",
                        "model": name,
                        "variant": variant,
                        "seed": seed,
                        "wall_s": round(wall, 2),
                        "warmup_s": round(result.timing.warmup_s, 2),
                        "sampling_s": round(result.timing.sampling_s, 2),
                        "min_ess_bulk": round(ess),
                        "min_ess_tail": round(float(np.nanmin(table["ess_tail"]))),
                        "step_size": round(float(np.mean(result.stats["step_size"])), 4),
                        "ess_per_s": round(ess / run_s, 1),
                        "max_rhat": round(float(np.nanmax(table["r_hat"])), 4),
                        "divergences": int(result.stats["diverging"].sum()),
                        "steps_per_draw": round(float(result.stats["n_steps"].mean()), 1),
                    }
                    print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
