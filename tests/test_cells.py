"""Coefficients the data never touch: detected from the statistics, left out of NUTS, drawn exactly."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numpyro.infer.util import log_density
from scipy import stats as sps

from lineup_numpyro import names
from lineup_numpyro.data.possessions import Possessions
from lineup_numpyro.data.suffstats import SuffStats
from lineup_numpyro.models.cells import Cells
from lineup_numpyro.models.model import DEFAULT_PRIORS, MODEL_FUNCTIONS, SuffStatsLikelihood, complete
from lineup_numpyro.models.whitening import Whitening
from lineup_numpyro.run.outputs import informed, largest_effects

M, A, P = names.N_MATCHUPS, names.N_ARCHETYPES, names.N_FEATURES
BETA_0_SD, BETA_SD = DEFAULT_PRIORS.beta_0, DEFAULT_PRIORS.beta


def hand_built() -> Possessions:
    """Three possessions: matchup 0 with z_off_2 = 1.5 twice (once 0), matchup 7 with z_def_5 = -2."""
    z_off = np.zeros((3, A))
    z_def = np.zeros((3, A))
    z_off[0, 2] = 1.5
    z_off[1, 2] = 0.5
    z_def[2, 5] = -2.0
    return Possessions(np.array([1.0, 0.0, 2.0]), np.array([0, 0, 7]), z_off, z_def, None, "hand-built")


def test_touched_cells_and_counts_from_hand_built_statistics():
    stats = SuffStats.from_possessions(hand_built())
    cells = Cells.from_stats(stats)
    expected = np.zeros((M, P), dtype=bool)
    expected[0, 0] = expected[7, 0] = True  # intercepts of the two matchups with possessions
    expected[0, 1 + 2] = True  # z_off_2 in matchup 0
    expected[7, 1 + A + 5] = True  # z_def_5 in matchup 7
    np.testing.assert_array_equal(cells.touched, expected)
    assert stats.nonzero[0, 0] == 2 and stats.nonzero[0, 3] == 2 and stats.nonzero[7, 14] == 1
    assert stats.nonzero[~expected].sum() == 0
    assert (cells.count("beta_0"), cells.count("beta_off"), cells.count("beta_def")) == (2, 1, 1)
    m, a = cells.matchup_archetype("beta_def")
    assert (m.tolist(), a.tolist()) == ([7], [5])


def test_statistics_count_nonzero_columns_and_add_up():
    data = hand_built()
    whole = SuffStats.from_possessions(data)
    halves = SuffStats.from_possessions(data.subset(np.array([True, False, True]))) + SuffStats.from_possessions(
        data.subset(np.array([False, True, False]))
    )
    np.testing.assert_array_equal(whole.nonzero, halves.nonzero)


@pytest.mark.parametrize("model", ["matchup", "hierarchical"])
def test_touched_model_is_the_full_model_minus_untouched_priors(model):
    """log p_full(touched, untouched | y) = log p_touched(touched | y) + log prior(untouched): the
    untouched cells factor out exactly, so sampling without them and drawing them afterwards is exact."""
    stats = SuffStats.from_possessions(hand_built())
    cells = Cells.from_stats(stats)
    lik = SuffStatsLikelihood.from_stats(stats)
    rng = np.random.default_rng(0)
    full, everywhere = {}, Cells.everywhere()
    touched_params, untouched_prior = {}, 0.0
    for _ in range(3):
        if model == "matchup":
            values = {
                "beta_0": rng.normal(0, 1, M),
                "beta_off": rng.uniform(0.01, 2, (M, A)),
                "beta_def": rng.uniform(0.01, 2, (M, A)),
            }
            sites = {"beta_0": "beta_0_data", "beta_off": "beta_off_data", "beta_def": "beta_def_data"}
            prior = {
                "beta_0": sps.norm(0, BETA_0_SD),
                "beta_off": sps.halfnorm(0, BETA_SD),
                "beta_def": sps.halfnorm(0, BETA_SD),
            }
            shared = {"sigma": 0.7}
        else:
            values = {
                "beta_0": rng.normal(0, 1, M),
                "beta_off": rng.normal(0, 1, (M, A)),
                "beta_def": rng.normal(0, 1, (M, A)),
            }
            # whitened coordinates (whitening.py): an untouched cell has p = 0, so its z is its e
            sites = {"beta_0": "z_0_data", "beta_off": "z_off_data", "beta_def": "z_def_data"}
            prior = dict.fromkeys(sites, sps.norm(0, 1))
            shared = {
                "sigma": 0.7,
                "z_mu_0": 0.1,
                "z_tau_0": -0.3,
                "z_mu_off": rng.normal(0, 1, A),
                "z_tau_off": rng.normal(0, 1, A),
                "z_mu_def": rng.normal(0, 1, A),
                "z_tau_def": rng.normal(0, 1, A),
            }
        full = {**shared, **{sites[f]: _flat(values[f], f) for f in sites}}
        touched_params = {
            **shared,
            **{sites[f]: _flat(values[f], f)[cells.index(f) - _offset(f, cells)] for f in sites},
        }
        untouched_prior = sum(
            prior[f].logpdf(np.delete(_flat(values[f], f), cells.index(f) - _offset(f, cells))).sum() for f in sites
        )
        extra = {"whitening": Whitening.from_stats(stats)} if model == "hierarchical" else {}
        lp_full, _ = log_density(MODEL_FUNCTIONS[model], (lik,), {"cells": everywhere, **extra}, _jnp(full))
        lp_touched, _ = log_density(MODEL_FUNCTIONS[model], (lik,), {"cells": cells, **extra}, _jnp(touched_params))
        assert float(lp_full) == pytest.approx(float(lp_touched) + untouched_prior, rel=1e-12, abs=1e-9)


def _flat(values: np.ndarray, family: str) -> np.ndarray:
    return np.asarray(values).reshape(-1)


def _offset(family: str, cells: Cells) -> np.ndarray:
    """Map flat (M, 17) grid indices of a family to indices into its own (M,) or (M*A,) array."""
    idx = cells.index(family)
    m, j = np.divmod(idx, P)
    own = m if family == "beta_0" else m * A + (j - 1) % A
    return idx - own


def _jnp(params: dict) -> dict:
    return {k: jnp.asarray(v) for k, v in params.items()}


def test_untouched_cells_are_drawn_from_the_prior():
    """KS tests at a family-wise 1% level: the matchup model's untouched cells follow N(0, 5) and
    N+(0, 5), and the touched ones are passed through unchanged."""
    cells = Cells.from_stats(SuffStats.from_possessions(hand_built()))
    chains, draws = 4, 1000
    rng = np.random.default_rng(1)
    sampled = {
        "beta_0_data": rng.normal(size=(chains, draws, 2)),
        "beta_off_data": rng.uniform(size=(chains, draws, 1)),
        "beta_def_data": rng.uniform(size=(chains, draws, 1)),
        "sigma": np.ones((chains, draws)),
    }
    out = complete("matchup", sampled, cells, seed=3)
    assert out["beta_0"].shape == (chains, draws, M) and out["beta_off"].shape == (chains, draws, M, A)
    np.testing.assert_array_equal(out["beta_0"][..., [0, 7]], sampled["beta_0_data"])
    np.testing.assert_array_equal(out["beta_off"][..., 0, 2], sampled["beta_off_data"][..., 0])
    np.testing.assert_array_equal(out["beta_def"][..., 7, 5], sampled["beta_def_data"][..., 0])
    alpha = 0.01 / 3
    assert sps.kstest(out["beta_0"][..., 1].ravel(), sps.norm(0, BETA_0_SD).cdf).pvalue > alpha
    assert sps.kstest(out["beta_off"][..., 5, 3].ravel(), sps.halfnorm(0, BETA_SD).cdf).pvalue > alpha
    assert sps.kstest(out["beta_def"][..., 35, 0].ravel(), sps.halfnorm(0, BETA_SD).cdf).pvalue > alpha
    again = complete("matchup", sampled, cells, seed=3)  # the same seed gives the same draws (resume)
    np.testing.assert_array_equal(again["beta_off"], out["beta_off"])


def test_hierarchical_untouched_cells_follow_the_population_given_each_draw():
    cells = Cells.from_stats(SuffStats.from_possessions(hand_built()))
    chains, draws = 2, 2000
    rng = np.random.default_rng(2)
    mu_off, tau_off = rng.normal(-4, 0.2, (chains, draws, A)), rng.uniform(0.2, 0.6, (chains, draws, A))
    sampled = {
        "mu_0": rng.normal(size=(chains, draws)),
        "tau_0": rng.uniform(0.1, 0.3, (chains, draws)),
        "mu_off": mu_off,
        "tau_off": tau_off,
        "mu_def": mu_off.copy(),
        "tau_def": tau_off.copy(),
        "e_0_data": rng.normal(size=(chains, draws, 2)),
        "e_off_data": rng.normal(size=(chains, draws, 1)),
        "e_def_data": rng.normal(size=(chains, draws, 1)),
        "sigma": np.ones((chains, draws)),
    }
    out = complete("hierarchical", sampled, cells, seed=0)
    e = out["e_off"][..., 4, 1]  # matchup 5, archetype 1: untouched
    assert sps.kstest(e.ravel(), sps.norm(0, 1).cdf).pvalue > 0.01
    np.testing.assert_allclose(out["beta_off"], np.exp(mu_off[..., None, :] + tau_off[..., None, :] * out["e_off"]))
    np.testing.assert_array_equal(out["e_0"][..., [0, 7]], sampled["e_0_data"])
    # the standardised log-effects of untouched cells are independent of the draws of mu, tau
    assert abs(np.corrcoef(e.ravel(), mu_off[..., 1].ravel())[0, 1]) < 4 / np.sqrt(e.size)


def test_informed_rule():
    n = np.array([0, 5, 5, 0])
    ratio = np.array([0.9, 0.05, 0.6, 0.05])
    np.testing.assert_array_equal(informed(n, ratio, "matchup"), [False, True, False, False])
    # hierarchical: an unseen cell counts when the population narrowed it
    np.testing.assert_array_equal(
        informed(n, np.array([0.9, 0.05, 0.6, 0.08]), "hierarchical"), [False, True, False, True]
    )


def test_largest_effects_ranks_informed_coefficients_only():
    import pandas as pd

    table = pd.DataFrame(
        {
            "parameter": ["beta_off[1,1]", "beta_off[2,1]", "beta_def[1,2]", "sigma"],
            "mean": [4.1, 0.02, 0.01, 0.5],
            "no_data": [True, False, False, False],
            "source": ["prior", "data", "data", ""],
        }
    )
    assert list(largest_effects(table, 5)["parameter"]) == ["beta_off[2,1]", "beta_def[1,2]"]
    table.loc[1, "source"] = "population"  # pooled, not seen: not an effect the data show
    assert list(largest_effects(table, 5)["parameter"]) == ["beta_def[1,2]"]


def test_nuts_on_sparse_data_samples_only_touched_cells():
    """A short matchup fit of the hand-built data: 4 cells in NUTS, 613 parameters out."""
    from lineup_numpyro.config import SamplerConfig
    from lineup_numpyro.inference.sampling import sample_posterior
    from lineup_numpyro.models.model import get_model, make_likelihood

    stats = SuffStats.from_possessions(hand_built())
    cells = Cells.from_stats(stats)
    result = sample_posterior(
        get_model("matchup", cells),
        make_likelihood("suffstats", stats),
        SamplerConfig(chains=1, warmup=100, draws=50, seed=0),
    )
    assert {k: v.shape[2:] for k, v in result.samples.items()} == {
        "beta_0_data": (2,),
        "beta_off_data": (1,),
        "beta_def_data": (1,),
        "sigma": (),
    }
    full = complete("matchup", result.samples, cells, seed=0)
    assert sum(np.prod(v.shape[2:], dtype=int) for v in full.values()) == 613
    assert jax.tree.leaves(full)
