"""Do benchmarks/pymc_models.py and the package's models define the same posterior?

At random points, differences of the log density (prior and likelihood, on the constrained
scale, no Jacobian) between points must agree to rounding: the two differ at most by a
constant. The package's hierarchical model is taken in its plain non-centred coordinates
(whitening None: z_mu = (mu - loc) / sd, z = e), as the PyMC model writes it.

    python benchmarks/pymc_parity.py [DATA]     (needs the [nutpie] extra; default quick_sample_10k)
"""

from __future__ import annotations

import sys
from functools import partial
from pathlib import Path

import numpy as np

from lineup_numpyro.inference.runtime import configure_jax

configure_jax("cpu", 1)
from numpyro.infer.util import log_density  # noqa: E402
from pymc_models import pymc_model  # noqa: E402

from lineup_numpyro.config import Priors  # noqa: E402
from lineup_numpyro.data.suffstats import from_file  # noqa: E402
from lineup_numpyro.models.cells import Cells  # noqa: E402
from lineup_numpyro.models.model import SuffStatsLikelihood, get_model, hierarchical  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "quick_sample_10k.csv"
SIGNED = ("beta_0", "beta_0_data", "e_0_data", "e_off_data", "e_def_data", "mu_0")


def random_point(model, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """A plausible value of every free variable of the PyMC model, on the constrained scale."""
    point = {}
    for v in model.free_RVs:
        shape = tuple(v.shape.eval())
        if v.name in SIGNED:
            point[v.name] = rng.normal(0.0, 0.5, shape)
        elif v.name in ("mu_off", "mu_def"):
            point[v.name] = rng.normal(-3.0, 0.3, shape)
        elif v.name == "sigma":
            point[v.name] = np.array(1.2 + rng.uniform())
        else:  # positive coefficients and scales
            point[v.name] = np.abs(rng.normal(0.05, 0.02, shape))
    return point


def numpyro_log_density(name: str, stats, cells: Cells, point: dict) -> float:
    lik = SuffStatsLikelihood.from_stats(stats)
    if name != "hierarchical":
        return float(log_density(get_model(name, cells), (lik,), {}, point)[0])
    p = Priors()
    sites = {k: point[k] for k in ("tau_0", "tau_off", "tau_def", "sigma")}
    sites |= {
        "z_mu_0": point["mu_0"] / p.beta_0,
        "z_mu_off": (point["mu_off"] - p.mu_loc) / p.mu_sd,
        "z_mu_def": (point["mu_def"] - p.mu_loc) / p.mu_sd,
        "z_0_data": point["e_0_data"],
        "z_off_data": point["e_off_data"],
        "z_def_data": point["e_def_data"],
    }
    return float(log_density(partial(hierarchical, cells=cells, whitening=None), (lik,), {}, sites)[0])


def main(path: str) -> None:
    stats = from_file(path)
    cells = Cells.from_stats(stats)
    rng = np.random.default_rng(0)
    for name in ("simplified", "matchup", "hierarchical"):
        model = pymc_model(name, stats)
        logp = model.compile_logp(jacobian=False)  # takes the unconstrained values: log for positive ones
        values = []
        for _ in range(3):
            point = random_point(model, rng)
            given = {}
            for v in model.free_RVs:
                value_name = model.rvs_to_values[v].name
                given[value_name] = np.log(point[v.name]) if value_name.endswith("_log__") else point[v.name]
            values.append((float(logp(given)), numpyro_log_density(name, stats, cells, point)))
        gaps = [abs((a - values[0][0]) - (b - values[0][1])) for a, b in values[1:]]
        scale = max(abs(a - values[0][0]) for a, _ in values[1:])
        print(f"{name}: differences between points agree to {max(gaps):.1e} (they are ~{scale:,.0f})")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else str(DATA))
