import os
HERE = os.path.dirname(os.path.abspath(__file__))
import sys, time, json, argparse, os
import numpy as np
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import os
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=4")
import jax
jax.config.update("jax_enable_x64", True)
import numpyro
from numpyro.infer import MCMC, NUTS
import arviz as az
import final_model as fm

ap = argparse.ArgumentParser()
ap.add_argument("data"); ap.add_argument("method"); ap.add_argument("seed", type=int)
ap.add_argument("--warm", type=int, default=500); ap.add_argument("--draws", type=int, default=500)
ap.add_argument("--ta", type=float, default=0.9); ap.add_argument("--nomu", action="store_true")
ap.add_argument("--rint", type=float, default=0.25); ap.add_argument("--rarch", type=float, default=1.0)
ap.add_argument("--chain", default="parallel"); ap.add_argument("--kw", default="{}"); ap.add_argument("--tag", default=""); ap.add_argument("--init", type=float, default=2.0); ap.add_argument("--dense", default="False")
args = ap.parse_args()

z = np.load(os.path.join(HERE, f"data_{args.data}.npz"))
class S: pass
st = S(); st.n, st.xtx, st.xty, st.yty = z["n"], z["xtx"], z["xty"], z["yty"]
pl = fm.plan(st, method=args.method, whiten_mu=not args.nomu, r_int=args.rint, r_arch=args.rarch, **eval(args.kw))
lik = fm.Likelihood.from_stats(st)
mcmc = MCMC(NUTS(fm.hierarchical, target_accept_prob=args.ta, dense_mass=eval(args.dense), init_strategy=numpyro.infer.init_to_uniform(radius=args.init)), num_warmup=args.warm, num_samples=args.draws,
            num_chains=4, progress_bar=False, chain_method=args.chain)
t = time.time()
mcmc.run(jax.random.PRNGKey(args.seed), lik, pl, extra_fields=("diverging", "num_steps"))
wall = time.time() - t
ex = mcmc.get_extra_fields(group_by_chain=True)
s = {k: np.asarray(v) for k, v in mcmc.get_samples(group_by_chain=True).items()}
rec = fm.recover(s, pl)
post = {k: v for k, v in s.items() if k not in ("mu_", "tau_signed", "tau_x") and not (k == "u" and args.method == "signed")}
post["mu"] = rec["mu"]
post["beta_t"] = rec["beta"][:, :, pl.rows, pl.cols]
post["e_t"] = rec["e"][:, :, pl.rows, pl.cols]
idata = az.from_dict(posterior=post)
rh = az.rhat(idata); es = az.ess(idata, method="bulk")
def worst(ds, f, keys):
    out = {}
    for k in keys:
        v = np.asarray(ds[k]).ravel()
        out[k] = float(f(v))
    return out
keys = [k for k in post if k != "e_t"]
rmax = worst(rh, np.nanmax, keys); emin = worst(es, np.nanmin, keys)
em_e = float(np.nanmin(np.asarray(es["e_t"]))); rm_e = float(np.nanmax(np.asarray(rh["e_t"])))
div = int(ex["diverging"].sum())
low = []
for k in keys:
    v = np.asarray(es[k]).ravel()
    for i in np.argsort(v)[:3]: low.append((float(v[i]), k, int(i)))
low.sort()
res = dict(low=[f"{k}[{i}]={v:.0f}" for v, k, i in low[:6]], data=args.data, method=args.method + ("_nomu" if args.nomu else ""), seed=args.seed, warm=args.warm, draws=args.draws,
           ta=args.ta, tag=args.tag, init=args.init, div=div, steps=float(ex["num_steps"].mean()), rhat=max(rmax.values()), ess=min(emin.values()),
           ess_by=emin, rhat_e=rm_e, ess_e=em_e, wall=round(wall, 1), K=len(pl.rows))
print(json.dumps(res))
with open(os.path.join(HERE, "results.jsonl"), "a") as f: f.write(json.dumps(res) + "\n")
# where divergences sit
if div:
    dv = np.asarray(ex["diverging"]).reshape(-1)
    rows = []
    for k, v in post.items():
        v = np.asarray(v).reshape(dv.size, -1)
        zz = (v[dv].mean(0) - v.mean(0)) / (v.std(0) + 1e-12)
        for i in range(v.shape[1]):
            rows.append((abs(zz[i]), k, i, zz[i]))
    rows.sort(reverse=True)
    for r in rows[:10]:
        k, i = r[1], r[2]
        extra = f" cell(m={pl.rows[i]},j={pl.cols[i]}) p={pl.p[i]:.3g}" if k in ("u", "e", "e_t", "beta_t") else ""
        print("  %s[%d] z=%.2f%s" % (k, i, r[3], extra))
    print("  div per chain", np.asarray(ex["diverging"]).sum(1))
