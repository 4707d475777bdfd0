"""NumPyro and the Stan files in models/ define the same posterior (lineup_numpyro.stan.parity).

Density parity is exact and runs for every model, Stan form and NumPyro likelihood.
Posterior parity samples both on the real 10K sample; the row-wise matchup-specific and
hierarchical Stan files are too slow for CI there (marked slow), their sufficient-statistics
twins run instead.
"""

from __future__ import annotations

import json

import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest
from typer.testing import CliRunner

from lineup_numpyro.cli import app
from lineup_numpyro.config import Priors, SamplerConfig
from lineup_numpyro.data.possessions import Possessions, load_possessions
from lineup_numpyro.data.suffstats import SuffStats
from lineup_numpyro.models import model as models
from lineup_numpyro.models.cells import Cells
from lineup_numpyro.models.model import get_model, make_likelihood
from lineup_numpyro.models.whitening import Whitening
from lineup_numpyro.stan import parity

FORMS = [
    ("simplified", "reference"),
    ("matchup", "reference"),
    ("matchup", "fast"),
    ("hierarchical", "reference"),
    ("hierarchical", "fast"),
]


@pytest.fixture(scope="module")
def real_rows(shared_data) -> Possessions:
    return load_possessions(shared_data / "quick_sample_10k.csv")


@pytest.fixture(scope="module")
def small_rows(real_rows) -> Possessions:
    """2,000 real possessions: Stan's row-wise log_prob stays quick."""
    keep = slice(0, 2_000)
    return Possessions(
        real_rows.y[keep], real_rows.matchup[keep], real_rows.z_off[keep], real_rows.z_def[keep], None, real_rows.source
    )


class _StanModels(dict):
    """Stan programs built on first use (each compile takes tens of seconds)."""

    def __init__(self, rows: Possessions) -> None:
        super().__init__()
        self.rows, self.stats = rows, SuffStats.from_possessions(rows)

    def __missing__(self, key: tuple[str, str]):  # noqa: ANN204
        model, form = key
        self[key] = parity.build_stan(model, form, parity.stan_data(model, form, self.rows, self.stats))
        return self[key]


@pytest.fixture(scope="module")
def stan_models(small_rows):
    return _StanModels(small_rows)


# make test: the pooled file and both fast files on the suffstats likelihood; make test-slow adds
# the reference files of the matchup and hierarchical models and the rows likelihood
DENSITY_FORMS = [
    f if f[1] == "fast" or f[0] == "simplified" else pytest.param(*f, marks=pytest.mark.slow) for f in FORMS
]


@pytest.mark.parametrize("likelihood", ["suffstats", pytest.param("rows", marks=pytest.mark.slow)])
@pytest.mark.parametrize(("model", "form"), DENSITY_FORMS)
def test_density_parity(model, form, likelihood, small_rows, stan_models):
    stats = SuffStats.from_possessions(small_rows)
    whitening = Whitening.from_stats(stats) if model == "hierarchical" else None  # as stan_data's default
    result = parity.density_parity(
        get_model(model, Cells.from_stats(stats), whitening),
        make_likelihood(likelihood, stats, small_rows),
        stan_models[(model, form)],
        n_points=20,
        seed=1,
    )
    assert len(result.table) == 20
    assert result.offset_spread <= parity.DENSITY_RTOL
    assert result.max_gradient_error <= parity.GRADIENT_RTOL
    assert result.passed


# Priors other than the defaults in every family: the Stan files take them as data, so density
# parity holds for any choice. make test: the pooled file and both fast files (their programs are
# the ones test_density_parity builds); make test-slow adds the reference files.
OTHER_PRIORS = Priors(beta_0=2.0, beta=0.5, sigma=1.0, mu_loc=-3.0, mu_sd=0.7, tau=0.3)


@pytest.mark.parametrize(("model", "form"), DENSITY_FORMS)
def test_density_parity_under_other_priors(model, form, small_rows):
    """Both sides under OTHER_PRIORS, on the data (touched cells, whitened coordinates) and on the
    prior probe (every cell, where the priors dominate), for both NumPyro likelihoods."""
    checks = parity.density_checks(model, small_rows, form, n_points=10, seed=2, priors=OTHER_PRIORS)
    assert set(checks) == {"suffstats, data", "rows, data", "suffstats, prior probe", "rows, prior probe"}
    for label, check in checks.items():
        assert check.passed, (label, check.offset_spread, check.max_gradient_error)


