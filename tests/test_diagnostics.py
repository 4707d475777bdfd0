"""The vectorised R-hat, ESS and MCSE (inference/diagnostics.py) against ArviZ's, parameter by
parameter, on draws that exercise every branch of Geyer's sequences."""

from __future__ import annotations

import arviz as az
import numpy as np
import pytest
import xarray as xr

from lineup_numpyro.inference import diagnostics


def _ar1(rng: np.random.Generator, chains: int, draws: int, phi: float) -> np.ndarray:
    x = np.empty((chains, draws))
    x[:, 0] = rng.normal(size=chains)
    for t in range(1, draws):
        x[:, t] = phi * x[:, t - 1] + rng.normal(size=chains)
    return x


def _draws(chains: int, draws: int, seed: int = 0) -> np.ndarray:
    """(chains, draws, parameters): independent, sticky, anti-correlated, heavy-tailed, tied,
    constant, shifted between chains, and one with a NaN."""
    rng = np.random.default_rng(seed)
    columns = [
        rng.normal(size=(chains, draws)),
        _ar1(rng, chains, draws, 0.9),
        _ar1(rng, chains, draws, 0.995),
        _ar1(rng, chains, draws, -0.6),
        rng.standard_cauchy(size=(chains, draws)),
        np.round(rng.normal(size=(chains, draws)), 1),  # many ties
        np.repeat(rng.normal(size=(chains, draws // 7 + 1)), 7, axis=1)[:, :draws],  # stuck draws
        np.full((chains, draws), 2.5),
        rng.normal(size=(chains, draws)) + np.arange(chains)[:, None],  # chains disagree
        np.exp(rng.normal(size=(chains, draws))),
    ]
    nan = rng.normal(size=(chains, draws))
    nan[0, 3] = np.nan
    columns.append(nan)
    return np.stack(columns, axis=-1)


def _arviz(x: np.ndarray) -> dict[str, np.ndarray]:
    ds = xr.Dataset({"v": (("chain", "draw", "k"), x)})
    out = {
        "ess_bulk": az.ess(ds, method="bulk")["v"].values,
        "ess_tail": az.ess(ds, method="tail")["v"].values,
        "mcse_mean": az.mcse(ds, method="mean")["v"].values,
        "ess_mean": az.ess(ds, method="mean")["v"].values,
    }
    out["rhat"] = az.rhat(ds)["v"].values if x.shape[0] > 1 else np.full(x.shape[-1], np.nan)
    return out


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("chains,draws", [(4, 1000), (4, 101), (2, 30), (1, 400), (3, 5)])
def test_matches_arviz_parameter_by_parameter(chains, draws):
    x = _draws(chains, draws, seed=chains * 1000 + draws)
    expected = _arviz(x)
    ours = {
        "ess_bulk": diagnostics.ess_bulk(x),
        "ess_tail": diagnostics.ess_tail(x),
        "mcse_mean": diagnostics.mcse_mean(x),
        "ess_mean": diagnostics.ess_mean(x),
        "rhat": diagnostics.rhat(x),
    }
    for name, values in ours.items():
        np.testing.assert_allclose(values, expected[name], rtol=1e-10, atol=0, equal_nan=True, err_msg=name)
    assert np.isnan(ours["ess_bulk"][-1])  # the NaN draw
    assert ours["ess_bulk"][7] == 2 * chains * (draws // 2)  # a constant: every draw of the split chains


def test_too_few_draws_and_one_chain_give_nan():
    x = np.random.default_rng(1).normal(size=(2, 3, 2))
    assert np.isnan(diagnostics.ess_bulk(x)).all() and np.isnan(diagnostics.rhat(x)).all()
    one = np.random.default_rng(1).normal(size=(1, 200, 2))
    assert np.isnan(diagnostics.rhat(one)).all() and np.isfinite(diagnostics.ess_bulk(one)).all()
    with pytest.raises(ValueError, match="chains, draws, parameters"):
        diagnostics.ess_bulk(np.zeros((4, 100)))
