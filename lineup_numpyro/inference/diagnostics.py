"""Summaries of posterior draws under the Stan names: mean, sd, quantiles, R-hat, ESS, MCSE.

Used by the run directory's coefficients.csv and by the Stan parity check alike.
"""

from __future__ import annotations

import math

import arviz as az
import numpy as np
import pandas as pd

from lineup_numpyro import names


def parameter_summary(posterior, model: str) -> pd.DataFrame:
    """mean, sd, 5/50/95% quantiles, R-hat, ESS and MCSE of every scalar parameter of `model`.

    `posterior` is an xarray Dataset of draws (chain, draw, ...) holding the model's sites;
    rows come in Stan's order under Stan's names, with the 0-based matchup of each row
    (None for parameters not indexed by matchup).
    """
    # R-hat compares chains: with one there is none (ArviZ would warn and give NaN)
    rhat = az.rhat(posterior) if posterior.sizes["chain"] > 1 else None
    ess_bulk = az.ess(posterior, method="bulk")
    ess_tail, mcse = az.ess(posterior, method="tail"), az.mcse(posterior, method="mean")
    rows = []
    for var, dims in names.POSTERIOR_DIMS[model].items():
        draws = posterior[var].values  # (chains, draws, *shape)
        flat = draws.reshape(draws.shape[0] * draws.shape[1], -1)
        q05, q50, q95 = np.quantile(flat, [0.05, 0.5, 0.95], axis=0)
        for j, index in enumerate(np.ndindex(*draws.shape[2:])):
            rows.append(
                {
                    "parameter": names.stan_name(var, index),
                    "mean": flat[:, j].mean(),
                    "sd": flat[:, j].std(ddof=1),
                    "5%": q05[j],
                    "50%": q50[j],
                    "95%": q95[j],
                    "r_hat": float(rhat[var].values.reshape(-1)[j]) if rhat is not None else np.nan,
                    "ess_bulk": float(ess_bulk[var].values.reshape(-1)[j]),
                    "ess_tail": float(ess_tail[var].values.reshape(-1)[j]),
                    "mcse_mean": float(mcse[var].values.reshape(-1)[j]),
                    "matchup": index[0] if dims and dims[0] == "matchup" else None,
                }
            )
    return pd.DataFrame(rows)


# When a NUTS run counts as converged (Vehtari et al. 2021): R-hat at most RHAT_MAX on every
# parameter, and ESS_bulk at least ESS_PER_CHAIN per chain (400 for 4 chains), so a short
# exploratory run with fewer chains is held to a bar it can reach; and no divergent transition.
RHAT_MAX = 1.01
ESS_PER_CHAIN = 100


def ess_min(chains: int) -> int:
    return ESS_PER_CHAIN * int(chains)


def convergence_problems(
    max_rhat: float | None,
    min_ess_bulk: float,
    divergences: int,
    chains: int,
    draws: int,
    target_accept: float | None = None,
    where: str = "",
) -> list[str]:
    """What keeps a run (or one matchup's parameters: `where`) from converging, each with the
    advice that lifts that limit; empty when it converged. R-hat needs 2 chains: with one, the
    missing check is the problem."""
    problems = []
    where = f" ({where})" if where else ""
    if divergences:
        higher = f" (now {target_accept:g})" if target_accept is not None else ""
        problems.append(
            f"{divergences} divergent transitions: the sampler could not follow the posterior; raise "
            f"--target-accept{higher} toward 0.99, or use another parameterization"
        )
    if max_rhat is None:
        problems.append(
            "one chain: R-hat needs at least 2 chains, so convergence was not checked; rerun with --chains 2 or more"
        )
    elif max_rhat > RHAT_MAX:
        problems.append(
            f"R-hat {max_rhat:.3f} > {RHAT_MAX}{where}: the chains disagree; give more --warmup and more --draws"
        )
    need = ess_min(chains)
    if min_ess_bulk < need:
        # at this run's efficiency (ESS per draw), how many draws per chain would reach the bar
        per_draw = max(min_ess_bulk, 1.0) / max(chains * draws, 1)
        enough = math.ceil(1.1 * need / per_draw / max(chains, 1))
        problems.append(
            f"ESS_bulk {min_ess_bulk:.0f} < {need} ({ESS_PER_CHAIN} per chain){where}: too few effective draws; "
            f"at this run's {per_draw:.2f} effective draws per draw, about --draws {enough:,} would do"
        )
    return problems
