"""`prepare`: possessions with lineups -> the model's input file, with the features and matchups
that the `lineup` commands compute for the same players (docs/input.md)."""

from __future__ import annotations

import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from test_players import write_tables
from typer.testing import CliRunner

from lineup_numpyro import names
from lineup_numpyro.cli import app
from lineup_numpyro.config import DataConfig, RunConfig, SamplerConfig
from lineup_numpyro.data.possessions import DataWarning, design_matrix, load_possessions
from lineup_numpyro.errors import ConfigError, DataError
from lineup_numpyro.lineups.players import load_assignments, load_players, make_lineup
from lineup_numpyro.lineups.prepare import NO_ARCHETYPE, NO_DARKO, prepare_possessions
from lineup_numpyro.lineups.valuation import expected_points, load_fit, matchup
from lineup_numpyro.models.model import predict
from lineup_numpyro.run.train import train

runner = CliRunner()

# id, name, archetype, O-DPM, D-DPM, team: four lineups of five, each of a known supercluster
ROSTER = [
    (1, "Al One", 0, 2.0, 1.0, "A"),
    (2, "Bo Two", 1, 1.5, -0.5, "A"),
    (3, "Cy Three", 2, -1.0, 2.0, "A"),
    (4, "Di Four", 3, 0.25, 0.5, "A"),
    (5, "Ed Five", 4, 3.0, -1.0, "A"),
    (6, "Flo Six", 5, 0.5, 0.5, "B"),
    (7, "Gus Seven", 6, -0.5, 1.5, "B"),
    (8, "Hal Eight", 7, 1.0, 0.0, "B"),
    (9, "Ivy Nine", 0, 2.5, 0.75, "B"),
    (10, "Jo Ten", 1, 0.0, 3.0, "B"),
    (11, "Kit Eleven", 2, 1.25, -0.25, "C"),
    (12, "Lu Twelve", 2, -0.75, 0.5, "C"),
    (13, "Mo Thirteen", 3, 0.1, 0.2, "C"),
    (14, "Ned Fourteen", 3, 1.7, -1.3, "C"),
    (15, "Oz Fifteen", 4, -2.0, 2.5, "C"),
    (16, "Pam Sixteen", 5, 0.3, 0.3, "D"),
    (17, "Quin Seventeen", 5, 4.0, -2.0, "D"),
    (18, "Ru Eighteen", 6, -1.5, 1.0, "D"),
    (19, "Sy Nineteen", 6, 0.6, 0.6, "D"),
    (20, "Ty Twenty", 7, 2.2, -0.4, "D"),
]
LINEUPS = {  # players -> (archetype-lineup, supercluster)
    "A": ((1, 2, 3, 4, 5), "0_1_2_3_4", 0),
    "B": ((6, 7, 8, 9, 10), "0_1_5_6_7", 1),
    "C": ((11, 12, 13, 14, 15), "2_2_3_3_4", 2),
    "D": ((16, 17, 18, 19, 20), "5_5_6_6_7", 3),
}
ASSIGNED = {key: sc for _, key, sc in LINEUPS.values()} | {"0_0_1_1_2": 4, "3_4_5_6_7": 5}
UNLISTED = (1, 2, 3, 4, 16)  # archetypes 0_1_2_3_5: not in the table, one swap from 0_1_2_3_4
COLUMNS = [*(f"off_{k}" for k in range(1, 6)), *(f"def_{k}" for k in range(1, 6)), "points"]


def lineups_csv(path: Path, rows: list[tuple], season: bool = True) -> Path:
    """A possessions-with-lineups file from rows of (offense ids, defense ids, points, season)."""
    lines = [",".join([*COLUMNS, *(["season"] if season else [])])]
    for off, dfn, points, year in rows:
        lines.append(",".join(str(v) for v in (*off, *dfn, points, *([year] if season else []))))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def tables(tmp_path):
    return write_tables(tmp_path / "tables", roster=ROSTER, assigned=ASSIGNED)


def _prepare(tables: dict[str, Path], src: Path, out: Path, **kw):  # noqa: ANN202
    return prepare_possessions(src, out, tables["archetypes"], tables["darko"], tables["assignments"], **kw)


PLAYS = [  # offense, defense, points, season
    (LINEUPS["A"][0], LINEUPS["B"][0], 2, "2023-24"),
    (LINEUPS["B"][0], LINEUPS["A"][0], 0, "2023-24"),
    (LINEUPS["C"][0], LINEUPS["D"][0], 3, "2024-25"),
    (LINEUPS["D"][0], LINEUPS["C"][0], 1, "2024-25"),
    (LINEUPS["A"][0], LINEUPS["C"][0], 0, "2024-25"),
    (LINEUPS["D"][0], LINEUPS["B"][0], 2, "2024-25"),
    ((5, 3, 1, 4, 2), (10, 8, 6, 9, 7), 0, "2024-25"),  # players in another order: the same lineups
]