@pytest.mark.parametrize(
    ("model", "form"), [("matchup", "fast"), pytest.param("hierarchical", "fast", marks=pytest.mark.slow)]
)
def test_harness_catches_priors_that_differ(model, form):
    """NumPyro under OTHER_PRIORS against Stan under the defaults: the probe shows it."""
    probe = parity.prior_probe()
    stats = SuffStats.from_possessions(probe)
    extra = {"whitening": Whitening.none()} if model == "hierarchical" else {}
    stan_model = parity.build_stan(
        model, form, parity.stan_data(model, form, probe, stats, Cells.everywhere(), **extra)
    )
    result = parity.density_parity(
        get_model(model, Cells.everywhere(), extra.get("whitening"), OTHER_PRIORS),
        make_likelihood("suffstats", stats, probe),
        stan_model,
        n_points=10,
    )
    assert not result.passed and result.offset_spread > 1e3 * parity.DENSITY_RTOL


def wrong_prior_matchup(likelihood, cells, priors=None):
    """The matchup model with beta_0's prior scale changed from 5 to 4 (whatever `priors` say)."""
    beta_0 = models._touched("beta_0_data", dist.Normal(0.0, 4.0), cells, "beta_0")
    beta_off = models._touched("beta_off_data", dist.HalfNormal(5.0), cells, "beta_off")
    beta_def = models._touched("beta_def_data", dist.HalfNormal(5.0), cells, "beta_def")
    sigma = numpyro.sample("sigma", dist.HalfCauchy(2.5))
    likelihood.observe(models._touched_coefficients(cells, beta_0, beta_off, beta_def), sigma)


def wrong_sign_simplified(likelihood, cells=None, priors=None):
    """The pooled model with the defensive term added instead of subtracted."""
    beta_0 = numpyro.sample("beta_0", dist.Normal(0.0, 5.0))
    beta_off = numpyro.sample("beta_off", dist.HalfNormal(5.0).expand([models.A]).to_event(1))
    beta_def = numpyro.sample("beta_def", dist.HalfNormal(5.0).expand([models.A]).to_event(1))
    sigma = numpyro.sample("sigma", dist.HalfCauchy(2.5))
    likelihood.observe(models._coefficients(beta_0, beta_off, -beta_def), sigma)


def other_coordinates_hierarchical(likelihood, cells, whitening, priors=models.DEFAULT_PRIORS):
    """The hierarchical model in coordinates other than the Stan file's (precisions doubled):
    the same posterior, but another density over the sampled coordinates."""
    models.hierarchical(likelihood, cells, Whitening(2.0 * whitening.precision, whitening.location), priors)


@pytest.mark.parametrize(
    ("wrong", "model", "form", "caught_by"),
    [
        # the probe shows a prior difference plainly
        pytest.param(wrong_prior_matchup, "matchup", "fast", "prior probe", marks=pytest.mark.slow),
        pytest.param(wrong_prior_matchup, "matchup", "reference", "prior probe", marks=pytest.mark.slow),
        (wrong_sign_simplified, "simplified", "reference", "data"),  # z = 0 in the probe hides the sign
        # the probe has no whitening
        pytest.param(other_coordinates_hierarchical, "hierarchical", "fast", "data", marks=pytest.mark.slow),
    ],
)
def test_harness_catches_a_wrong_model(wrong, model, form, caught_by, small_rows):
    checks = parity.density_checks(model, small_rows, form, n_points=20, model_fn=wrong)
    assert set(checks) == {"suffstats, data", "rows, data", "suffstats, prior probe", "rows, prior probe"}
    for kind in ("suffstats", "rows"):
        check = checks[f"{kind}, {caught_by}"]
        assert not check.passed
        assert check.offset_spread > 1e3 * parity.DENSITY_RTOL


@pytest.mark.parametrize(
    ("model", "form"), [f if f[0] != "hierarchical" else pytest.param(*f, marks=pytest.mark.slow) for f in FORMS]
)
def test_prior_probe_agrees(model, form):
    probe = parity.prior_probe()
    checks = parity.density_checks(model, probe, form, n_points=20)
    assert all(c.passed for c in checks.values())


