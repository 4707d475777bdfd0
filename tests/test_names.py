"""One numbering wherever a person reads it, and names put on the numbers by a labels file."""

from __future__ import annotations

import json

import pytest

from lineup_numpyro import names
from lineup_numpyro.errors import ConfigError


def test_stan_names_map_to_the_numbering_people_read():
    # Stan's 1-based positions -> matchup id and archetype 0-based; and back
    assert names.parse_stan_name("beta_off[8,5]") == ("beta_off", (7, 4))
    assert names.parse_stan_name("sigma") == ("sigma", ())
    assert names.stan_name("beta_off", (7, 4)) == "beta_off[8,5]"
    assert names.MATCHUP_LABELS[7] == "1_vs_1" and names.matchup_label(35) == "5_vs_5"
    assert names.COORDS == {"matchup": list(range(36)), "archetype": list(range(8))}


def test_labels_default_to_the_numbers_and_name_them_from_json(tmp_path):
    plain = names.Labels()
    assert not plain.named and plain.archetype(3) == "3" and plain.matchup(8) == "1_vs_2"
    path = tmp_path / "labels.json"
    archetypes = ["Scoring Wings", "Bigs", "Offensive Bigs", "Frontcourt", "Juggernauts", "3&D", "Guards", "PG"]
    path.write_text(json.dumps({"archetypes": archetypes}))
    named = names.Labels.from_json(path)
    assert named.named and named.archetype(5) == "5 3&D" and named.supercluster(2) == "2"
    path.write_text(json.dumps({"superclusters": ["A", "B", "C", "D", "E", "F"]}))
    assert names.Labels.from_json(path).matchup(8) == "1_vs_2 (B vs C)"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not a JSON labels file"),
        (json.dumps({"archetypes": ["a"] * 7}), '"archetypes" must be a list of 8'),
        (json.dumps({"superclusters": ["a", "b", "c", "d", "e", ""]}), '"superclusters" must be a list of 6'),
        (json.dumps({"teams": []}), "expected an object"),
    ],
)
def test_bad_labels_files_are_named(tmp_path, content, message):
    path = tmp_path / "labels.json"
    path.write_text(content)
    with pytest.raises(ConfigError, match=message) as info:
        names.Labels.from_json(path)
    assert str(path) in str(info.value)
    with pytest.raises(ConfigError, match="no such labels file"):
        names.Labels.from_json(tmp_path / "missing.json")
