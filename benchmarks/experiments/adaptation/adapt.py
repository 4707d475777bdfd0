"""NUTS adaptation variants on the package's three models (issue 18, point 2).

Every variant samples the same log density: the package's model functions (get_model) with the
suffstats likelihood. Efficiency is counted per gradient evaluation (leapfrog steps of warm-up
and sampling, all chains); wall seconds are secondary (a busy 2-core machine).

Usage (from /work/main):
  .venv/bin/python benchmarks/experiments/adaptation/adapt.py MODEL DATA METHOD --seeds 1,2 [--warmup 1000]
  MODEL: simplified | matchup | hierarchical      DATA: sim | quick
  METHOD: np-diag | np-dense | np-block | bj-diag | bj-dense | bj-lowrank | bj-lowrank-nutpie
Appends one JSON line per seed to results.jsonl beside this file.
"""

import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=4")
os.environ.setdefault("LINEUP_NUMPYRO_JAX_CACHE", "off")
import argparse
import json
import time
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)
import arviz as az
import jax.numpy as jnp
import numpy as np
from numpyro.infer import MCMC, NUTS
from numpyro.infer.util import initialize_model

from lineup_numpyro import names
from lineup_numpyro.data.suffstats import SuffStats, from_file
from lineup_numpyro.models.cells import Cells
from lineup_numpyro.models.model import complete, get_model, make_likelihood
from lineup_numpyro.models.whitening import Whitening

HERE = Path(__file__).resolve().parent
CHAINS, DRAWS, MAX_DEPTH = 4, 1000, 10
TARGET = {"simplified": 0.9, "matchup": 0.9, "hierarchical": 0.99}
# Block-dense mass: sites adapted together (the rest diagonal).
BLOCKS = {
    "simplified": [("beta_0", "beta_off", "beta_def", "sigma")],  # = dense
    "matchup": [("sigma",), ("beta_0_data",), ("beta_off_data",), ("beta_def_data",)],  # per family
    "hierarchical": [("z_tau_0", "z_tau_off", "z_tau_def", "z_mu_0", "z_mu_off", "z_mu_def", "sigma")],
}


def load_stats(data: str) -> SuffStats:
    cache = HERE / f"data_{data}.npz"
    if cache.exists():
        z = np.load(cache)
        return SuffStats(z["n"], z["xtx"], z["xty"], z["yty"], z["nonzero"])
    if data == "sim":
        from lineup_numpyro.models.simulate import simulate_season

        rows, _ = simulate_season()
        st = SuffStats.from_possessions(rows)
    elif data == "quick":
        st = from_file("/work/shared/data/quick_sample_10k.csv")
    else:
        raise SystemExit(f"unknown data {data}")
    np.savez(cache, n=st.n, xtx=st.xtx, xty=st.xty, yty=st.yty, nonzero=st.nonzero)
    return st


def setup(model_name: str, data: str):
    st = load_stats(data)
    cells = Cells.from_stats(st)
    w = Whitening.from_stats(st) if model_name == "hierarchical" else None
    return st, cells, get_model(model_name, cells, w), make_likelihood("suffstats", stats=st)


def summarize(model_name, samples, cells, seed):
    """min ESS_bulk / max R-hat over the reported sites (names.POSTERIOR_DIMS), and where."""
    full = complete(model_name, samples, cells, seed)
    worst_ess, worst_rhat = (np.inf, None), (0.0, None)
    for site in names.POSTERIOR_DIMS[model_name]:
        x = np.asarray(full[site])
        x = x.reshape(x.shape[0], x.shape[1], -1)
        ds = az.convert_to_dataset({"x": x})
        ess = az.ess(ds, method="bulk")["x"].values
        rh = az.rhat(ds)["x"].values
        i = int(np.nanargmin(ess))
        if ess[i] < worst_ess[0]:
            worst_ess = (float(ess[i]), f"{site}[{i}]")
        j = int(np.nanargmax(rh))
        if rh[j] > worst_rhat[0]:
            worst_rhat = (float(rh[j]), f"{site}[{j}]")
    return worst_ess, worst_rhat