POSTERIOR = SamplerConfig(chains=4, warmup=1000, draws=1000, seed=1)


def check_posterior_parity(model, form, rows):
    report = parity.run_parity(model, rows, form, POSTERIOR, n_points=20)
    table = report.posterior.table
    assert report.stan_divergences == 0
    assert (table["z"] <= report.posterior.z_bound).all(), table.sort_values("z").tail(3)
    sampled = table[~table["derived"]]
    assert sampled["sd_ratio"].between(*parity.SD_RATIO_RANGE).all(), sampled.sort_values("sd_ratio")
    assert report.passed
    return report


@pytest.mark.slow
def test_posterior_parity_simplified(real_rows):
    report = check_posterior_parity("simplified", "reference", real_rows)
    assert len(report.posterior.table) == 18 and report.posterior.std_diff_passed


@pytest.mark.slow
def test_posterior_parity_matchup_fast_stan(real_rows):
    report = check_posterior_parity("matchup", "fast", real_rows)
    assert len(report.posterior.table) == 613


@pytest.mark.slow
def test_posterior_parity_hierarchical_fast_stan(real_rows):
    report = check_posterior_parity("hierarchical", "fast", real_rows)
    table = report.posterior.table
    assert len(table) == 647 + 612 and table["derived"].sum() == 612


@pytest.mark.slow
def test_posterior_parity_hierarchical_reference_stan(real_rows):
    check_posterior_parity("hierarchical", "reference", real_rows)  # ~10 minutes of Stan on 2 cores


@pytest.mark.slow
def test_posterior_parity_matchup_loop_form_stan(real_rows):
    check_posterior_parity("matchup", "reference", real_rows)


def test_posterior_parity_flags_a_shifted_posterior():
    """Two samples of one distribution pass; shifting one by a few MCSE fails the z test."""
    rng = np.random.default_rng(0)
    a = {
        "beta_0": rng.normal(0.2, 0.01, (4, 1000)),
        "beta_off": np.abs(rng.normal(0.03, 0.01, (4, 1000, 8))),
        "beta_def": np.abs(rng.normal(0.03, 0.01, (4, 1000, 8))),
        "sigma": rng.normal(0.56, 0.004, (4, 1000)),
    }
    b = {k: v[::-1] + 0.0 for k, v in a.items()}  # same draws, chains reordered
    assert parity.posterior_parity(a, b, "simplified").passed
    shifted = dict(b, beta_0=b["beta_0"] + 0.002)  # ~10 MCSE
    result = parity.posterior_parity(a, shifted, "simplified")
    assert not result.passed
    assert result.table.set_index("parameter").loc["beta_0", "z"] > result.z_bound
    wider = dict(b, sigma=0.56 + (b["sigma"] - 0.56) * 1.3)
    assert not parity.posterior_parity(a, wider, "simplified").passed


runner = CliRunner()


def test_cli_parity_writes_tables_and_verdict(small_rows, stan_models, tmp_path):
    path = tmp_path / "d.csv"
    small_rows.to_frame().to_csv(path, index=False)
    out = tmp_path / "parity"
    result = runner.invoke(
        app,
        [
            "parity",
            "--model",
            "simplified",
            "--data",
            str(path),
            "--no-posterior",
            "--out",
            str(out),
            "--prior",
            "sigma=1",
        ],
    )
    assert result.exit_code == 0, result.output
    verdict = json.loads((out / "parity.json").read_text())
    assert verdict["passed"] and verdict["stan_file"] == "simplified.stan"
    assert verdict["priors"] == Priors(sigma=1.0).to_dict()
    assert set(verdict["density"]) == {"suffstats, data", "rows, data", "suffstats, prior probe", "rows, prior probe"}
    assert "verdict" in result.output and "pass" in result.output


@pytest.mark.slow
def test_cli_parity_exits_1_when_models_differ(small_rows, stan_models, tmp_path, monkeypatch):
    path = tmp_path / "d.csv"
    small_rows.to_frame().to_csv(path, index=False)
    monkeypatch.setitem(models.MODEL_FUNCTIONS, "simplified", wrong_sign_simplified)
    result = runner.invoke(app, ["parity", "--model", "simplified", "--data", str(path), "--no-posterior"])
    assert result.exit_code == 1
    assert "FAIL" in result.output
