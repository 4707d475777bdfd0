"""Experiment: view exp-link 'wall cells' at their wall instead of at their mode.

A cell whose data bound beta from above (c = X'X[j, j] / s2 large) but whose plug-in mode sits
at a tiny beta gets p ~ 0 from the Gauss-Newton fit (curvature of the flat side), so it is
non-centred, and its wall in e steepens with tau. Here such cells (p < PMAX, beta_w =
1/sqrt(c) < BWMAX) get the curvature of their wall instead: p = PW, ehat = log beta_w. Any
(p, ehat) is exact; only the coordinates change. Band rule applied first (as the package).

Usage: PW=1 NMAX=50 python wall_view.py strat 7,8 --ta 0.98  (NMAX: only matchups with fewer possessions)

It patches the model's internals as they were at commit 0dbabfa; they have since been
restructured, so run it there: `git worktree add /tmp/hg 0dbabfa`, then from /tmp/hg.
"""

import os, sys, json, time, argparse

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=4")
import jax

jax.config.update("jax_enable_x64", True)
import numpy as np, arviz as az
from numpyro.infer import MCMC, NUTS
from lineup_numpyro.data.suffstats import SuffStats
from lineup_numpyro.models.cells import Cells
from lineup_numpyro.models.model import get_model, make_likelihood
from lineup_numpyro.models.whitening import Whitening, _pooled_fit

ap = argparse.ArgumentParser()
ap.add_argument("data")
ap.add_argument("seeds")
ap.add_argument("--ta", type=float, default=0.98)
ap.add_argument("--tag", default="wallview")
a = ap.parse_args()
z = np.load(f"/work/main/benchmarks/experiments/hierarchical_geometry/data_{a.data}.npz")
st = SuffStats(z["n"], z["xtx"], z["xty"], z["yty"], (np.abs(np.einsum("mjj->mj", z["xtx"])) > 0).astype(np.int64))
cells = Cells.from_stats(st)
w = Whitening.from_stats(st)
PW, PMAX, BWMAX, NMAX = (float(os.environ.get(k, d)) for k, d in (("PW", "1"), ("PMAX", "0.1"), ("BWMAX", "0.2"), ("NMAX", "1e9")))
_, s2 = _pooled_fit(st)
c = np.einsum("mjj->mj", z["xtx"]) / s2
bw = 1.0 / np.sqrt(np.where(c > 0, c, 1e-300))
wall = (w.precision < PMAX) & (c > 0) & (bw < BWMAX)
wall[:, 0] = False
prec, loc = w.precision.copy(), w.location.copy()
prec[wall] = PW
loc[wall] = np.log(bw[wall])
w = Whitening(prec, loc)
print("wall cells", int(wall.sum()), "of", int(cells.touched[:, 1:].sum()), file=sys.stderr)
model = get_model("hierarchical", cells, w)
lik = make_likelihood("suffstats", stats=st)
m = MCMC(NUTS(model, target_accept_prob=a.ta), num_warmup=1000, num_samples=1000, num_chains=4, progress_bar=False)
for seed in [int(x) for x in a.seeds.split(",")]:
    t0 = time.time()
    m.run(jax.random.PRNGKey(seed), lik, extra_fields=("diverging", "num_steps"))
    wall_s = time.time() - t0
    s = m.get_samples(group_by_chain=True)
    ex = m.get_extra_fields(group_by_chain=True)
    keep = {k: np.asarray(v) for k, v in s.items() if not k.startswith("whitening")}
    idata = az.from_dict(posterior=keep)
    es = az.ess(idata)
    rh = az.rhat(idata)
    rhat = max(float(np.max(rh[k].values)) for k in keep if not k.startswith("z_"))
    low = sorted(
        (float(np.min(es[k].values)), k, int(np.argmin(es[k].values))) for k in keep if not k.startswith("z_")
    )[:4]
    res = dict(
        data=a.data,
        seed=seed,
        ta=a.ta,
        tag=a.tag,
        pw=PW,
        pmax=PMAX,
        bwmax=BWMAX,
        walls=int(wall.sum()),
        div=int(ex["diverging"].sum()),
        rhat=round(rhat, 4),
        steps=float(ex["num_steps"].mean()),
        eps=round(float(np.mean(m.last_state.adapt_state.step_size)), 4),
        low=low,
        wall=round(wall_s, 1),
    )
    print(json.dumps(res))
    open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "results_wall.jsonl"), "a").write(
        json.dumps(res) + "\n"
    )