def run_numpyro(model, lik, model_name, method, seed, warmup):
    dense = {"np-diag": False, "np-dense": True, "np-block": BLOCKS[model_name]}.get(method, False)
    inits, map_iters, imm, hess_grads = None, 0, None, 0
    if method in ("np-diag-map", "np-diag-laplace"):  # the package's --init map: MAP + N(0, 0.1) jitter
        from lineup_numpyro.inference.approx import flatten_model, map_inits

        inits, opt = map_inits(model, lik, CHAINS, seed)
        map_iters = int(opt.iterations)
        if method == "np-diag-laplace":  # and the initial inverse mass: diag of the inverse Hessian at MAP
            flat = flatten_model(model, lik, seed)
            h = np.asarray(jax.jit(jax.hessian(flat.potential))(jnp.asarray(opt.x)))
            try:
                imm = np.diag(np.linalg.inv(h))
                if not np.all(imm > 0):
                    raise np.linalg.LinAlgError
            except np.linalg.LinAlgError:
                imm = 1.0 / np.maximum(np.diag(h), 1e-8)
            imm = jnp.asarray(imm)
            hess_grads = 2 * opt.x.size  # one Hessian = D Hessian-vector products ~ 2 D gradients
    kernel = NUTS(model, target_accept_prob=TARGET[model_name], max_tree_depth=MAX_DEPTH, dense_mass=dense,
                  inverse_mass_matrix=imm)
    mcmc = MCMC(kernel, num_warmup=warmup, num_samples=DRAWS, num_chains=CHAINS, progress_bar=False,
                chain_method="parallel")
    t0 = time.perf_counter()
    mcmc.warmup(jax.random.PRNGKey(seed), lik, extra_fields=("num_steps", "diverging"), collect_warmup=True,
                init_params=inits)
    wex = mcmc.get_extra_fields(group_by_chain=True)
    t1 = time.perf_counter()
    mcmc.run(mcmc.post_warmup_state.rng_key, lik, extra_fields=("num_steps", "diverging"))
    t2 = time.perf_counter()
    ex = mcmc.get_extra_fields(group_by_chain=True)
    samples = {k: np.asarray(v) for k, v in mcmc.get_samples(group_by_chain=True).items()}
    step = np.asarray(mcmc.last_state.adapt_state.step_size)
    return dict(
        samples=samples,
        # MAP's gradients counted as 2 per L-BFGS iteration (one per step plus line search; an estimate)
        warm_grads=int(np.sum(wex["num_steps"])) + 2 * map_iters + hess_grads, samp_grads=int(np.sum(ex["num_steps"])),
        warm_div=int(np.sum(wex["diverging"])), div=int(np.sum(ex["diverging"])), map_iterations=map_iters,
        warm_s=t1 - t0, samp_s=t2 - t1, step_size=float(np.mean(step)),
        mean_steps=float(np.mean(ex["num_steps"])),
    )


