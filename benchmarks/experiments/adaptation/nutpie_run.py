"""nutpie's own NUTS (Rust) on the package's log density (point (e) of issue 18, point 2).

The potential is NumPyro's (initialize_model on get_model + suffstats likelihood), jitted as
value_and_grad and handed to nutpie.from_pyfunc; draws are mapped back to the constrained
sites with NumPyro's postprocess_fn, then scored like adapt.py.

Needs nutpie, which is not a dependency of the package: run with the /tmp venv that sees the
project's venv through a .pth file (README, "Commands"):
  /tmp/adapt-venv/bin/python benchmarks/experiments/adaptation/nutpie_run.py MODEL DATA [--lowrank] [--seeds 1,2]
"""

import os

os.environ.setdefault("LINEUP_NUMPYRO_JAX_CACHE", "off")
import argparse
import json
import sys
import time
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp
import numpy as np
import nutpie
from nutpie.compiled_pyfunc import from_pyfunc
from jax.flatten_util import ravel_pytree
from numpyro.infer.util import initialize_model

sys.path.insert(0, str(Path(__file__).resolve().parent))
from adapt import CHAINS, DRAWS, HERE, MAX_DEPTH, TARGET, setup, summarize  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("data")
    ap.add_argument("--lowrank", action="store_true")
    ap.add_argument("--seeds", default="1,2")
    ap.add_argument("--warmup", type=int, default=1000)
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--out", default=str(HERE / "results.jsonl"))
    a = ap.parse_args()
    st, cells, model, lik = setup(a.model, a.data)
    info = initialize_model(jax.random.PRNGKey(0), model, model_args=(lik,), dynamic_args=False)
    flat0, unravel = ravel_pytree(info.param_info.z)
    ndim = flat0.size
    potential_fn, postprocess_fn = info.potential_fn, info.postprocess_fn
    vg = jax.jit(jax.value_and_grad(lambda x: -potential_fn(unravel(x))))
    post = jax.jit(lambda x: postprocess_fn(unravel(x)))
    example = jax.device_get(post(flat0))
    site_names = list(example)
    shapes = [tuple(np.shape(example[k])) for k in site_names]
    counter = {"n": 0}

    def make_logp_fn():
        def logp(x, **_):
            counter["n"] += 1
            v, g = vg(jnp.asarray(x))
            return float(v), np.asarray(g, dtype="float64", order="C")

        return logp

    def make_expand_fn(seed1, seed2, chain):
        def expand(x, **_):
            out = post(jnp.asarray(x))
            return {k: np.asarray(out[k], dtype="float64", order="C").reshape(s) for k, s in zip(site_names, shapes)}

        return expand

    def make_init(seed):  # NumPyro's default: uniform in [-2, 2] on the unconstrained scale
        return np.random.default_rng(seed).uniform(-2.0, 2.0, ndim)

    compiled = from_pyfunc(
        ndim, make_logp_fn, make_expand_fn, [np.dtype("float64")] * len(site_names), shapes, site_names,
        make_initial_point_fn=make_init,
    )
    method = "nutpie-lowrank" if a.lowrank else "nutpie-diag"
    for seed in [int(s) for s in a.seeds.split(",")]:
        counter["n"] = 0
        t0 = time.perf_counter()
        idata = nutpie.sample(
            compiled, draws=DRAWS, tune=a.warmup, chains=CHAINS, cores=a.cores, seed=seed, progress_bar=False,
            target_accept=TARGET[a.model], maxdepth=MAX_DEPTH, low_rank_modified_mass_matrix=a.lowrank,
            save_warmup=True,
        )
        wall = time.perf_counter() - t0
        ss, ws = idata.sample_stats, idata.warmup_sample_stats
        samples = {k: np.asarray(idata.posterior[k].values) for k in site_names}
        (ess, ess_at), (rhat, rhat_at) = summarize(a.model, samples, cells, seed)
        warm_grads, samp_grads = int(ws["n_steps"].sum()), int(ss["n_steps"].sum())
        grads = warm_grads + samp_grads
        rec = dict(
            model=a.model, data=a.data, method=method, tag="", seed=seed, warmup=a.warmup, draws=DRAWS,
            chains=CHAINS, target_accept=TARGET[a.model], min_ess_bulk=round(ess, 1), min_ess_at=ess_at,
            max_rhat=round(rhat, 4), rhat_at=rhat_at, grads=grads, ess_per_1k_grads=round(1000 * ess / grads, 3),
            wall_s=round(wall, 1), ess_per_s=round(ess / wall, 2), warm_grads=warm_grads, samp_grads=samp_grads,
            warm_div=int(ws["diverging"].sum()), div=int(ss["diverging"].sum()),
            step_size=round(float(ss["step_size"].mean()), 4), mean_steps=round(float(ss["n_steps"].mean()), 3),
            logp_calls=counter["n"],
        )
        print(json.dumps(rec), flush=True)
        with open(a.out, "a") as f:
            f.write(json.dumps(rec) + "\n")


if __name__ == "__main__":
    main()
