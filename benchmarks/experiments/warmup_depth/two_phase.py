"""Cap the tree depth only in the first K warm-up iterations (two NUTS kernels, one state).

python benchmarks/experiments/warmup_depth/two_phase.py DATA K CAP [SEED]
(DATA: a possessions file or `sim`; K=0: no cap; K=1000: the whole warm-up, as --warmup-max-tree-depth.)
Chains vectorised in one program (4 chains), matchup model, 1000 + 1000. Prints gradients of
each phase, the final step size, min ESS_bulk and max R-hat.
"""

import json
import sys
import time

from lineup_numpyro.inference.runtime import configure_jax

configure_jax("cpu", 4)
import jax  # noqa: E402
import numpy as np  # noqa: E402
from jax import lax  # noqa: E402
from numpyro.infer import NUTS  # noqa: E402

from lineup_numpyro.data.suffstats import SuffStats, from_file  # noqa: E402
from lineup_numpyro.inference.diagnostics import ess_bulk, rhat  # noqa: E402
from lineup_numpyro.models.cells import Cells  # noqa: E402
from lineup_numpyro.models.model import SuffStatsLikelihood, get_model  # noqa: E402
from lineup_numpyro.models.simulate import simulate_season  # noqa: E402

data, k, cap = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
seed = int(sys.argv[4]) if len(sys.argv) > 4 else 1
stats = SuffStats.from_possessions(simulate_season()[0]) if data == "sim" else from_file(data)
cells = Cells.from_stats(stats)
model = get_model("matchup", cells)
lik = SuffStatsLikelihood.from_stats(stats)
W, D, C = 1000, 1000, 4
early = NUTS(model, target_accept_prob=0.9, max_tree_depth=(cap, 10))
main = NUTS(model, target_accept_prob=0.9, max_tree_depth=10)
keys = jax.random.split(jax.random.PRNGKey(seed), C)
init = jax.vmap(lambda key: early.init(key, W, None, (lik,), {}))
jax.vmap(lambda key: main.init(key, W, None, (lik,), {}))(keys)  # sets main's closures
state = init(keys)


def run(kernel, n):
    def one(s):
        def step(s, _):
            s = kernel.sample(s, (lik,), {})
            return s, (s.num_steps, s.z)

        return lax.scan(step, s, None, length=n)

    return jax.jit(jax.vmap(one))


t0 = time.perf_counter()
steps = {}
if k > 0:
    state, (n1, _) = run(early, k)(state)
    steps["early"] = int(n1.sum())
state, (n2, _) = run(main, W - k)(state)
steps["rest"] = int(n2.sum())
t1 = time.perf_counter()
state, (n3, z) = run(main, D)(state)
t2 = time.perf_counter()
x = np.concatenate([np.asarray(v).reshape(C, D, -1) for v in z.values()], axis=-1)
print(
    json.dumps(
        {
            "data": data,
            "k": k,
            "cap": cap,
            "seed": seed,
            "warm_grads": steps,
            "samp_grads": int(n3.sum()),
            "step": float(np.mean(state.adapt_state.step_size)),
            "min_ess": float(np.min(ess_bulk(x))),
            "max_rhat": float(np.max(rhat(x))),
            "warm_s": round(t1 - t0, 1),
            "samp_s": round(t2 - t1, 1),
        }
    )
)