def run_blackjax(model, lik, model_name, method, seed, warmup):
    import blackjax
    from blackjax.adaptation.low_rank_adaptation import build_growing_window_schedule

    key = jax.random.PRNGKey(seed)
    k_init, k_warm, k_samp = jax.random.split(key, 3)
    # NumPyro's default init (uniform in [-2, 2] unconstrained), one per chain
    info = initialize_model(jax.random.split(k_init, CHAINS), model, model_args=(lik,), dynamic_args=False)
    potential_fn, postprocess_fn = info.potential_fn, info.postprocess_fn
    z0 = info.param_info.z

    def logdensity(z):
        return -potential_fn(z)

    ta = TARGET[model_name]
    if method == "bj-diag":
        adapt = blackjax.window_adaptation(blackjax.nuts, logdensity, is_mass_matrix_diagonal=True,
                                           target_acceptance_rate=ta)
    elif method == "bj-dense":
        adapt = blackjax.window_adaptation(blackjax.nuts, logdensity, is_mass_matrix_diagonal=False,
                                           target_acceptance_rate=ta)
    elif method == "bj-lowrank":
        adapt = blackjax.window_adaptation_low_rank(blackjax.nuts, logdensity, target_acceptance_rate=ta)
    elif method == "bj-lowrank-nutpie":  # nutpie's schedule, partial-forget buffer and gradient init
        adapt = blackjax.window_adaptation_low_rank(
            blackjax.nuts, logdensity, target_acceptance_rate=ta, gradient_based_init=True,
            schedule_fn=lambda n, s=np.asarray(build_growing_window_schedule(warmup)): s,  # numpy: pmap-safe
            buffer_policy="accumulating")
    else:
        raise SystemExit(method)

    def one_chain(kw, ks, z):
        (state, params), winfo = adapt.run(kw, z, num_steps=warmup)
        kernel = blackjax.nuts(logdensity, **params).step

        def step(state, k):
            state, i = kernel(k, state)
            return state, (state.position, i.num_integration_steps, i.is_divergent, i.acceptance_rate)

        _, (pos, nsteps, div, acc) = jax.lax.scan(step, state, jax.random.split(ks, DRAWS))
        draws = jax.vmap(postprocess_fn)(pos)
        w = winfo.info
        return draws, nsteps, div, acc, w.num_integration_steps, w.is_divergent, params["step_size"]

    f = jax.pmap(one_chain)
    t0 = time.perf_counter()
    out = f(jax.random.split(k_warm, CHAINS), jax.random.split(k_samp, CHAINS), z0)
    jax.block_until_ready(out)
    t = time.perf_counter() - t0
    draws, nsteps, div, acc, wsteps, wdiv, eps = out
    return dict(
        samples={k: np.asarray(v) for k, v in draws.items()},
        warm_grads=int(np.sum(wsteps)), samp_grads=int(np.sum(nsteps)),
        warm_div=int(np.sum(wdiv)), div=int(np.sum(div)),
        warm_s=None, samp_s=None, total_s_incl_compile=t, step_size=float(np.mean(eps)),
        mean_steps=float(np.mean(nsteps)), mean_accept=float(np.mean(acc)),
    )


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model", choices=names.MODELS)
    ap.add_argument("data", choices=["sim", "quick"])
    ap.add_argument("method")
    ap.add_argument("--seeds", default="1,2")
    ap.add_argument("--warmup", type=int, default=1000)
    ap.add_argument("--tag", default="")
    ap.add_argument("--out", default=str(HERE / "results.jsonl"))
    a = ap.parse_args()
    st, cells, model, lik = setup(a.model, a.data)
    for seed in [int(s) for s in a.seeds.split(",")]:
        t0 = time.perf_counter()
        runner = run_numpyro if a.method.startswith("np-") else run_blackjax
        r = runner(model, lik, a.model, a.method, seed, a.warmup)
        wall = time.perf_counter() - t0
        (ess, ess_at), (rhat, rhat_at) = summarize(a.model, r.pop("samples"), cells, seed)
        grads = r["warm_grads"] + r["samp_grads"]
        rec = dict(
            model=a.model, data=a.data, method=a.method, tag=a.tag, seed=seed, warmup=a.warmup, draws=DRAWS,
            chains=CHAINS, target_accept=TARGET[a.model], min_ess_bulk=round(ess, 1), min_ess_at=ess_at,
            max_rhat=round(rhat, 4), rhat_at=rhat_at, grads=grads,
            ess_per_1k_grads=round(1000 * ess / grads, 3), wall_s=round(wall, 1),
            ess_per_s=round(ess / wall, 2), **{k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()},
        )
        print(json.dumps(rec), flush=True)
        with open(a.out, "a") as f:
            f.write(json.dumps(rec) + "\n")


if __name__ == "__main__":
    main()
