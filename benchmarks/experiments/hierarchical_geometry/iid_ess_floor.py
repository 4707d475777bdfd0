"""How much ESS can a scale-like quantity get at all? NUTS on 647 independent standard normals
(the hierarchical model's dimension on the simulated season), 4 chains x (1,000 + 1,000), target
acceptance 0.9: the smallest and median ESS_bulk of |x_i| and of x_i over the 647 coordinates.

    python benchmarks/experiments/hierarchical_geometry/iid_ess_floor.py
"""

import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=4")
import arviz as az  # noqa: E402
import jax  # noqa: E402
import numpy as np  # noqa: E402
import numpyro  # noqa: E402
import numpyro.distributions as dist  # noqa: E402
from numpyro.infer import MCMC, NUTS  # noqa: E402

jax.config.update("jax_enable_x64", True)
D = 647


def model():
    numpyro.sample("x", dist.Normal(0, 1).expand([D]).to_event(1))


mcmc = MCMC(NUTS(model, target_accept_prob=0.9), num_warmup=1000, num_samples=1000, num_chains=4, progress_bar=False)
mcmc.run(jax.random.PRNGKey(1))
x = np.asarray(mcmc.get_samples(group_by_chain=True)["x"])
ess_abs = np.array([az.ess(np.abs(x[..., i]), method="bulk") for i in range(D)])
ess_x = np.array([az.ess(x[..., i], method="bulk") for i in range(D)])
print(f"ESS_bulk of |x|: min {ess_abs.min():.0f}, median {np.median(ess_abs):.0f}; "
      f"of x: min {ess_x.min():.0f}, median {np.median(ess_x):.0f}")
