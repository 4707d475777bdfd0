"""Experiment (issue 18): start NUTS on the matchup model from the data's plug-in view.

No mode search and no Hessian: `models.whitening.plug_in_view` already gives each touched
cell's data precision p and location on the link scale (beta_0; log beta for the positive
families), which are NumPyro's unconstrained coordinates for these sites. Start each chain at
the location plus N(0, 1) noise at the cell's own scale, and give NUTS 1 / (p + prior
curvature) as its first inverse mass; sigma starts at the pooled residual sd with variance
1 / (2 N). Compared with the default start on the default matchup job (built-in season) or a
file, alternating, in one process (compile excluded from warm-up).

    python benchmarks/experiments/plugin_start/run.py --repeats 2 [--data FILE]
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace

from lineup_numpyro.inference.runtime import configure_jax


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", default=None)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--warmup", type=int, default=1000)
    parser.add_argument("--variants", default="default,plugin")
    args = parser.parse_args()
    configure_jax("cpu", 4)

    import jax.numpy as jnp
    import numpy as np
    import xarray as xr

    from lineup_numpyro.config import DataConfig, RunConfig, SamplerConfig, default_target_accept
    from lineup_numpyro.config import default_warmup_max_tree_depth
    from lineup_numpyro.inference import sampling
    from lineup_numpyro.inference.diagnostics import parameter_summary
    from lineup_numpyro.models.cells import Cells
    from lineup_numpyro.models.model import complete, get_model, make_likelihood, plug_in_start
    from lineup_numpyro.run.train import prepare_data

    config = RunConfig(model="matchup", data=DataConfig(path=args.data))
    t = time.perf_counter()
    data = prepare_data(config)
    print(f"data {time.perf_counter() - t:.1f} s, {data.stats.total:,} possessions", flush=True)
    stats = data.stats
    cells = Cells.from_stats(stats)
    model = get_model("matchup", cells, None)
    likelihood = make_likelihood("suffstats", stats=stats)
    base = SamplerConfig(
        warmup=args.warmup,
        target_accept=default_target_accept("matchup"),
        warmup_max_tree_depth=default_warmup_max_tree_depth("matchup"),
    )
    real_map, real_laplace = sampling.map_inits, sampling.laplace_inverse_mass

    def plugin(seed: int, chains: int):
        t0 = time.perf_counter()
        start = plug_in_start(stats, cells, config.priors, chains, seed)
        inits = {k: jnp.asarray(v) for k, v in start.inits.items()}
        return inits, jnp.asarray(start.inverse_mass), time.perf_counter() - t0

    rows = []
    for rep in range(args.first_seed, args.first_seed + args.repeats):
        for variant in args.variants.split(","):
            cfg = replace(base, seed=rep)
            setup = 0.0
            if variant == "plugin":
                inits, inverse_mass, setup = plugin(rep, cfg.chains)

                class Mode:
                    x = None

                sampling.map_inits = lambda *a, **k: (inits, Mode)
                sampling.flatten_model = lambda *a, **k: None
                sampling.laplace_inverse_mass = lambda flat, x: inverse_mass
                cfg = replace(cfg, init="laplace")
            else:
                sampling.map_inits, sampling.laplace_inverse_mass = real_map, real_laplace
            t = time.perf_counter()
            result = sampling.sample_posterior(model, likelihood, cfg)
            wall = time.perf_counter() - t
            samples = complete("matchup", result.samples, cells, cfg.seed, config.priors)
            post = xr.Dataset(
                {k: (("chain", "draw", *[f"{k}_{i}" for i in range(v.ndim - 2)]), v) for k, v in samples.items()}
            )
            table = parameter_summary(post, "matchup")
            row = {
                "variant": variant,
                "seed": rep,
                "setup_s": round(setup, 3),
                "wall_s": round(wall, 2),
                "compile_s": round(result.timing.compile_s, 2),
                "warmup_s": round(result.timing.warmup_s, 2),
                "sampling_s": round(result.timing.sampling_s, 2),
                "min_ess_bulk": round(float(np.nanmin(table["ess_bulk"])), 0),
                "max_rhat": round(float(np.nanmax(table["r_hat"])), 4),
                "divergences": int(result.stats["diverging"].sum()),
                "steps_per_draw": round(float(result.stats["n_steps"].mean()), 1),
                "step_size": round(float(np.mean(result.stats["step_size"])), 4),
            }
            rows.append(row)
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
