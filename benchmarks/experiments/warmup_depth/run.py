"""Cap NUTS's tree depth during warm-up only (SamplerConfig.warmup_max_tree_depth; NumPyro's
max_tree_depth=(warm-up, sampling)). The first runs (before the option existed) patched the kernel.

python benchmarks/experiments/warmup_depth/run.py MODEL DEPTH SEED [DATA] [WARMUP]
prints one JSON line: warm-up/sampling seconds, gradients, min ESS_bulk, max R-hat, divergences.
"""

import json
import sys

import numpy as np

model, depth, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
data = sys.argv[4] if len(sys.argv) > 4 and sys.argv[4] != "sim" else None
warmup = int(sys.argv[5]) if len(sys.argv) > 5 else 1000
from lineup_numpyro.config import DataConfig, RunConfig, SamplerConfig, default_target_accept  # noqa: E402
from lineup_numpyro.run.train import train  # noqa: E402

cfg = RunConfig(
    model=model,
    data=DataConfig(path=data),
    sampler=SamplerConfig(
        seed=seed, warmup=warmup, target_accept=default_target_accept(model), warmup_max_tree_depth=depth
    ),
)
out = f"/tmp/wd_{model}_{depth}_{seed}"
report = train(cfg, out, overwrite=True)
import xarray as xr  # noqa: E402

ss = xr.open_dataset(f"{out}/posterior.nc", group="sample_stats")
steps = int(np.asarray(ss["n_steps"]).sum())
print(
    json.dumps(
        {
            "model": model,
            "data": data or "sim",
            "depth": depth,
            "warmup": warmup,
            "seed": seed,
            "warm_s": round(report["timing"]["warmup_s"], 2),
            "samp_s": round(report["timing"]["sampling_s"], 2),
            "samp_grads": steps,
            "min_ess": report["min_ess_bulk"],
            "at": report["min_ess_bulk_parameter"],
            "rhat": report["max_rhat"],
            "div": report["divergences"],
        }
    )
)
