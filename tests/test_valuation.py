"""Lineup valuation and acquisition: hand-computed cases on made-up posteriors, the fast
opponent-averaged value against brute force, and the CLI on a fit of the real sample."""

from __future__ import annotations

import csv
import time

import jax
import numpy as np
import pytest
from numpyro.infer import Predictive
from test_players import ROSTER, write_tables
from typer.testing import CliRunner

from lineup_numpyro import names
from lineup_numpyro.analysis.validation import Posterior
from lineup_numpyro.cli import app
from lineup_numpyro.data.possessions import DataError
from lineup_numpyro.lineups.players import load_assignments, load_players, make_lineup
from lineup_numpyro.lineups.valuation import (
    Fit,
    expected_points,
    implausible,
    matchup,
    recommend,
    value,
    value_lineup,
    value_over,
    weak_archetypes,
    weak_players,
)
from lineup_numpyro.models.cells import Cells
from lineup_numpyro.models.model import complete, get_model, prior_width

S = 400
runner = CliRunner()


def made_up_fit(model: str = "matchup", seed: int = 0, sd: float = 0.01, n_possessions=None) -> Fit:
    """A posterior of S draws around random positive coefficients, sd `sd` (tight: informed)."""
    rng = np.random.default_rng(seed)
    center = np.concatenate(
        [
            rng.normal(0.0, 0.3, (names.N_MATCHUPS, 1)),
            rng.uniform(0.01, 0.2, (names.N_MATCHUPS, 2 * names.N_ARCHETYPES)),
        ],
        axis=1,
    )
    if model == "simplified":
        center[:] = center[0]
    coef = np.abs(center + rng.normal(0.0, sd, (S, *center.shape)))
    coef[..., 0] = center[:, 0] + rng.normal(0.0, sd, (S, names.N_MATCHUPS))
    n = np.full(names.N_MATCHUPS, 500) if n_possessions is None else np.asarray(n_possessions)
    return Fit(Posterior(model, coef, np.full(S, 1.0), 1.0), n, "made-up")


@pytest.fixture
def tables(tmp_path):
    paths = write_tables(tmp_path)
    return load_players(paths["archetypes"], paths["darko"]), load_assignments(paths["assignments"])