def test_prepared_file_loads_with_the_lineup_commands_features(tables, tmp_path):
    src = lineups_csv(tmp_path / "lineups.csv", PLAYS)
    report = _prepare(tables, src, tmp_path / "model.csv")
    assert (report.rows_read, report.rows_written, report.rows_dropped) == (7, 7, 0)
    data = load_possessions(tmp_path / "model.csv")
    players, assignments = load_players(tables["archetypes"], tables["darko"]), load_assignments(tables["assignments"])
    assert len(data) == len(PLAYS)
    for i, (off, dfn, points, season) in enumerate(PLAYS):
        offense, defense = make_lineup(players, assignments, off), make_lineup(players, assignments, dfn)
        np.testing.assert_array_equal(data.z_off[i], offense.z_off)  # exactly: the same code forms them
        np.testing.assert_array_equal(data.z_def[i], defense.z_def)
        assert data.matchup[i] == matchup(offense, defense)
        assert data.y[i] == points and data.season[i] == season
    # z is DARKO as given, summed by archetype; the minus sign of defence is the design matrix's
    assert data.z_off[0, 4] == 3.0 and data.z_def[0, 6] == 1.5 and data.design()[0, 1 + 8 + 6] == -1.5
    header = (tmp_path / "model.csv").read_text().splitlines()[0].split(",")
    assert header[:4] == ["outcome", "matchup_id", "off_supercluster", "def_supercluster"]
    assert header[-1] == "season"
    _prepare(tables, lineups_csv(tmp_path / "no_season.csv", PLAYS, season=False), tmp_path / "no_season_out.csv")
    assert load_possessions(tmp_path / "no_season_out.csv").season is None


def test_matchups_follow_the_lineups_superclusters(tables, tmp_path):
    """The original project put every possession in matchup 35; each row's matchup must be its
    offense's supercluster x 6 + its defense's, from the assignment table."""
    src = lineups_csv(tmp_path / "lineups.csv", PLAYS)
    report = _prepare(tables, src, tmp_path / "model.csv")
    data = load_possessions(tmp_path / "model.csv")
    sc = {frozenset(ids): s for ids, _, s in LINEUPS.values()}
    expected = [sc[frozenset(off)] * 6 + sc[frozenset(dfn)] for off, dfn, *_ in PLAYS]
    assert expected == [1, 6, 15, 20, 2, 19, 1]  # by hand from ASSIGNED
    assert data.matchup.tolist() == expected
    assert len(set(data.matchup.tolist())) == 6
    assert report.matchups == tuple(np.bincount(expected, minlength=names.N_MATCHUPS).tolist())
    assert report.nearest_rows == 0 and report.unlisted == ()


def test_unlisted_lineups_and_missing_players_are_counted_and_named(tables, tmp_path):
    with open(tables["archetypes"], "a", encoding="utf-8") as f:
        f.write("21,Una Rated,2024-25,3\n")  # an archetype, no DARKO rating
    with open(tables["darko"], "a", encoding="utf-8") as f:
        f.write('22,"E","No Kind",1.0,1.0\n')  # a rating, no archetype
    rows = [
        *PLAYS[:2],
        (UNLISTED, LINEUPS["C"][0], 1, "2024-25"),  # nearest listed: kept, counted
        (LINEUPS["C"][0], UNLISTED, 0, "2024-25"),
        ((1, 2, 3, 4, 21), LINEUPS["C"][0], 2, "2024-25"),  # 21: no DARKO
        ((1, 2, 3, 4, 22), LINEUPS["C"][0], 2, "2024-25"),  # 22: no archetype
        ((1, 2, 3, 4, 5), (6, 7, 8, 99, 22), 0, "2024-25"),  # 99: in neither table; and 22
        ((1, 2, 3, 4, 21), (6, 7, 8, 9, 99), 0, "2024-25"),  # both reasons: counted as no archetype
    ]
    src = lineups_csv(tmp_path / "lineups.csv", rows)
    report = _prepare(tables, src, tmp_path / "model.csv")
    assert (report.rows_read, report.rows_written, report.rows_dropped) == (8, 4, 4)
    assert report.dropped == {NO_ARCHETYPE: 3, NO_DARKO: 1}
    missing = {p.player_id: (p.name, p.missing_from, p.possessions) for p in report.missing_players}
    assert missing == {
        21: ("Una Rated", "DARKO", 2),
        22: ("No Kind", "archetypes", 2),
        99: ("", "archetypes and DARKO", 2),
    }
    # an unlisted lineup is placed as `lineup` places it (nearest listed), kept and counted
    players, assignments = load_players(tables["archetypes"], tables["darko"]), load_assignments(tables["assignments"])
    placed = make_lineup(players, assignments, UNLISTED)
    assert placed.note is not None and placed.key == "0_1_2_3_5" and placed.supercluster == 0  # from 0_1_2_3_4
    assert report.nearest_rows == 2 and len(report.unlisted) == 1
    u = report.unlisted[0]
    assert (u.key, u.supercluster, u.offense, u.defense) == ("0_1_2_3_5", placed.supercluster, 1, 1)
    assert u.note == placed.note
    data = load_possessions(tmp_path / "model.csv")
    assert data.matchup.tolist() == [1, 6, 0 * 6 + 2, 2 * 6 + 0]

    with pytest.raises(DataError) as exc:
        _prepare(tables, src, tmp_path / "strict.csv", strict=True)
    message = str(exc.value)
    assert f"{src}: row 5 (line 6), column 'off_5': player 21 (Una Rated)" in message
    assert "not in the DARKO table" in message and str(tables["darko"]) in message
    assert not (tmp_path / "strict.csv").exists()


