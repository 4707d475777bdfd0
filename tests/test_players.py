"""Player tables, lineup features and supercluster assignment, on hand-made and real tables."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from lineup_numpyro.data.possessions import DataError, DataWarning
from lineup_numpyro.lineups.players import (
    default_opponents,
    find_tables,
    load_assignments,
    load_opponents,
    load_players,
    make_lineup,
    parse_lineup,
)

# id, name, archetype, O-DPM, D-DPM, team
ROSTER = [
    (1, "Ana Álvarez", 0, 2.0, 1.0, "A"),
    (2, "Ben Brown", 0, 1.5, -0.5, "A"),
    (3, "Cy Chen", 3, -1.0, 2.0, "A"),
    (4, "Di Diaz", 5, 0.25, 0.5, "A"),
    (5, "Ed Eze", 7, 3.0, -1.0, "A"),
    (6, "Flo Fox", 1, 0.5, 0.5, "B"),
    (7, "Gus Gray", 1, -0.5, 1.5, "B"),
    (8, "Hal Hu", 2, 1.0, 0.0, "B"),
    (9, "Ivy Ito", 4, 2.5, 0.75, "B"),
    (10, "Jo Jones", 6, 0.0, 3.0, "B"),
    (11, "Ben Brown", 6, 0.0, 0.0, "C"),  # a second Ben Brown
]
ASSIGNED = {"0_0_3_5_7": 2, "1_1_2_4_6": 4, "0_0_0_3_5": 1, "0_0_3_5_6": 5}


def write_tables(folder: Path, roster=ROSTER, assigned=ASSIGNED) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = {
        "archetypes": folder / "player_archetypes_test.csv",
        "darko": folder / "darko_test.csv",
        "assignments": folder / "supercluster_assignments_test.json",
    }
    paths["archetypes"].write_text(
        "player_id,player_name,season,archetype\n" + "".join(f"{i},{n},2024-25,{a}\n" for i, n, a, *_ in roster),
        encoding="utf-8",
    )
    paths["darko"].write_text(
        '"nba_id","Team","Player","O-DPM","D-DPM"\n'
        + "".join(f'{i},"{t}","{n}",{o},{d}\n' for i, n, _, o, d, t in roster),
        encoding="utf-8",
    )
    paths["assignments"].write_text(json.dumps({"lineup_assignments": assigned}))
    return paths


@pytest.fixture
def tables(tmp_path):
    paths = write_tables(tmp_path)
    return load_players(paths["archetypes"], paths["darko"]), load_assignments(paths["assignments"]), paths


def test_lineup_features_are_the_archetype_sums(tables):
    players, assignments, _ = tables
    lineup = make_lineup(players, assignments, [5, 3, 1, 4, 2])
    expected_off = np.zeros(8)
    expected_def = np.zeros(8)
    for _i, _, a, o, d, _ in ROSTER[:5]:
        expected_off[a] += o
        expected_def[a] += d
    np.testing.assert_array_equal(lineup.z_off, expected_off)  # [3.5, 0, 0, -1, 0, 0.25, 0, 3]
    np.testing.assert_array_equal(lineup.z_def, expected_def)
    assert lineup.z_off[0] == 3.5 and lineup.z_def[0] == 0.5
    assert lineup.key == "0_0_3_5_7" and lineup.supercluster == 2 and lineup.note is None
    assert lineup.names == ("Ed Eze", "Cy Chen", "Ana Álvarez", "Di Diaz", "Ben Brown")


def test_an_unlisted_lineup_takes_the_nearest_listed_one_and_says_so(tables):
    players, assignments, _ = tables
    # archetypes 0,0,3,5,6: listed
    assert make_lineup(players, assignments, [1, 2, 3, 4, 10]).supercluster == 5
    # 0,0,3,6,7 is not listed; one swap reaches 0_0_3_5_7 (2) or 0_0_3_5_6 (5): the first key wins
    lineup = make_lineup(players, assignments, [1, 2, 3, 10, 5])
    assert lineup.key == "0_0_3_6_7" and lineup.supercluster == 5
    assert "0_0_3_5_6" in lineup.note and "1 player of another archetype" in lineup.note


def test_players_are_found_by_name_without_case_or_accents_and_by_id(tables):
    players, _, _ = tables
    assert players.find("ana alvarez") == 1 and players.find("ANA ÁLVAREZ") == 1 and players.find("9") == 9
    with pytest.raises(DataError, match="2 players are named 'Ben Brown'.*give the id"):
        players.find("Ben Brown")
    with pytest.raises(DataError, match="'Ivy Itoh' is not among the players; did you mean 'Ivy Ito'"):
        players.find("Ivy Itoh")
    with pytest.raises(DataError, match="player id 99 is not among"):
        players.find("99")


def test_players_missing_from_one_table_are_named(tmp_path):
    paths = write_tables(tmp_path)
    with open(paths["archetypes"], "a", encoding="utf-8") as f:
        f.write("12,Kit Kay,2024-25,3\n")
    with open(paths["darko"], "a", encoding="utf-8") as f:
        f.write('13,"B","Lu Lee",1.0,1.0\n')
    players = load_players(paths["archetypes"], paths["darko"])
    with pytest.raises(DataError, match="Kit Kay.*has an archetype but no DARKO rating"):
        players.find("Kit Kay")
    with pytest.raises(DataError, match="Lu Lee.*has a DARKO rating but no archetype"):
        players.find("Lu Lee")


def test_lineups_must_be_five_different_players(tables):
    players, assignments, _ = tables
    with pytest.raises(DataError, match="no player with id 999"):
        make_lineup(players, assignments, [1, 2, 3, 4, 999])
    with pytest.raises(DataError, match="a lineup has 5 players; got 4"):
        parse_lineup(players, assignments, "1, 2, 3, 4")
    with pytest.raises(DataError, match="lists Ana Álvarez more than once"):
        parse_lineup(players, assignments, "Ana Alvarez, 1, 3, 4, 5")


@pytest.mark.parametrize(
    "which,line,match",
    [
        ("archetypes", "12,Kit Kay,2024-25,8", r"row 12 \(line 13\), column 'archetype': '8' is not an integer 0-7"),
        ("archetypes", "12,Kit Kay,2024-25,two", r"column 'archetype': 'two' is not an integer"),
        ("darko", '12,"B","Kit Kay",nan,1.0', r"row 12 \(line 13\), column 'O-DPM': 'nan' is not a finite number"),
        ("darko", '12,"B","Kit Kay",1.0,inf', r"column 'D-DPM': 'inf' is not a finite number"),
        ("darko", '1,"B","Ana again",1.0,1.0', r"row 12 \(line 13\), column 'nba_id': player 1 is listed again"),
        (
            "darko",
            'abc,"B","Kit Kay",1.0,1.0',
            r"row 12 \(line 13\), column 'nba_id': 'abc' is not a whole number >= 0",
        ),
        ("archetypes", "-5,Kit Kay,2024-25,3", r"row 12 \(line 13\), column 'player_id': '-5' is not a whole number"),
    ],
)
def test_bad_cells_name_file_row_and_column(tmp_path, which, line, match):
    paths = write_tables(tmp_path)
    with open(paths[which], "a", encoding="utf-8") as f:
        f.write(line + "\n")
    with pytest.raises(DataError, match=match) as caught:
        load_players(paths["archetypes"], paths["darko"])
    assert str(paths[which]) in str(caught.value)


def test_missing_columns_and_empty_tables(tmp_path):
    paths = write_tables(tmp_path)
    bad = tmp_path / "no_archetype.csv"
    bad.write_text("player_id,player_name\n1,Ana\n")
    with pytest.raises(DataError, match=r"no_archetype.csv: missing column\(s\) 'archetype'"):
        load_players(bad, paths["darko"])
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(DataError, match="empty.csv: the file is empty"):
        load_players(paths["archetypes"], empty)
    header_only = tmp_path / "header.csv"
    header_only.write_text("nba_id,O-DPM,D-DPM\n")
    with pytest.raises(DataError, match="header.csv: no rows under the header"):
        load_players(paths["archetypes"], header_only)


def test_a_player_listed_twice_keeps_the_first_listing_with_a_warning(tmp_path):
    paths = write_tables(tmp_path)
    with open(paths["archetypes"], "a", encoding="utf-8") as f:
        f.write("3,Cy Chen,2024-25,6\n")
    with pytest.warns(DataWarning, match=r"Cy Chen \(lines 4, 13: archetypes 3, 6\)"):
        players = load_players(paths["archetypes"], paths["darko"])
    assert players.table.at[3, "archetype"] == 3
    with open(paths["archetypes"], "a", encoding="utf-8") as f:
        f.write("x9,Bad Id,2024-25,1\n")  # line 14: reported there, though a row above was dropped
    with pytest.raises(DataError, match=r"row 13 \(line 14\), column 'player_id'"):
        load_players(paths["archetypes"], paths["darko"])


@pytest.mark.parametrize(
    "doc,match",
    [
        ("{not json", "not valid JSON"),
        ('{"lineup_assignments": {}}', "non-empty 'lineup_assignments'"),
        ('{"lineup_assignments": {"0_3_0_5_7": 1}}', "'0_3_0_5_7' is not five archetypes 0-7 in ascending order"),
        ('{"lineup_assignments": {"0_0_3_5_8": 1}}', "'0_0_3_5_8' is not five archetypes"),
        (
            '{"lineup_assignments": {"0_0_3_5_7": 6}}',
            r"lineup_assignments\['0_0_3_5_7'\] = 6 is not a supercluster 0-5",
        ),
    ],
)
def test_bad_assignment_files(tmp_path, doc, match):
    path = tmp_path / "assign.json"
    path.write_text(doc)
    with pytest.raises(DataError, match=match):
        load_assignments(path)


def test_default_opponents_are_each_teams_best_five(tables):
    players, assignments, _ = tables
    opponents = default_opponents(players, assignments)
    assert [set(o.player_ids) for o in opponents] == [{1, 2, 3, 4, 5}, {6, 7, 8, 9, 10}]  # team C has one player


def test_opponents_file(tables, tmp_path):
    players, assignments, _ = tables
    path = tmp_path / "opp.csv"
    path.write_text(
        "player_1,player_2,player_3,player_4,player_5\nFlo Fox,Gus Gray,Hal Hu,Ivy Ito,Jo Jones\n1,2,3,4,Nobody\n"
    )
    with pytest.raises(DataError, match=r"opp.csv: row 2 \(line 3\): .*'Nobody' is not among the players"):
        load_opponents(path, players, assignments)
    path.write_text("player_1,player_2,player_3,player_4,player_5\nFlo Fox,Gus Gray,Hal Hu,Ivy Ito,Jo Jones\n")
    [lineup] = load_opponents(path, players, assignments)
    assert lineup.key == "1_1_2_4_6" and lineup.supercluster == 4


def test_find_tables(tmp_path):
    paths = write_tables(tmp_path)
    found = find_tables(tmp_path)
    assert {k: found[k] for k in paths} == paths and "salaries" not in found
    (tmp_path / "darko_old.csv").write_text("x")
    with pytest.raises(DataError, match="2 files match darko"):
        find_tables(tmp_path)


def test_the_real_tables(shared_data):
    with pytest.warns(DataWarning, match="3 player"):
        players = load_players(shared_data / "player_archetypes_k8_2024-25.csv", shared_data / "darko_dpm_2024-25.csv")
    assignments = load_assignments(shared_data / "supercluster_assignments_multi_season.json")
    assert len(players.table) == 270 and len(assignments.lineups) == 449
    assert players.find("Nikola Jokic") == 203999
    opponents = default_opponents(players, assignments)
    assert len(opponents) == 30
    for lineup in opponents:
        rows = players.table.loc[list(lineup.player_ids)]
        assert np.isclose(lineup.z_off.sum(), rows["o_dpm"].sum()) and np.isclose(
            lineup.z_def.sum(), rows["d_dpm"].sum()
        )
        listed = lineup.key in assignments.lineups  # a note exactly when the lineup is not listed
        assert (lineup.note is None) == listed, (lineup.key, lineup.note)
        if listed:
            assert lineup.supercluster == assignments.lineups[lineup.key]
