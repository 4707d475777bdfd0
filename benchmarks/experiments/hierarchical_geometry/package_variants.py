"""Quick variants of the package's whitened hierarchical model on cached statistics."""
# Usage: PMIN=4 python package_variants.py multi 1,2 --tag pmin4  (PCELL, PCOL, PMIN, RULE: see README)
import os, sys, json, time, argparse
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=4")
import jax; jax.config.update("jax_enable_x64", True)
import numpy as np, numpyro, arviz as az
from numpyro.infer import MCMC, NUTS
from lineup_numpyro.data.suffstats import SuffStats
from lineup_numpyro.models.cells import Cells
from lineup_numpyro.models.model import get_model, make_likelihood
from lineup_numpyro.models.whitening import Whitening
ap = argparse.ArgumentParser(); ap.add_argument("data"); ap.add_argument("seeds")
ap.add_argument("--warm", type=int, default=1000); ap.add_argument("--dense", default="False"); ap.add_argument("--ta", type=float, default=0.99)
ap.add_argument("--tag", default="")
a = ap.parse_args()
z = np.load(f"/work/main/benchmarks/experiments/hierarchical_geometry/data_{a.data}.npz")
st = SuffStats(z["n"], z["xtx"], z["xty"], z["yty"], (np.abs(np.einsum("mjj->mj", z["xtx"])) > 0).astype(np.int64))
cells = Cells.from_stats(st); w = Whitening.from_stats(st)
if os.environ.get("PCELL"):
    prec = w.precision.copy(); prec[24, 4] *= float(os.environ["PCELL"]); w = Whitening(prec, w.location)
if os.environ.get("PCOL"):
    prec = w.precision.copy(); prec[:, 4] *= float(os.environ["PCOL"]); w = Whitening(prec, w.location)
if os.environ.get("PMIN"):
    prec = w.precision.copy(); low = (prec < float(os.environ["PMIN"])); low[:, 0] = False; prec[low] = 0.0; w = Whitening(prec, w.location)
RULES = {}
def colk(w, k_min, tau_ref=1.0):
    """Exp-link columns whose tau the data barely inform -> whole column non-centred (p = 0).
    k_j = sum_m (a/(1+a))^2, a = p_mj tau_ref^2: roughly the number of cells that see tau_j."""
    a = w.precision * tau_ref**2
    k = ((a / (1 + a)) ** 2).sum(0)
    weak = (k < k_min) & (np.arange(w.precision.shape[1]) > 0)
    prec = w.precision.copy(); prec[:, weak] = 0.0
    return Whitening(prec, w.location), np.flatnonzero(weak).tolist()
def band(w, lo, hi, mid, pmin, tau_ref=1.0):
    """k_j as in colk. Exp-link columns with lo <= k_j < hi (a few cells see tau_j): whole column
    non-centred; hi <= k_j < mid: cells with p < pmin non-centred; k_j < lo (no cell sees tau,
    p already ~0 but for a few wall cells) and k_j >= mid: as the package."""
    a = w.precision * tau_ref**2
    k = ((a / (1 + a)) ** 2).sum(0)
    exp_link = np.arange(w.precision.shape[1]) > 0
    weak = (k >= lo) & (k < hi) & exp_link
    middle = (k >= hi) & (k < mid) & exp_link
    prec = w.precision.copy(); prec[:, weak] = 0.0
    prec[(prec < pmin) & middle[None, :]] = 0.0
    return Whitening(prec, w.location), [np.flatnonzero(weak).tolist(), np.flatnonzero(middle).tolist()]
if os.environ.get("RULE"):
    name, _, arg = os.environ["RULE"].partition(":")
    if name == "colk":
        w, flagged = colk(w, float(arg or 5)); RULES["flagged"] = flagged
    elif name == "band":
        lo, hi, mid, pmin = (float(x) for x in arg.split(":"))
        w, flagged = band(w, lo, hi, mid, pmin); RULES["flagged"] = flagged
    else:
        raise SystemExit(f"unknown RULE {name}")
from lineup_numpyro.config import Priors
priors = Priors(tau=float(os.environ["TAU"])) if os.environ.get("TAU") else Priors()
RULES["tau_prior"] = priors.tau
model = get_model("hierarchical", cells, w, priors=priors)
lik = make_likelihood("suffstats", stats=st)
m = MCMC(NUTS(model, target_accept_prob=a.ta, dense_mass=eval(a.dense)), num_warmup=a.warm, num_samples=1000, num_chains=4, progress_bar=False)
for seed in [int(x) for x in a.seeds.split(",")]:
    t = time.time(); m.run(jax.random.PRNGKey(seed), lik, extra_fields=("diverging", "num_steps")); wall = time.time() - t
    s = m.get_samples(group_by_chain=True); ex = m.get_extra_fields(group_by_chain=True)
    keep = {k: np.asarray(v) for k, v in s.items() if not k.startswith("whitening")}
    idata = az.from_dict(posterior=keep); es = az.ess(idata); rh = az.rhat(idata)
    rhat = max(float(np.max(rh[k].values)) for k in keep if not k.startswith("z_"))
    low = sorted((float(np.min(es[k].values)), k, int(np.argmin(es[k].values))) for k in keep if not k.startswith("z_"))[:4]
    res = dict(data=a.data, seed=seed, warm=a.warm, dense=a.dense, ta=a.ta, tag=a.tag, rule=os.environ.get("RULE", ""), div=int(ex["diverging"].sum()), rhat=round(rhat, 4), steps=float(ex["num_steps"].mean()), eps=round(float(np.mean(m.last_state.adapt_state.step_size)), 4), low=low, wall=round(wall,1), **RULES)
    print(json.dumps(res)); open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "results_package.jsonl"), "a").write(json.dumps(res) + "\n")
if "--save" in os.environ.get("SAVE",""): np.savez("/tmp/samples.npz", **keep)