def test_when_every_possession_is_dropped_it_says_why(tables, tmp_path):
    src = lineups_csv(tmp_path / "lineups.csv", [((1, 2, 3, 4, 99), LINEUPS["C"][0], 1, "2024-25")])
    with pytest.raises(DataError, match=r"every one of the 1 possessions was dropped .*99 not in archetypes and DARKO"):
        _prepare(tables, src, tmp_path / "model.csv")
    assert not (tmp_path / "model.csv").exists()


@pytest.mark.parametrize(
    "case, expected",
    [
        ("no_column", r"lineups\.csv, line 1: missing column\(s\) 'def_3'"),
        (
            "bad_id",
            r"lineups\.csv: row 2 \(line 3\), column 'off_4': 'abc' is not a player id; expected a whole number >= 0",
        ),
        ("fraction_id", r"lineups\.csv: row 3 \(line 4\), column 'def_1': '6\.5' is not a player id"),
        ("empty_id", r"lineups\.csv: row 1 \(line 2\), column 'off_2': empty cell; expected a player id"),
        (
            "bad_points",
            r"row 3 \(line 4\), column 'points': 'two' is not a number of points; expected a number 0-100",
        ),
        ("twice", r"lineups\.csv: row 2 \(line 3\), columns 'off_1' and 'def_5': player 6 is on the floor twice"),
        ("header_only", r"lineups\.csv: the file has column names but no possessions"),
        ("empty", r"lineups\.csv: the file is empty"),
    ],
)
def test_bad_input_names_file_row_and_column_and_leaves_no_file(tables, tmp_path, case, expected):
    src = lineups_csv(tmp_path / "lineups.csv", PLAYS[:4])
    cells = [line.split(",") for line in src.read_text().splitlines()]  # cells[r]: data row r (line r + 1)
    edits = {  # (row, field) -> text
        "bad_id": {(2, 3): "abc"},
        "fraction_id": {(3, 5): "6.5"},
        "empty_id": {(1, 1): ""},
        "bad_points": {(3, 10): "two"},
        "twice": {(2, 9): "6"},  # row 2 is 6..10 against 1..5: player 6 now on both sides
    }
    for (r, c), text in edits.get(case, {}).items():
        cells[r][c] = text
    if case == "no_column":
        cells = [row[:7] + row[8:] for row in cells]  # field 7 is def_3
    elif case == "header_only":
        cells = cells[:1]
    elif case == "empty":
        cells = []
    src.write_text("".join(",".join(row) + "\n" for row in cells))
    out = tmp_path / "out" / "model.csv"
    with pytest.raises(DataError, match=expected):
        _prepare(tables, src, out, chunksize=1)  # an error in a later chunk leaves nothing behind either
    assert not out.parent.exists() or list(out.parent.iterdir()) == []


def test_bad_options_are_refused(tables, tmp_path):
    src = lineups_csv(tmp_path / "lineups.csv", PLAYS)
    with pytest.raises(ConfigError, match="ending in .csv"):
        _prepare(tables, src, tmp_path / "model.parquet")
    with pytest.raises(ConfigError, match="overwrite the input"):
        _prepare(tables, src, src)
    with pytest.raises(DataError, match="no such file"):
        _prepare(tables, tmp_path / "absent.csv", tmp_path / "model.csv")