def test_expected_points_by_hand(tables):
    players, assignments = tables
    fit = made_up_fit()
    a = make_lineup(players, assignments, [1, 2, 3, 4, 5])  # supercluster 2
    b = make_lineup(players, assignments, [6, 7, 8, 9, 10])  # supercluster 4
    assert matchup(a, b) == 2 * 6 + 4 and matchup(b, a) == 4 * 6 + 2
    coef = fit.posterior.coef[:, 16]  # (S, 17)
    by_hand = coef[:, 0] + coef[:, 1:9] @ a.z_off - coef[:, 9:] @ b.z_def
    np.testing.assert_allclose(expected_points(fit, [a], [b])[:, 0], by_hand, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("model", names.MODELS)
def test_value_is_antisymmetric_and_zero_against_itself(tables, model):
    players, assignments = tables
    fit = made_up_fit(model)
    a = make_lineup(players, assignments, [1, 2, 3, 4, 5])
    b = make_lineup(players, assignments, [6, 7, 8, 9, 10])
    np.testing.assert_array_equal(value(fit, [a], [b]), -value(fit, [b], [a]))
    np.testing.assert_array_equal(value(fit, [a], [a]), 0.0)


@pytest.mark.parametrize("model", names.MODELS)
def test_value_over_opponents_equals_the_mean_of_pairwise_values(tables, model):
    players, assignments = tables
    fit = made_up_fit(model, seed=3)
    ids = [r[0] for r in ROSTER]
    lineups = [make_lineup(players, assignments, ids[k : k + 5]) for k in range(0, 7)]
    opponents = lineups[::2] + [make_lineup(players, assignments, [11, 1, 2, 3, 4])]
    brute = np.mean([value(fit, lineups, [o] * len(lineups)) for o in opponents], axis=0)
    np.testing.assert_allclose(value_over(fit, lineups, opponents), brute, rtol=1e-12, atol=1e-14)


def test_recommend_ranks_by_posterior_mean_with_probability_of_being_best(tables):
    players, assignments = tables
    fit = made_up_fit(sd=0.05)
    opponents = [make_lineup(players, assignments, [6, 7, 8, 9, 10])]
    rec = recommend(fit, players, assignments, [1, 2, 3, 4], opponents)
    table = rec.table
    assert set(table["player_id"]) == set(range(5, 12)) and rec.excluded == {}
    assert list(table["rank"]) == list(range(1, 8))
    assert (np.diff(table["mean"]) <= 0).all()
    assert (table["5%"] <= table["mean"]).all() and (table["mean"] <= table["95%"]).all()
    for row, draws in zip(table.itertuples(), rec.draws.T):
        lineup = make_lineup(players, assignments, [1, 2, 3, 4, row.player_id])
        np.testing.assert_allclose(draws, value(fit, [lineup], opponents)[:, 0], rtol=1e-12, atol=1e-14)
    winners = np.bincount(rec.draws.argmax(axis=1), minlength=len(table)) / S
    np.testing.assert_array_equal(table["p_best"], winners)
    assert table["p_best"].sum() == pytest.approx(1.0)


def test_recommend_limits_candidates_and_salaries(tables, tmp_path):
    players, assignments = tables
    fit = made_up_fit()
    opponents = [make_lineup(players, assignments, [6, 7, 8, 9, 10])]
    rec = recommend(fit, players, assignments, [1, 2, 3, 4], opponents, candidates=[9, 10, 1])
    assert sorted(rec.table["player_id"]) == [9, 10] and rec.excluded == {"in the core": 1}

    paths = write_tables(tmp_path / "t")
    salaries = tmp_path / "salaries.csv"
    salaries.write_text("player_id,salary\n" + "".join(f"{i},{i * 1_000_000}\n" for i in range(1, 10)))
    paid = load_players(paths["archetypes"], paths["darko"], salaries)
    # the core earns 10M; a cap of 18M leaves 8M: players 5-8 fit, 9 does not, 10 and 11 have no salary
    rec = recommend(fit, paid, assignments, [1, 2, 3, 4], opponents, salary_cap=18_000_000)
    assert sorted(rec.table["player_id"]) == [5, 6, 7, 8]
    assert rec.excluded == {"no salary": 2, "salary above the 8,000,000 left under the cap": 1}
    with pytest.raises(DataError, match="needs the core's salaries; none for Jo Jones"):
        recommend(fit, paid, assignments, [10, 2, 3, 4], opponents, salary_cap=18_000_000)
    with pytest.raises(DataError, match="no candidate is left to rank"):
        recommend(fit, paid, assignments, [1, 2, 3, 4], opponents, salary_cap=10_000_000)
    with pytest.raises(DataError, match="the core must be four different players; got 3"):
        recommend(fit, players, assignments, [1, 2, 3], opponents)


def test_barely_informed_archetypes_are_flagged_and_can_be_left_out(tables):
    players, assignments = tables
    fit = made_up_fit()
    wide = fit.posterior.coef.copy()
    rng = np.random.default_rng(1)
    column = 1 + names.N_ARCHETYPES + 6  # beta_def[., archetype 6], as wide as its prior
    wide[:, :, column] = np.abs(rng.normal(0.0, 5.0, (S, names.N_MATCHUPS)))
    fit = Fit(Posterior("matchup", wide, fit.posterior.sigma, 1.0), fit.n_possessions, "made-up")
    assert fit.weak[:, column].all() and fit.weak.sum() == names.N_MATCHUPS
    opponents = [make_lineup(players, assignments, [6, 7, 8, 9, 10])]
    with_jo = make_lineup(players, assignments, [1, 2, 3, 4, 10])  # Jo Jones: archetype 6, D-DPM 3
    assert weak_archetypes(fit, with_jo, opponents) == (6,)
    assert weak_archetypes(fit, make_lineup(players, assignments, [1, 2, 3, 4, 5]), opponents) == ()
    # Ben Brown (id 11) is archetype 6 too, but with D-DPM 0 the weak coefficient never touches him
    assert weak_archetypes(fit, make_lineup(players, assignments, [1, 2, 3, 4, 11]), opponents) == ()
    rec = recommend(fit, players, assignments, [1, 2, 3, 4], opponents, informed_only=True)
    assert 10 not in set(rec.table["player_id"]) and rec.excluded == {"barely informed archetypes in the lineup": 1}


def test_uninformed_values_name_the_player_and_archetype(tables):
    players, assignments = tables
    fit = made_up_fit()
    flags = np.ones((names.N_MATCHUPS, names.N_FEATURES), dtype=bool)
    flags[:, 1 + names.N_ARCHETYPES + 6] = False  # beta_def[., archetype 6]: not informed anywhere
    fit = Fit(fit.posterior, fit.n_possessions, "made-up", flags)
    jo = make_lineup(players, assignments, [1, 2, 3, 4, 10])  # Jo Jones: archetype 6, D-DPM 3
    them = make_lineup(players, assignments, [6, 7, 8, 9, 5])
    assert weak_players(fit, jo, [them]) == ["Jo Jones (archetype 6)"]
    result = value_lineup(fit, jo, them, [them])
    assert (result.table["uninformed"] == "Jo Jones (archetype 6)").all()
    assert any("Jo Jones (archetype 6)" in note and "prior" in note for note in result.notes)
    clean = value_lineup(fit, make_lineup(players, assignments, [1, 2, 3, 4, 5]), them, [them])
    assert (clean.table["uninformed"] == "").all()


def test_implausible_values_are_flagged_with_the_reason(tables):
    """Points per possession lie in [0, 3]: an E[y] of +21.7 (a prior's value) is flagged, so is v."""
    assert implausible("E[y(lineup, opponent)]", 21.7, 2.2, 52.2) == (
        "implausible: posterior mean +21.70 outside [-0.5, +3.5] points per possession"
    )
    assert implausible("v(lineup, opponent)", -21.1, -50.0, -1.0).startswith(
        "implausible: posterior mean -21.10 outside [-3.5, +3.5]"
    )
    assert implausible("E[y(opponent, lineup)]", 0.9, 0.7, 1.1) is None
    assert implausible("E[y(opponent, lineup)]", -0.05, -0.2, 0.1) is None  # within half a point of 0
    assert implausible("v(lineup) over 30 opponents", 0.2, -3.6, 2.0).startswith("uncertain: 90% interval")
    players, assignments = tables
    fit = made_up_fit()
    wild = Fit(Posterior("matchup", fit.posterior.coef * 100.0, fit.posterior.sigma, 1.0), fit.n_possessions, "x")
    a = make_lineup(players, assignments, [1, 2, 3, 4, 5])
    b = make_lineup(players, assignments, [6, 7, 8, 9, 10])
    sane, crazy = value_lineup(fit, a, b, [b]), value_lineup(wild, a, b, [b])
    assert (sane.table["flag"] == "").all()
    e = crazy.table["quantity"].str.startswith("E[")
    outside = crazy.table[(crazy.table["5%"] < np.where(e, -0.5, -3.5)) | (crazy.table["95%"] > 3.5)]
    assert len(outside) > 0 and (outside["flag"] != "").all()
    assert all(any(q in note for note in crazy.notes) for q in outside["quantity"])
    rec = recommend(wild, players, assignments, [1, 2, 3, 4], [b])
    assert (rec.table["flag"] != "").any()
    assert ((rec.table["mean"].abs() > 3.5) <= rec.table["flag"].str.startswith("implausible")).all()


def test_no_opponents_is_an_error(tables):
    players, assignments = tables
    lineup = make_lineup(players, assignments, [1, 2, 3, 4, 5])
    with pytest.raises(DataError, match="no opponent lineups"):
        value_over(made_up_fit(), [lineup], [])


def test_unseen_matchups_are_reported(tables):
    players, assignments = tables
    n = np.full(names.N_MATCHUPS, 500)
    n[2 * 6 + 4] = 0
    fit = made_up_fit(n_possessions=n)
    a = make_lineup(players, assignments, [1, 2, 3, 4, 5])
    b = make_lineup(players, assignments, [6, 7, 8, 9, 10])
    result = value_lineup(fit, a, b, [b])
    assert list(result.table["no_data"]) == [True, False, True, True]  # v uses both matchups
    assert any("matchup 2_vs_4 had no training possessions" in note for note in result.notes)
    pooled = value_lineup(made_up_fit("simplified", n_possessions=n), a, b, [b])
    assert not pooled.table["no_data"].any()


@pytest.mark.parametrize("model", ["matchup", "hierarchical"])
def test_prior_width_matches_the_models_prior(model):
    """prior_width restates the priors of models.py; check it against draws from them."""
    draws = 20_000
    prior = Predictive(get_model(model), num_samples=draws)(jax.random.PRNGKey(0), _NoData())
    full = complete(model, {k: np.asarray(v)[None] for k, v in prior.items()}, Cells.everywhere(), seed=0)
    for family, cell in (("beta_off", (0, 0)), ("beta_0", (0,))):
        draws = full[family][(0, slice(None), *cell)]
        lo, hi = np.quantile(draws, [0.05, 0.95])
        # quantiles of 20,000 draws: relative error ~ 1-2% at these tails
        assert hi - lo == pytest.approx(prior_width(model, family), rel=0.05), family


class _NoData:
    """A likelihood that observes nothing, so that Predictive draws from the prior."""

    def observe(self, b, sigma) -> None:  # noqa: ANN001
        return None


@pytest.fixture(scope="module")
def real_fit(shared_data, tmp_path_factory):
    """The matchup model on the real 10K sample (2 chains x (300 + 300))."""
    run = tmp_path_factory.mktemp("real") / "run"
    result = runner.invoke(
        app,
        [
            "train",
            "--model",
            "matchup",
            "--data",
            str(shared_data / "quick_sample_10k.csv"),
            "--chains",
            "2",
            "--warmup",
            "300",
            "--draws",
            "300",
            "--seed",
            "1",
            "--no-progress",
            "--out",
            str(run),
        ],
    )
    assert result.exit_code == 0, result.output
    return run


CORE = "Amen Thompson, Alperen Sengun, Jabari Smith Jr., Jalen Green"  # 2024-25 Houston Rockets


def test_recommend_on_the_real_sample(real_fit, shared_data, tmp_path):
    start = time.perf_counter()
    result = runner.invoke(
        app,
        [
            "lineup",
            "recommend",
            str(real_fit),
            "--core",
            CORE,
            "--tables",
            str(shared_data),
            "--top",
            "8",
            "--csv",
            str(tmp_path / "rec.csv"),
            "--png",
            str(tmp_path / "rec.png"),
        ],
    )
    elapsed = time.perf_counter() - start
    assert result.exit_code == 0, result.output
    assert "fifth player for Amen Thompson" in result.output and "P(best)" in result.output
    with open(tmp_path / "rec.csv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 270 - 4
    means = [float(r["mean"]) for r in rows]
    assert means == sorted(means, reverse=True)
    assert all(float(r["5%"]) < float(r["mean"]) < float(r["95%"]) for r in rows)
    assert sum(float(r["p_best"]) for r in rows) == pytest.approx(1.0)
    assert rows[0]["player"] in result.output
    assert (tmp_path / "rec.png").stat().st_size > 10_000
    print(f"lineup recommend on the real fit: {elapsed:.2f} s in-process")  # timed in benchmarks/recommend.py


def test_value_on_the_real_sample(real_fit, shared_data):
    lineup = CORE + ", Tari Eason"
    opponent = "Nikola Jokic, Aaron Gordon, Jamal Murray, Michael Porter Jr., Christian Braun"
    result = runner.invoke(
        app,
        ["lineup", "value", str(real_fit), "--lineup", lineup, "--opponent", opponent, "--tables", str(shared_data)],
    )
    assert result.exit_code == 0, result.output
    for quantity in (
        "E[y(lineup, opponent)]",
        "E[y(opponent, lineup)]",
        "v(lineup, opponent)",
        "v(lineup) over 30 opponents",
    ):
        assert quantity in result.output
    swapped = runner.invoke(
        app,
        ["lineup", "value", str(real_fit), "--lineup", opponent, "--opponent", lineup, "--tables", str(shared_data)],
    )
    v = _row(result.output, "v(lineup, opponent)")
    assert _row(swapped.output, "v(lineup, opponent)") == pytest.approx(-v, abs=1e-3)  # printed to 3 decimals


def test_labels_name_the_archetypes_of_lineups(real_fit, shared_data, tmp_path):
    names_json = tmp_path / "labels.json"
    names_json.write_text('{"archetypes": ["Wings", "Bigs", "OBigs", "Front", "Jugg", "ThreeD", "DefG", "PG"]}')
    common = ["--tables", str(shared_data), "--labels", str(names_json)]
    result = runner.invoke(app, ["lineup", "value", str(real_fit), "--lineup", CORE + ", Tari Eason", *common])
    assert result.exit_code == 0, result.output
    line = next(text for text in result.output.splitlines() if text.startswith("lineup:"))
    kinds = line.split("(archetypes ")[1].split(" =")[0]
    names = ["Wings", "Bigs", "OBigs", "Front", "Jugg", "ThreeD", "DefG", "PG"]
    assert ", ".join(f"{a} {names[int(a)]}" for a in kinds.split("_")) in result.output.replace("\n", " ")
    result = runner.invoke(app, ["lineup", "recommend", str(real_fit), "--core", CORE, "--top", "3", *common])
    assert result.exit_code == 0, result.output
    assert any(f"{a} {n}" in result.output for a, n in enumerate(names))


def _row(output: str, quantity: str) -> float:
    line = next(line for line in output.splitlines() if line.strip().startswith(quantity))
    return float(line.split(quantity)[1].split()[0])


def test_a_map_run_is_refused_for_valuation(shared_data, tmp_path):
    run = tmp_path / "map"
    assert (
        runner.invoke(
            app,
            [
                "train",
                "--model",
                "simplified",
                "--method",
                "map",
                "--data",
                str(shared_data / "quick_sample_10k.csv"),
                "--out",
                str(run),
            ],
        ).exit_code
        == 0
    )
    result = runner.invoke(
        app, ["lineup", "value", str(run), "--lineup", CORE + ", Tari Eason", "--tables", str(shared_data)]
    )
    assert result.exit_code == 2 and "a map run is one point" in result.output


def test_lineup_commands_reject_bad_input_cleanly(real_fit, shared_data, tmp_path):
    result = runner.invoke(
        app,
        [
            "lineup",
            "recommend",
            str(real_fit),
            "--core",
            "Nobody Atall, Amen Thompson, Alperen Sengun, Jalen Green",
            "--tables",
            str(shared_data),
        ],
    )
    assert result.exit_code == 2 and "'Nobody Atall' is not among the players" in result.output
    assert "Traceback" not in result.output
    result = runner.invoke(app, ["lineup", "value", str(real_fit), "--lineup", CORE + ", Tari Eason"])
    assert result.exit_code == 2 and "give --archetypes, --darko, --assignments or --tables DIR" in result.output
    result = runner.invoke(
        app, ["lineup", "value", str(tmp_path), "--lineup", CORE + ", Tari Eason", "--tables", str(shared_data)]
    )
    assert result.exit_code == 2 and str(tmp_path) in result.output
    assert not list(tmp_path.iterdir())  # nothing written
