"""Experiment (issue 18): NUTS's first inverse mass matrix from one gradient, nutpie's start.

variance_i = 1 / |dU/dx_i| at the start point (clipped), instead of 1 (NumPyro's default):
coefficients ~100x narrower than their prior then get steps of their own scale in the first
warm-up window. Compared with the default on the default matchup job (built-in season) or a
file: warm-up seconds, gradients, min ESS_bulk, R-hat, divergences.

    python benchmarks/experiments/grad_init/run.py --model matchup --repeats 2 [--data FILE]
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace

from lineup_numpyro.inference.runtime import configure_jax


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="matchup")
    parser.add_argument("--data", default=None)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=1000)
    parser.add_argument("--clip", type=float, default=1e-6, help="smallest variance")
    args = parser.parse_args()
    configure_jax("cpu", 4)
    import jax
    import jax.numpy as jnp
    import numpy as np

    from lineup_numpyro.config import (
        DataConfig,
        RunConfig,
        SamplerConfig,
        default_target_accept,
        default_warmup_max_tree_depth,
    )
    from lineup_numpyro.inference import sampling
    from lineup_numpyro.inference.diagnostics import parameter_summary
    from lineup_numpyro.models.model import complete
    from lineup_numpyro.run.train import prepare_data, whitening_for
    from lineup_numpyro.models.cells import Cells
    from lineup_numpyro.models.model import get_model, make_likelihood
    import xarray as xr

    config = RunConfig(model=args.model, data=DataConfig(path=args.data))
    data = prepare_data(config)
    cells = Cells.from_stats(data.stats)
    model = get_model(args.model, None if args.model == "simplified" else cells, whitening_for(config, data.stats))
    likelihood = make_likelihood("suffstats", stats=data.stats)
    base = SamplerConfig(
        warmup=args.warmup,
        target_accept=default_target_accept(args.model),
        warmup_max_tree_depth=default_warmup_max_tree_depth(args.model),
    )
    real_map, real_laplace = sampling.map_inits, sampling.laplace_inverse_mass

    class Start:
        x = None

    def grad_start(model_, likelihood_, chains, seed, flat=None, max_iter=None):  # noqa: ANN001, ANN202
        # NumPyro's default start: uniform in [-2, 2] on the unconstrained scale, per chain
        starts = np.random.default_rng(seed).uniform(-2.0, 2.0, (chains, flat.x0.size))
        Start.x = starts
        inits = jax.tree.map(lambda *xs: jnp.stack(xs), *[flat.unravel(jnp.asarray(x)) for x in starts])
        return inits, Start

    def grad_mass(flat, x):  # noqa: ANN001, ANN202
        grad = jax.jit(jax.vmap(jax.grad(flat.potential)))
        g = np.abs(np.asarray(grad(jnp.asarray(x)))).mean(axis=0)
        return np.clip(1.0 / np.maximum(g, 1e-12), args.clip, 1.0)

    rows = []
    for rep in range(args.repeats):
        for variant in ("default", "grad"):
            if variant == "grad":
                sampling.map_inits, sampling.laplace_inverse_mass = grad_start, grad_mass
                cfg = replace(base, init="laplace", seed=rep)
            else:
                sampling.map_inits, sampling.laplace_inverse_mass = real_map, real_laplace
                cfg = replace(base, seed=rep)
            t = time.perf_counter()
            result = sampling.sample_posterior(model, likelihood, cfg)
            wall = time.perf_counter() - t
            samples = complete(args.model, result.samples, cells, cfg.seed, config.priors)
            post = xr.Dataset({k: (("chain", "draw", *[f"{k}_{i}" for i in range(v.ndim - 2)]), v) for k, v in samples.items()})
            table = parameter_summary(post, args.model)
            steps = result.stats["n_steps"]
            row = {
                "variant": variant,
                "seed": rep,
                "wall_s": round(wall, 2),
                "warmup_s": round(result.timing.warmup_s, 2),
                "sampling_s": round(result.timing.sampling_s, 2),
                "min_ess_bulk": round(float(np.nanmin(table["ess_bulk"])), 0),
                "max_rhat": round(float(np.nanmax(table["r_hat"])), 4),
                "divergences": int(result.stats["diverging"].sum()),
                "steps_per_draw": round(float(steps.mean()), 1),
                "step_size": round(float(np.mean(result.stats["step_size"])), 4) if "step_size" in result.stats else None,
            }
            rows.append(row)
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