def test_chunked_output_equals_unchunked(tables, tmp_path):
    rng = np.random.default_rng(0)
    sides = [ids for ids, *_ in LINEUPS.values()] + [UNLISTED]
    pairs = [(a, b) for a in sides for b in sides if not set(a) & set(b)]
    rows = []
    for k in range(60):
        off, dfn = (tuple(rng.permutation(ids).tolist()) for ids in pairs[rng.integers(len(pairs))])
        if k % 7 == 0:
            dfn = (*dfn[:4], 99)  # player 99 is in neither table: the row is dropped
        rows.append((off, dfn, int(rng.choice([0, 0, 0, 1, 2, 3])), f"20{20 + k % 3}-{21 + k % 3}"))
    src = lineups_csv(tmp_path / "lineups.csv", rows)
    reports = {n: _prepare(tables, src, tmp_path / f"model_{n}.csv", chunksize=n) for n in (1, 7, 1000)}
    whole = (tmp_path / "model_1000.csv").read_bytes()
    assert (tmp_path / "model_1.csv").read_bytes() == whole and (tmp_path / "model_7.csv").read_bytes() == whole
    same = [replace(r, out_path="") for r in reports.values()]
    assert same[0] == same[1] == same[2]
    assert reports[1].rows_dropped == 9 and reports[1].rows_written == 51 and reports[1].nearest_rows > 0


def test_the_cli_prepares_and_reports(tables, tmp_path):
    src = lineups_csv(tmp_path / "lineups.csv", [*PLAYS, ((1, 2, 3, 4, 99), LINEUPS["C"][0], 1, "2024-25")])
    out = tmp_path / "model.csv"
    result = runner.invoke(app, ["prepare", str(src), "--out", str(out), "--tables", str(tables["darko"].parent)])
    assert result.exit_code == 0, result.output
    assert "written" in result.output and "dropped: a player not in the archetype table" in result.output
    assert "player 99 is not in the archetypes and DARKO tables: 1 possession(s) dropped" in result.output
    assert f"wrote {out}" in result.output
    assert len(load_possessions(out)) == len(PLAYS)
    bad = tmp_path / "bad.csv"
    bad.write_text(src.read_text().replace("points", "pts"))
    result = runner.invoke(
        app, ["prepare", str(bad), "--out", str(tmp_path / "bad_out.csv"), "--tables", str(tables["darko"].parent)]
    )
    assert result.exit_code == 2 and "missing column(s) 'points'" in result.output
    assert not (tmp_path / "bad_out.csv").exists()
    result = runner.invoke(app, ["prepare", str(src), "--out", str(tmp_path / "x.csv")])
    assert result.exit_code == 2 and "--tables DIR" in result.output


def _real_lineups(shared_data: Path) -> tuple[list[tuple[int, ...]], object, object]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)  # three players listed twice in the archetype table
        players = load_players(shared_data / "player_archetypes_k8_2024-25.csv", shared_data / "darko_dpm_2024-25.csv")
    assignments = load_assignments(shared_data / "supercluster_assignments_multi_season.json")
    teams = players.table[players.table["team"] != ""].groupby("team")
    fives = [tuple(int(i) for i in g.index[:5]) for _, g in teams if len(g) >= 5]
    return fives, players, assignments


def test_real_tables_round_trip_through_a_fit_to_valuation(shared_data, tmp_path):
    """prepare -> train -> the run's matchup counts are the report's, and the expected points the
    model gives a prepared row equal `valuation.expected_points` of the lineups built directly."""
    fives, players, assignments = _real_lineups(shared_data)
    rng = np.random.default_rng(1)
    rows = []
    for _ in range(3000):
        a, b = rng.choice(len(fives), 2, replace=False)
        rows.append((fives[a], fives[b], int(rng.choice(4, p=[0.8, 0.05, 0.1, 0.05])), "2024-25"))
    src = lineups_csv(tmp_path / "lineups.csv", rows)
    out = tmp_path / "model.csv"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        report = prepare_possessions(
            src,
            out,
            shared_data / "player_archetypes_k8_2024-25.csv",
            shared_data / "darko_dpm_2024-25.csv",
            shared_data / "supercluster_assignments_multi_season.json",
            chunksize=700,
        )
    assert report.rows_written == 3000 and sum(1 for n in report.matchups if n) >= 10
    config = RunConfig(
        model="matchup",
        data=DataConfig(path=str(out)),
        sampler=SamplerConfig(chains=2, warmup=60, draws=40, seed=0),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # few draws: not converged; unseen matchups
        train(config, tmp_path / "run")
        fit = load_fit(tmp_path / "run")
    assert fit.n_possessions.tolist() == list(report.matchups)
    data = load_possessions(out)
    pick = np.arange(0, 3000, 150)
    offense = [make_lineup(players, assignments, rows[i][0]) for i in pick]
    defense = [make_lineup(players, assignments, rows[i][1]) for i in pick]
    direct = expected_points(fit, offense, defense)
    from_file = predict(fit.posterior.coef, data.matchup[pick], design_matrix(data.z_off[pick], data.z_def[pick]))
    np.testing.assert_array_equal(from_file, direct)
