"""Experiment: a 'wall map' for exp-link cells whose data bound beta from above.

For a nearly non-centred cell (p small) beta = exp(mu + tau e), and the likelihood adds
~ c beta^2 / 2 (c = X'X[j, j] / s2): in e an exponential wall at e_w = (log beta_w - mu) / tau,
beta_w = 1 / sqrt(c), whose steepness grows with tau. The cell's e is drawn through u:
e = u below e_w, and e_w + log1p(2 tau (u - e_w)) / (2 tau) above it, so that beta^2 grows
linearly in u beyond the wall (a C1, exact change of variables; -> identity as tau -> 0).

Usage: PWALL=0.1 python wall_map.py strat 1,2,3,4 --ta 0.95 --tag wall

It patches the model's internals as they were at commit 641e066; they have since been
restructured, so run it there: `git worktree add /tmp/hg 641e066`, then from /tmp/hg.
"""

import os, sys, json, time, argparse

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=4")
import jax

jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp
import numpy as np, numpyro, arviz as az
import numpyro.distributions as dist
from numpyro.infer import MCMC, NUTS
from lineup_numpyro.data.suffstats import SuffStats
from lineup_numpyro.models.cells import Cells
from lineup_numpyro.models import model as M
from lineup_numpyro.models.whitening import Whitening, _pooled_fit

ap = argparse.ArgumentParser()
ap.add_argument("data")
ap.add_argument("seeds")
ap.add_argument("--ta", type=float, default=0.95)
ap.add_argument("--tag", default="wall")
a = ap.parse_args()
z = np.load(f"/work/main/benchmarks/experiments/hierarchical_geometry/data_{a.data}.npz")
st = SuffStats(z["n"], z["xtx"], z["xty"], z["yty"], (np.abs(np.einsum("mjj->mj", z["xtx"])) > 0).astype(np.int64))
cells = Cells.from_stats(st)
w = Whitening.from_stats(st)
PWALL = float(os.environ.get("PWALL", "0.1"))
_, s2 = _pooled_fit(st)
c = np.einsum("mjj->mj", z["xtx"]) / s2
prec = w.precision.copy()
wall = (prec < PWALL) & (c > 0)
wall[:, 0] = False
prec[wall] = 0.0  # wall cells fully non-centred, then mapped
w = Whitening(prec, w.location)
log_bw = -0.5 * np.log(np.where(c > 0, c, 1.0))
WALL = {}
for fam in ("beta_off", "beta_def"):
    idx = cells.index(fam)
    WALL[fam] = (jnp.asarray(wall.reshape(-1)[idx]), jnp.asarray(log_bw.reshape(-1)[idx]))
print("wall cells", int(wall.sum()), "of", int(cells.touched[:, 1:].sum()), file=sys.stderr)


def population_and_cells(family, short, tau, loc, sd, cells, w):
    _, j = cells.matchup_archetype(family)
    p, ehat = (jnp.asarray(v) for v in w.family(family, cells.index(family)))
    shape = () if family == "beta_0" else (8,)
    z_mu = jnp.reshape(numpyro.sample(f"z_mu_{short}", dist.Normal(0.0, 1.0).expand(shape).to_event(len(shape))), (-1,))
    zc = M._touched(f"z_{short}_data", dist.Normal(0.0, 1.0), cells, family)
    t = tau[j]
    aa = p * t**2
    pr = 1.0 / sd**2 + jnp.zeros_like(tau).at[j].add(p / (1.0 + aa))
    mean = (loc / sd**2 + jnp.zeros_like(tau).at[j].add(p * ehat / (1.0 + aa))) / pr
    mu = mean + z_mu / jnp.sqrt(pr)
    e = p * t * (ehat - mu[j]) / (1.0 + aa) + zc / jnp.sqrt(1.0 + aa)
    log_jac = -0.5 * jnp.sum(jnp.log(pr)) - 0.5 * jnp.sum(jnp.log1p(aa))
    if family in WALL:
        is_wall, lbw = WALL[family]
        ew = (lbw - mu[j]) / t
        x = jnp.maximum(2.0 * t * (e - ew), 0.0)
        beyond = is_wall & (e > ew)
        e = jnp.where(beyond, ew + jnp.log1p(x) / (2.0 * t), e)
        log_jac = log_jac - jnp.sum(jnp.where(beyond, jnp.log1p(x), 0.0))
    numpyro.factor(
        f"whitening_{short}",
        dist.Normal(loc, sd).log_prob(mu).sum()
        + dist.Normal(0.0, 1.0).log_prob(e).sum()
        + log_jac
        - dist.Normal(0.0, 1.0).log_prob(z_mu).sum()
        - dist.Normal(0.0, 1.0).log_prob(zc).sum(),
    )
    return mu, e, mu[j] + t * e


M._population_and_cells = population_and_cells
model = M.get_model("hierarchical", cells, w)
lik = M.make_likelihood("suffstats", stats=st)
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
        pwall=PWALL,
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
