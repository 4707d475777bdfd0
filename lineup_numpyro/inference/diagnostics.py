"""Summaries of posterior draws under the Stan names: mean, sd, quantiles, R-hat, ESS, MCSE.

Used by the run directory's coefficients.csv and by the Stan parity check alike.
"""

from __future__ import annotations

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
