"""Loading and validating possession files: good inputs, the bad-input corpus, degenerate data.

The corpus lives in tests/bad_inputs/ (regenerate with `python tests/bad_inputs/make_corpus.py`).
Every bad file must fail with a DataError whose message names the file, the row and line
(CSV) and column where there is one, and what was expected; through the CLI it must exit
with code 2, print `error: <message>` on stderr, show no traceback and create no run dir.
"""

from __future__ import annotations

import bz2
import gzip
import importlib.util
import json
import lzma
import os
import re
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from lineup_numpyro import names
from lineup_numpyro.config import DataConfig, RunConfig, parse_where
from lineup_numpyro.data.possessions import (
    DataError,
    DataWarning,
    Possessions,
    iter_chunks,
    load_possessions,
    parse_seasons,
    read_ahead,
)
from lineup_numpyro.data.suffstats import (
    FEW_POSSESSIONS,
    SuffStats,
    by_column,
    degenerate_data_messages,
    from_file,
    require_fittable,
    warn_degenerate,
)
from lineup_numpyro.errors import ConfigError

CORPUS = Path(__file__).resolve().parent / "bad_inputs"
SHARED_DATA = Path(os.environ.get("LINEUP_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
REQUIRED = ", ".join(names.REQUIRED_COLUMNS)
MATCHUP_EXPECTED = "expected '<off>_vs_<def>' with superclusters 0-5, or an integer 0-35"
SEASONS = ("2019-20", "2020-21", "2021-22")


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def real_csv() -> Path:
    path = SHARED_DATA / "quick_sample_10k.csv"
    if not path.exists():
        pytest.fail(f"real data not found: {path}; set LINEUP_SHARED_DATA to the folder holding it")
    return path


@pytest.fixture(scope="module")
def real(real_csv: Path) -> Possessions:
    return load_possessions(real_csv)


@pytest.fixture(scope="module")
def real_text(real_csv: Path) -> pd.DataFrame:
    """The real file with every cell as written (no float parsing), to build other layouts from."""
    return pd.read_csv(real_csv, dtype=str, keep_default_na=False)


def integer_layout(label_frame: pd.DataFrame, seed: int = 0, numeric: bool = False) -> pd.DataFrame:
    """The original project's second layout, built independently of the loader: integer
    matchup_id, off/def_supercluster, a season column, columns in a random order."""
    parts = label_frame[names.MATCHUP].str.split("_vs_", expand=True).astype(int)
    df = label_frame.copy()
    df[names.OFF_SUPERCLUSTER] = parts[0]
    df[names.DEF_SUPERCLUSTER] = parts[1]
    df[names.MATCHUP] = parts[0] * 6 + parts[1]
    df[names.SEASON] = [SEASONS[i % 3] for i in range(len(df))]
    if numeric:
        for col in (names.OUTCOME, *names.Z_OFF, *names.Z_DEF):
            df[col] = df[col].astype(float)
    order = np.random.default_rng(seed).permutation(df.columns)
    return df[list(order)]


def assert_same(a: Possessions, b: Possessions, season: bool = False) -> None:
    """Identical arrays (exact: both come from the same decimal text)."""
    assert len(a) == len(b)
    for field in ("y", "matchup", "z_off", "z_def"):
        x, y = getattr(a, field), getattr(b, field)
        assert x.dtype == y.dtype, field
        np.testing.assert_array_equal(x, y, err_msg=field)
    if season:
        np.testing.assert_array_equal(a.season, b.season)


def load_error(path: Path, **kwargs) -> str:
    with pytest.raises(DataError) as info:
        load_possessions(path, **kwargs)
    return str(info.value)


def _load_corpus_script():
    spec = importlib.util.spec_from_file_location("make_corpus", CORPUS / "make_corpus.py")
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


# --------------------------------------------------------------------------- good inputs


def test_real_sample_loads(real: Possessions, real_csv: Path, real_text: pd.DataFrame):
    assert len(real) == 10_000
    assert real.source == str(real_csv)
    assert real.y.shape == (10_000,) and real.y.dtype == np.float64
    assert real.matchup.dtype == np.int64
    assert real.z_off.shape == real.z_def.shape == (10_000, 8)
    assert real.season is None
    assert set(np.unique(real.y)) == {0.0, 1.0, 2.0, 3.0}
    counts = np.bincount(real.matchup, minlength=36)
    assert len(counts) == 36 and (counts > 0).all(), "all 36 matchups present"
    # Counts per matchup agree with a plain pandas count of the labels (52 in 5_vs_5 up to 797 in 1_vs_1).
    by_label = real_text[names.MATCHUP].value_counts()
    assert {names.MATCHUP_LABELS[m]: int(c) for m, c in enumerate(counts)} == by_label.to_dict()
    assert counts.min() == 52 and counts[35] == 52 and counts.max() == 797 and counts[7] == 797
    # First data row: 0,1_vs_1,0.0,0.0,0.0,-0.8180101339,...,2.9804732094,0.5444020153,...,
    # -2.59640054726,2.5403917735999997
    assert real.y[0] == 0.0 and real.matchup[0] == 1 * 6 + 1
    assert real.z_def[0, 0] == 0.0 and real.z_def[0, 1] == -0.8180101339
    assert real.z_off[0, 4] == 2.9804732094 and real.z_def[0, 4] == 0.5444020153
    assert real.z_off[0, 7] == -2.59640054726 and real.z_def[0, 7] == 2.5403917735999997
    assert real.matchup[1] == 5 * 6 + 1
    # The design row is [1, z_off, -z_def].
    x = real.design()
    assert x.shape == (10_000, 17)
    np.testing.assert_array_equal(x[:, 0], 1.0)
    np.testing.assert_array_equal(x[:, 1:9], real.z_off)
    np.testing.assert_array_equal(x[:, 9:], -real.z_def)


def test_integer_layout_gives_the_same_arrays_as_label_layout(tmp_path, real, real_text):
    path = tmp_path / "integer_layout.csv"
    integer_layout(real_text, seed=1).to_csv(path, index=False)
    header = path.read_text().splitlines()[0].split(",")
    assert header[:3] != ["outcome", "matchup_id", "z_off_0"]  # really shuffled
    loaded = load_possessions(path)
    assert_same(loaded, real)
    np.testing.assert_array_equal(loaded.season, [SEASONS[i % 3] for i in range(10_000)])


@pytest.mark.parametrize("layout", ["label", "integer"])
def test_parquet_gives_the_same_arrays_as_csv(tmp_path, real, real_text, layout):
    if layout == "label":
        frame = real_text.copy()
        for col in (names.OUTCOME, *names.Z_OFF, *names.Z_DEF):
            frame[col] = frame[col].astype(float)
    else:
        frame = integer_layout(real_text, seed=2, numeric=True)
    parquet, csv = tmp_path / "p.parquet", tmp_path / "p.csv"
    frame.to_parquet(parquet, index=False)
    frame.to_csv(csv, index=False)
    from_parquet = load_possessions(parquet)
    assert_same(from_parquet, real)
    assert_same(from_parquet, load_possessions(csv), season=layout == "integer")
    # Streaming statistics agree too, in any chunking.
    a, b = from_file(parquet, chunksize=333), from_file(csv)
    np.testing.assert_array_equal(a.n, b.n)
    np.testing.assert_allclose(a.xtx, b.xtx, rtol=1e-12, atol=1e-9)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_column_order_never_matters(tmp_path, real, real_text, seed):
    order = np.random.default_rng(seed).permutation(real_text.columns)
    path = tmp_path / "shuffled.csv"
    real_text[list(order)].to_csv(path, index=False)
    assert_same(load_possessions(path), real)


def test_bom_file_loads_like_the_plain_file():
    bom = CORPUS / "bom.csv"
    assert bom.read_bytes().startswith(b"\xef\xbb\xbf")
    assert_same(load_possessions(bom), load_possessions(CORPUS / "good.csv"))
    assert len(load_possessions(bom)) == 12


def test_corpus_layouts_agree():
    """The small label and integer-layout references hold the same possessions."""
    assert_same(load_possessions(CORPUS / "good.csv"), load_possessions(CORPUS / "good_integer_layout.csv"))


@pytest.mark.parametrize(
    ("cell", "expected"),
    [("1_vs_1", 7), (" 1_vs_1 ", 7), ("5_vs_5", 35), ("0_vs_0", 0), ("7", 7), ("7.0", 7), ("35", 35), ("0", 0)],
)
def test_accepted_matchup_spellings(tmp_path, cell, expected):
    text = (CORPUS / "good.csv").read_text().splitlines()
    fields = text[1].split(",")
    fields[1] = f'"{cell}"'
    text[1] = ",".join(fields)
    path = tmp_path / "m.csv"
    path.write_text("\n".join(text) + "\n")
    assert load_possessions(path).matchup[0] == expected


def test_extra_columns_are_ignored_with_a_warning(tmp_path, real_text, real):
    frame = real_text.copy()
    frame["player_names"] = "x"
    path = tmp_path / "extra.csv"
    frame.to_csv(path, index=False)
    with pytest.warns(DataWarning, match=r"extra\.csv: ignoring column\(s\) player_names"):
        loaded = load_possessions(path)
    assert_same(loaded, real)


def test_parse_seasons():
    assert parse_seasons(None) == ()
    assert parse_seasons("") == ()
    assert parse_seasons("2021-22") == ("2021-22",)
    assert parse_seasons(" 2018-19 , 2021-22,") == ("2018-19", "2021-22")


@pytest.fixture(scope="module")
def seasons_csv(tmp_path_factory, real_text) -> Path:
    path = tmp_path_factory.mktemp("seasons") / "seasons.csv"
    integer_layout(real_text, seed=3).to_csv(path, index=False)
    return path


@pytest.mark.parametrize("wanted", [("2021-22",), ("2019-20", "2021-22"), SEASONS])
@pytest.mark.parametrize("chunksize", [997, 200_000])
def test_season_filter(seasons_csv, real, wanted, chunksize):
    season = np.array([SEASONS[i % 3] for i in range(len(real))])
    keep = np.isin(season, wanted)
    loaded = load_possessions(seasons_csv, seasons=wanted, chunksize=chunksize)
    assert len(loaded) == keep.sum()
    assert set(loaded.season) == set(wanted)
    np.testing.assert_array_equal(loaded.y, real.y[keep])
    np.testing.assert_array_equal(loaded.matchup, real.matchup[keep])
    np.testing.assert_array_equal(loaded.z_off, real.z_off[keep])
    np.testing.assert_array_equal(loaded.z_def, real.z_def[keep])
    stats = from_file(seasons_csv, seasons=wanted, chunksize=chunksize)
    assert stats.total == keep.sum()
    np.testing.assert_array_equal(stats.n, np.bincount(real.matchup[keep], minlength=36))


def test_season_filter_on_a_file_without_season_column(real_csv):
    message = load_error(real_csv, seasons=("2021-22",))
    assert message == (
        f"{real_csv}: a season filter (2021-22) was given but the file has no 'season' column; "
        "expected a 'season' column, or no season filter"
    )


def test_season_filter_that_matches_nothing_lists_the_seasons_present(seasons_csv):
    message = load_error(seasons_csv, seasons=("1999-00", "2030-31"), chunksize=997)
    assert message == (
        f"{seasons_csv}, column 'season': no possession in season(s) 1999-00, 2030-31; "
        "the file has 2019-20, 2020-21, 2021-22"
    )


TEAMS = ("BOS", "DEN", "NYK", "")  # "" : rows with no team


@pytest.fixture(scope="module")
def teams_files(tmp_path_factory, real_text) -> dict[str, Path]:
    """The real rows with a season and a free-text team column, as CSV and as Parquet."""
    frame = integer_layout(real_text, seed=5)
    frame["team"] = [TEAMS[(i * 7) % 4] for i in range(len(frame))]
    folder = tmp_path_factory.mktemp("teams")
    numeric = frame.astype({c: float for c in (names.OUTCOME, *names.Z_OFF, *names.Z_DEF)})
    numeric.to_parquet(folder / "teams.parquet", index=False)
    frame.to_csv(folder / "teams.csv", index=False)
    return {"csv": folder / "teams.csv", "parquet": folder / "teams.parquet"}


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
@pytest.mark.parametrize("chunksize", [997, 200_000])
def test_where_keeps_the_rows_of_one_value_and_by_column_splits_in_one_pass(teams_files, real, fmt, chunksize):
    path = teams_files[fmt]
    team = np.array([TEAMS[(i * 7) % 4] for i in range(len(real))])
    season = np.array([SEASONS[i % 3] for i in range(len(real))])
    for value in TEAMS:
        keep = team == value
        loaded = load_possessions(path, chunksize=chunksize, where=("team", value))
        np.testing.assert_array_equal(loaded.y, real.y[keep])
        np.testing.assert_array_equal(loaded.z_def, real.z_def[keep])
        both = (team == value) & (season == "2020-21")
        assert from_file(path, ("2020-21",), chunksize, where=("team", value)).total == both.sum()
    groups = by_column(path, "team", chunksize=chunksize)
    assert list(groups) == sorted(TEAMS)
    for value, stats in groups.items():
        expected = SuffStats.from_possessions(real.subset(team == value))
        np.testing.assert_allclose(stats.xtx, expected.xtx, rtol=1e-12, atol=1e-10)  # chunks sum in another order
        np.testing.assert_array_equal(stats.n, expected.n)
    assert list(by_column(path, "season", ("2021-22",), chunksize)) == ["2021-22"]


def test_where_errors_name_the_file_the_column_and_what_is_there(teams_files, real_csv):
    path = teams_files["csv"]
    message = load_error(path, where=("team", "LAL"))
    assert message == f"{path}, column 'team': no possession with team = 'LAL'; expected one of '', 'BOS', 'DEN', 'NYK'"
    message = load_error(path, seasons=("2020-21",), where=("team", "LAL"))
    assert "no possession in season(s) 2020-21 with team = 'LAL'" in message
    message = load_error(real_csv, where=("team", "BOS"))
    assert message.startswith(f"{real_csv}: no column 'team' to split or filter by; expected one of the file's")


def test_where_is_a_config_of_the_data(tmp_path):
    assert parse_where(None) is None and parse_where(" team = BOS ") == ("team", "BOS")
    assert parse_where("team=") == ("team", "")
    for bad in ("team", "=BOS"):
        with pytest.raises(ConfigError, match="expected COLUMN=VALUE"):
            parse_where(bad)
    with pytest.raises(ConfigError, match="'outcome' is part of the model's input"):
        DataConfig(path="x.csv", where=("outcome", "1"))
    with pytest.raises(ConfigError, match="give --data too"):
        DataConfig(where=("team", "BOS"))
    config = RunConfig(data=DataConfig(path="x.csv", seasons=("2020-21",), where=["team", "BOS"]))
    assert config.data.where == ("team", "BOS")
    assert RunConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    assert config.data.describe() == "x.csv (seasons 2020-21) (team BOS)"


def _head(real: Possessions, n: int) -> Possessions:
    return Possessions(real.y[:n], real.matchup[:n], real.z_off[:n], real.z_def[:n], None, real.source)


@pytest.mark.parametrize(
    ("rows", "chunksize"),
    [(300, 1), (300, 7), (10_000, 999), (10_000, 9_999), (10_000, 10_000), (10_000, 200_000)],
)
def test_chunked_reading_equals_one_chunk(tmp_path, real_text, real, rows, chunksize):
    """Small chunks on the first rows (each chunk costs a few ms), larger ones on the whole file."""
    path = tmp_path / "sample.csv"
    real_text.iloc[:rows].to_csv(path, index=False)
    chunks = list(iter_chunks(path, chunksize=chunksize))
    assert len(chunks) == -(-rows // chunksize)
    assert all(len(c) == chunksize for c in chunks[:-1])
    assert_same(Possessions.concat(chunks), _head(real, rows))
    assert_same(load_possessions(path, chunksize=chunksize), _head(real, rows))


@pytest.mark.parametrize(("rows", "chunksize"), [(300, 7), (10_000, 997)])
def test_chunked_parquet_equals_one_chunk(tmp_path, real, real_text, rows, chunksize):
    path = tmp_path / "p.parquet"
    integer_layout(real_text.iloc[:rows], numeric=True).to_parquet(path, index=False)
    chunks = list(iter_chunks(path, chunksize=chunksize))
    assert len(chunks) == -(-rows // chunksize)
    assert_same(Possessions.concat(chunks), _head(real, rows))


def test_chunksize_must_be_positive(real_csv):
    with pytest.raises(ValueError, match="chunksize must be at least 1"):
        list(iter_chunks(real_csv, chunksize=0))


# ----------------------------------------------- row numbers when the bad row is in a later chunk


def _real_with_cell(real_text: pd.DataFrame, row: int, column: str, value: str) -> pd.DataFrame:
    frame = real_text.copy()
    frame.loc[row - 1, column] = value
    return frame


# (rows in the file, chunksize, bad row): the bad row sits in a late chunk, a middle one, or the only one.
LATE = [(600, 7, 584), (10_000, 997, 9_876), (10_000, 200_000, 9_876)]


@pytest.mark.parametrize(("rows", "chunksize", "bad"), LATE)
def test_row_number_of_a_bad_cell_in_a_later_chunk(tmp_path, real_text, rows, chunksize, bad):
    path = tmp_path / "late.csv"
    _real_with_cell(real_text.iloc[:rows], bad, "z_off_5", "x1").to_csv(path, index=False)
    assert load_error(path, chunksize=chunksize) == (
        f"{path}, row {bad} (line {bad + 1}), column 'z_off_5': 'x1' is not a number; expected a finite number"
    )


@pytest.mark.parametrize(("rows", "chunksize", "bad"), LATE)
def test_row_number_of_a_bad_matchup_in_a_later_chunk(tmp_path, real_text, rows, chunksize, bad):
    path = tmp_path / "late.csv"
    _real_with_cell(real_text.iloc[:rows], bad, "matchup_id", "3_vs_9").to_csv(path, index=False)
    assert load_error(path, chunksize=chunksize) == (
        f"{path}, row {bad} (line {bad + 1}), column 'matchup_id': invalid matchup '3_vs_9'; {MATCHUP_EXPECTED}"
    )


@pytest.mark.parametrize(("rows", "chunksize", "bad"), LATE)
def test_row_number_counts_rows_the_season_filter_drops(tmp_path, real_text, rows, chunksize, bad):
    path = tmp_path / "late.csv"
    frame = integer_layout(real_text.iloc[:rows])
    frame.loc[bad - 1, "z_def_2"] = "inf"
    assert frame.loc[bad - 1, "season"] != "2019-20"  # the bad row is one the filter would drop
    frame.to_csv(path, index=False)
    message = load_error(path, seasons=("2019-20",), chunksize=chunksize)
    assert message == (
        f"{path}, row {bad} (line {bad + 1}), column 'z_def_2': 'inf' is not a finite number; expected a finite number"
    )


@pytest.mark.parametrize(("rows", "chunksize"), [(600, 7), (10_000, 997), (10_000, 200_000)])
def test_truncated_last_line_of_a_large_file(tmp_path, real_text, rows, chunksize):
    full = tmp_path / "full.csv"
    real_text.iloc[:rows].to_csv(full, index=False)
    text = full.read_text()
    path = tmp_path / "cut.csv"
    path.write_text(text[: len(text) - 60])  # the last line loses its last few fields
    message = load_error(path, chunksize=chunksize)
    assert message.startswith(f"{path}, row {rows} (line {rows + 1}): the line has only ")
    assert "of the 18 fields named in the header (it stops after column " in message
    assert message.endswith("expected 18 comma-separated fields. Was the line cut short or the file truncated?")


@pytest.mark.parametrize(("rows", "chunksize", "bad"), LATE)
def test_extra_field_in_a_later_chunk(tmp_path, real_text, rows, chunksize, bad):
    full = tmp_path / "full.csv"
    real_text.iloc[:rows].to_csv(full, index=False)
    lines = full.read_text().splitlines()
    lines[bad] += ",0.0"  # data row `bad` is on line bad + 1, i.e. lines[bad]
    path = tmp_path / "extra.csv"
    path.write_text("\n".join(lines) + "\n")
    assert load_error(path, chunksize=chunksize) == (
        f"{path}, row {bad} (line {bad + 1}): the line has 19 fields but the header has 18; expected 18 "
        "comma-separated fields (a stray comma, or an unquoted comma inside a value?)"
    )


@pytest.mark.parametrize("chunksize", [997, 200_000])
def test_parquet_bad_rows_name_the_row(tmp_path, real_text, chunksize):
    frame = integer_layout(real_text, numeric=True)
    nan = frame.copy()
    nan.loc[9_876 - 1, "z_off_3"] = np.nan
    nan.to_parquet(tmp_path / "nan.parquet", index=False)
    assert load_error(tmp_path / "nan.parquet", chunksize=chunksize) == (
        f"{tmp_path / 'nan.parquet'}, row 9876, column 'z_off_3': missing value (null or NaN); expected a finite number"
    )
    bad = frame.copy()
    bad.loc[77 - 1, [names.MATCHUP, names.OFF_SUPERCLUSTER, names.DEF_SUPERCLUSTER]] = [36, 6, 0]
    bad.to_parquet(tmp_path / "m.parquet", index=False)
    assert load_error(tmp_path / "m.parquet", chunksize=chunksize) == (
        f"{tmp_path / 'm.parquet'}, row 77, column 'matchup_id': invalid matchup 36; {MATCHUP_EXPECTED}"
    )
    off = frame.copy()
    m = int(off.loc[500 - 1, names.MATCHUP])
    off.loc[500 - 1, names.MATCHUP] = (m + 1) % 36
    off.to_parquet(tmp_path / "o.parquet", index=False)
    message = load_error(tmp_path / "o.parquet", chunksize=chunksize)
    assert message.startswith(f"{tmp_path / 'o.parquet'}, row 500, column 'matchup_id': matchup {(m + 1) % 36} ")
    assert f"disagrees with off_supercluster={m // 6}, def_supercluster={m % 6}" in message
    assert message.endswith("expected matchup_id = off_supercluster * 6 + def_supercluster")


# --------------------------------------------------------------------------- other files


def test_missing_file(tmp_path):
    assert load_error(tmp_path / "nope.csv") == f"{tmp_path / 'nope.csv'}: no such file"


def test_directory_instead_of_file(tmp_path):
    assert load_error(tmp_path) == f"{tmp_path}: is a directory; expected a CSV or Parquet file"


def test_unsupported_file_type(tmp_path):
    path = tmp_path / "possessions.xlsx"
    path.write_bytes(b"PK\x03\x04")
    assert load_error(path) == (
        f"{path}: unsupported file type '.xlsx'; expected .csv (optionally .gz, .bz2 or .xz) or .parquet"
    )


@pytest.mark.parametrize("suffix", [".gz", ".bz2", ".xz"])
def test_compressed_csv_loads(tmp_path, real, real_csv, suffix):
    module = {".gz": gzip, ".bz2": bz2, ".xz": lzma}[suffix]
    path = tmp_path / f"sample.csv{suffix}"
    path.write_bytes(module.compress(real_csv.read_bytes()))
    assert_same(load_possessions(path), real)


def test_compressed_csv_errors_name_row_and_line(tmp_path):
    path = tmp_path / "bad.csv.gz"
    path.write_bytes(gzip.compress((CORPUS / "text_in_numeric.csv").read_bytes()))
    assert load_error(path) == (
        f"{path}, row 7 (line 8), column 'z_off_2': 'abc' is not a number; expected a finite number"
    )


def test_corrupt_gzip(tmp_path, real_csv):
    path = tmp_path / "bad.csv.gz"
    path.write_bytes(b"this is not gzip data")
    message = load_error(path)
    assert message.startswith(f"{path}: cannot decompress the file (")
    assert message.endswith("); expected a .gz compressed CSV file")
    cut = tmp_path / "cut.csv.gz"
    data = gzip.compress(real_csv.read_bytes())
    cut.write_bytes(data[: len(data) // 2])
    message = load_error(cut)
    assert message.startswith(f"{cut}: cannot read the file (") and message.endswith("expected a complete CSV file")


def test_not_utf8_in_the_header(tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes((CORPUS / "good.csv").read_bytes().replace(b"outcome", b"outcom\xe9", 1))
    assert load_error(path) == (
        f"{path}, line 1: byte 0xe9 is not UTF-8 (the file looks saved as Windows-1252 or Latin-1); "
        "expected a UTF-8 text file (re-save it as 'CSV UTF-8')"
    )


@pytest.mark.parametrize("content", ["\n", "\n\n  \n", " "])
def test_blank_file_is_empty(tmp_path, content):
    path = tmp_path / "blank.csv"
    path.write_text(content)
    assert load_error(path) == f"{path}: the file is empty; expected a header row and possessions"


def test_header_then_blank_lines_has_no_possessions(tmp_path):
    path = tmp_path / "blank_rows.csv"
    path.write_text((CORPUS / "header_only.csv").read_text() + "\n\n\n")
    assert load_error(path) == (f"{path}: the file has column names but no possessions; expected at least one data row")


def test_header_only_parquet(tmp_path, real_text):
    path = tmp_path / "empty.parquet"
    real_text.iloc[:0].to_parquet(path, index=False)
    assert load_error(path) == (f"{path}: the file has column names but no possessions; expected at least one data row")


# --------------------------------------------------------------------------- the bad-input corpus


def msg(name: str, rest: str) -> str:
    return f"{CORPUS / name}{rest}"


BAD = {
    "truncated.csv": msg(
        "truncated.csv",
        ", row 12 (line 13): the line has only 8 of the 18 fields named in the header (it stops after column "
        "'z_def_2'); expected 18 comma-separated fields. Was the line cut short or the file truncated?",
    ),
    "semicolon.csv": msg(
        "semicolon.csv", ", line 1: the header is one column separated by ';'; expected a comma-separated file"
    ),
    "duplicate_column.csv": msg(
        "duplicate_column.csv",
        ", line 1: column 'z_off_3' appears more than once in the header; expected each column once",
    ),
    "repeated_header.csv": msg(
        "repeated_header.csv",
        ", row 7 (line 8), column 'outcome': 'outcome' is the column's own name: the header is repeated here "
        "(two files joined?); expected a finite number",
    ),
    "text_in_numeric.csv": msg(
        "text_in_numeric.csv",
        ", row 7 (line 8), column 'z_off_2': 'abc' is not a number; expected a finite number",
    ),
    "nan_value.csv": msg(
        "nan_value.csv", ", row 7 (line 8), column 'z_def_4': 'NaN' is not a finite number; expected a finite number"
    ),
    "inf_value.csv": msg(
        "inf_value.csv", ", row 7 (line 8), column 'z_off_1': 'inf' is not a finite number; expected a finite number"
    ),
    "empty_cell.csv": msg("empty_cell.csv", ", row 7 (line 8), column 'outcome': empty cell; expected a finite number"),
    "huge_value.csv": msg(
        "huge_value.csv", ", row 7 (line 8), column 'z_def_6': 1e300 is implausibly large; expected |value| <= 1000"
    ),
    "matchup_out_of_range_label.csv": msg(
        "matchup_out_of_range_label.csv",
        f", row 7 (line 8), column 'matchup_id': invalid matchup '6_vs_1'; {MATCHUP_EXPECTED}",
    ),
    "matchup_out_of_range_int.csv": msg(
        "matchup_out_of_range_int.csv",
        f", row 7 (line 8), column 'matchup_id': invalid matchup '36'; {MATCHUP_EXPECTED}",
    ),
    "matchup_negative.csv": msg(
        "matchup_negative.csv", f", row 7 (line 8), column 'matchup_id': invalid matchup '-1'; {MATCHUP_EXPECTED}"
    ),
    "matchup_malformed_dash.csv": msg(
        "matchup_malformed_dash.csv",
        f", row 7 (line 8), column 'matchup_id': invalid matchup '1-vs-2'; {MATCHUP_EXPECTED}",
    ),
    "matchup_malformed_text.csv": msg(
        "matchup_malformed_text.csv",
        f", row 7 (line 8), column 'matchup_id': invalid matchup 'abc'; {MATCHUP_EXPECTED}",
    ),
    "matchup_empty.csv": msg(
        "matchup_empty.csv", f", row 7 (line 8), column 'matchup_id': empty cell (no matchup); {MATCHUP_EXPECTED}"
    ),
    "inconsistent_superclusters.csv": msg(
        "inconsistent_superclusters.csv",
        ", row 7 (line 8), column 'matchup_id': matchup 7 disagrees with off_supercluster=2, def_supercluster=1 "
        "(which make matchup 13 = 2_vs_1); expected matchup_id = off_supercluster * 6 + def_supercluster",
    ),
    "empty.csv": msg("empty.csv", ": the file is empty (0 bytes); expected a header row and possessions"),
    "header_only.csv": msg(
        "header_only.csv", ": the file has column names but no possessions; expected at least one data row"
    ),
    "misspelled_column.csv": msg(
        "misspelled_column.csv", ", line 1, column 'z_of_3': unknown column; did you mean 'z_off_3'?"
    ),
    "missing_column.csv": msg(
        "missing_column.csv", f": missing required column(s) z_def_7; expected {REQUIRED} (any order)"
    ),
    "no_header.csv": msg(
        "no_header.csv",
        ", line 1: the first line looks like data ('0', '2_vs_1', '-7.1308', '0.0', ...), not a header; "
        f"expected a header row naming the columns {REQUIRED} (any order)",
    ),
    "extra_field.csv": msg(
        "extra_field.csv",
        ", row 7 (line 8): the line has 19 fields but the header has 18; expected 18 comma-separated fields "
        "(a stray comma, or an unquoted comma inside a value?)",
    ),
    "blank_lines_then_bad.csv": msg(  # two blank lines earlier: data row 9 is on line 12
        "blank_lines_then_bad.csv",
        ", row 9 (line 12), column 'z_off_4': 'oops' is not a number; expected a finite number",
    ),
    "cp1252.csv": msg(
        "cp1252.csv",
        ", row 7 (line 8), column 'season': byte 0x96 is not UTF-8 (the file looks saved as Windows-1252 or "
        "Latin-1); expected a UTF-8 text file (re-save it as 'CSV UTF-8')",
    ),
    "not_parquet.parquet": msg("not_parquet.parquet", ": not a readable Parquet file ("),
}
GOOD = {"good.csv", "good_integer_layout.csv", "bom.csv"}
UNFITTABLE = {"constant_matchup35.csv"}


def test_corpus_files_match_the_generator():
    """Every corpus file is what make_corpus.py writes, is small, and has a test."""
    expected = _load_corpus_script().corpus()
    on_disk = {p.name for p in CORPUS.iterdir() if p.is_file() and p.suffix != ".py"}
    assert on_disk == set(expected), "run: python tests/bad_inputs/make_corpus.py"
    for name, data in expected.items():
        assert (CORPUS / name).read_bytes() == data, f"{name} is stale; run make_corpus.py"
        assert len(data) < 5_000, name
    assert set(expected) == set(BAD) | GOOD | UNFITTABLE


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_input_raises_a_clear_data_error(name):
    message = load_error(CORPUS / name)
    expected = BAD[name]
    if name == "not_parquet.parquet":
        assert message.startswith(expected) and message.endswith("); expected a Parquet file")
    else:
        assert message == expected
    assert "\n" not in message


@pytest.mark.parametrize("name", sorted(n for n in BAD if "row " in BAD[n]))
@pytest.mark.parametrize("chunksize", [1, 3, 5])
def test_bad_input_row_numbers_do_not_depend_on_chunking(name, chunksize):
    assert load_error(CORPUS / name, chunksize=chunksize) == BAD[name]


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_input_fails_the_streaming_pass_too(name):
    with pytest.raises(DataError) as info:
        from_file(CORPUS / name, chunksize=4)
    assert str(info.value).startswith(str(CORPUS / name))


def test_constant_matchup35_loads_but_is_not_fittable():
    """The original project's bug: every possession in matchup 35 with outcome 0."""
    path = CORPUS / "constant_matchup35.csv"
    data = load_possessions(path)
    assert len(data) == 30
    assert (data.matchup == 35).all() and (data.y == 0).all()
    stats = from_file(path)
    notes = degenerate_data_messages(stats, str(path))
    assert any(
        "every possession is in matchup 5_vs_5 (matchup_id 35)" in n and "cannot learn how matchups differ" in n
        for n in notes
    ), notes
    assert any("the outcome is the same (0) in every possession" in n for n in notes), notes
    with pytest.raises(DataError) as info:
        require_fittable(stats, str(path))
    assert str(info.value) == (
        f"{path}, column 'outcome': every possession has outcome 0; the model's noise scale sigma would collapse "
        "to 0 (improper posterior). Expected varying points per possession; check how the file was made"
    )


# --------------------------------------------------------------------------- degenerate data warnings


def _possessions(n: int, matchup, y=None, seed: int = 0) -> Possessions:
    rng = np.random.default_rng(seed)
    z_off = np.where(rng.random((n, 8)) < 0.4, rng.uniform(-8, 10, (n, 8)), 0.0)
    z_def = np.where(rng.random((n, 8)) < 0.4, rng.uniform(-8, 10, (n, 8)), 0.0)
    y = rng.choice([0.0, 1.0, 2.0, 3.0], n) if y is None else np.broadcast_to(np.asarray(y, float), (n,)).copy()
    matchup = np.broadcast_to(np.asarray(matchup, np.int64), (n,)).copy()
    return Possessions(y=y, matchup=matchup, z_off=z_off, z_def=z_def, season=None, source="test")


def _warnings_of(stats: SuffStats, source: str = "src") -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warn_degenerate(stats, source)
    assert all(issubclass(w.category, DataWarning) for w in caught)
    assert [str(w.message) for w in caught] == degenerate_data_messages(stats, source)
    return [str(w.message) for w in caught]


def test_no_warnings_for_the_real_sample(real):
    assert _warnings_of(SuffStats.from_possessions(real)) == []
    require_fittable(SuffStats.from_possessions(real), "real")


def test_warning_single_matchup():
    stats = SuffStats.from_possessions(_possessions(200, matchup=4))
    notes = _warnings_of(stats)
    assert notes[0] == (
        "src: every possession is in matchup 0_vs_4 (matchup_id 4); the matchup-specific and hierarchical "
        "models cannot learn how matchups differ"
    )
    assert any("35 of 36 matchups have no possessions (0_vs_0, 0_vs_1, 0_vs_2, 0_vs_3, 0_vs_5," in n for n in notes)
    assert not any("outcome is the same" in n for n in notes)
    require_fittable(stats, "src")  # can be fitted; only warned about


def test_warning_constant_outcome():
    stats = SuffStats.from_possessions(_possessions(36 * 60, matchup=np.arange(36 * 60) % 36, y=2.0))
    assert _warnings_of(stats) == ["src: the outcome is the same (2) in every possession; there is nothing to learn"]
    with pytest.raises(DataError, match=r"^src, column 'outcome': every possession has outcome 2; "):
        require_fittable(stats, "src")


def test_warning_matchups_with_few_possessions():
    m = np.arange(36 * 60) % 36
    m[m == 8] = 7  # matchup 8 (1_vs_2) gets no rows; give it 10 back, and 3 to matchup 20 (3_vs_2)
    m[:10] = 8
    keep = (m != 20) | (np.arange(len(m)) < 20 * 36)
    data = _possessions(len(m), matchup=m)
    data = Possessions(data.y[keep], data.matchup[keep], data.z_off[keep], data.z_def[keep], None, "test")
    stats = SuffStats.from_possessions(data)
    assert stats.n[8] == 10 and 0 < stats.n[20] < FEW_POSSESSIONS
    notes = _warnings_of(stats)
    few = [n for n in notes if "fewer than" in n]
    assert few == [
        f"src: 2 matchup(s) have fewer than {FEW_POSSESSIONS} possessions (1_vs_2: 10, 3_vs_2: {int(stats.n[20])}); "
        "their coefficients will mostly reflect the prior"
    ]


def test_warning_matchups_without_possessions(real):
    keep = ~np.isin(real.matchup, [3, 17])
    data = Possessions(real.y[keep], real.matchup[keep], real.z_off[keep], real.z_def[keep], None, "real")
    notes = _warnings_of(SuffStats.from_possessions(data))
    assert notes == [
        "src: 2 of 36 matchups have no possessions (0_vs_3, 2_vs_5); their coefficients are reported as 'no data'"
    ]


def test_warning_real_stratified_sample_has_31_empty_matchups():
    path = SHARED_DATA / "stratified_sample_10k.csv"
    if not path.exists():
        pytest.fail(f"real data not found: {path}")
    notes = _warnings_of(from_file(path), str(path))
    assert any(n.startswith(f"{path}: 31 of 36 matchups have no possessions (") for n in notes), notes


@pytest.mark.parametrize("column", ["z_off_3", "z_def_0"])
def test_warning_z_column_zero_everywhere(real, column):
    z_off, z_def = real.z_off.copy(), real.z_def.copy()
    side, a = column.split("_")[1], int(column[-1])
    (z_off if side == "off" else z_def)[:, a] = 0.0
    data = Possessions(real.y, real.matchup, z_off, z_def, None, "real")
    assert _warnings_of(SuffStats.from_possessions(data)) == [
        f"src: {column} is 0 in every possession; its coefficient is learned from the prior only"
    ]


def test_no_possessions_at_all():
    stats = SuffStats.zeros()
    assert degenerate_data_messages(stats, "src") == ["src: there are no possessions; there is nothing to learn"]
    with pytest.raises(DataError, match="^src: there are no possessions; expected at least one possession to fit$"):
        require_fittable(stats, "src")


# --------------------------------------------------------------------------- through the CLI

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _cli():
    from cli import app

    return app


def run_cli(args: list[str]):
    result = CliRunner().invoke(_cli(), args)
    return result, ANSI.sub("", result.stderr), ANSI.sub("", result.output)


def _flat(text: str) -> str:
    return " ".join(text.split())


def assert_bad_input_exit(result, stderr: str, output: str, out_dir: Path, message: str) -> None:
    assert result.exit_code == 2, output
    assert isinstance(result.exception, SystemExit)
    assert "Traceback" not in output
    assert not out_dir.exists(), "bad input must not create the run directory"
    error_lines = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1, stderr
    assert _flat(message) in _flat(error_lines[0])


@pytest.mark.parametrize("name", sorted(BAD))
def test_cli_train_rejects_bad_input(tmp_path, name):
    out_dir = tmp_path / "run"
    start = time.perf_counter()
    result, stderr, output = run_cli(
        ["train", "--model", "simplified", "--data", str(CORPUS / name), "--out", str(out_dir)]
    )
    assert_bad_input_exit(result, stderr, output, out_dir, BAD[name])
    assert stderr.startswith("error:"), stderr  # nothing (no warning) before the error
    assert result.stdout == ""
    assert time.perf_counter() - start < 5.0  # fails before any sampling


def test_cli_train_rejects_the_constant_outcome_file(tmp_path):
    path = CORPUS / "constant_matchup35.csv"
    out_dir = tmp_path / "run"
    result, stderr, output = run_cli(["train", "--model", "simplified", "--data", str(path), "--out", str(out_dir)])
    assert_bad_input_exit(
        result, stderr, output, out_dir, f"{path}, column 'outcome': every possession has outcome 0; "
    )
    flat = _flat(stderr)
    assert "warning:" in flat
    assert "every possession is in matchup 5_vs_5 (matchup_id 35)" in flat
    assert "the outcome is the same (0) in every possession" in flat


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--data", "good.csv", "--season", "2021-22"],
            "good.csv: a season filter (2021-22) was given but the file has no 'season' column",
        ),
        (
            ["--data", "good_integer_layout.csv", "--season", "1999-00,2030-31"],
            "good_integer_layout.csv, column 'season': no possession in season(s) 1999-00, 2030-31; "
            "the file has 2020-21, 2021-22",
        ),
        (["--data", "does_not_exist.csv"], "does_not_exist.csv: no such file"),
    ],
)
def test_cli_train_season_and_file_errors(tmp_path, args, message):
    args = [a if not a.endswith(".csv") else str(CORPUS / a) for a in args]
    out_dir = tmp_path / "run"
    result, stderr, output = run_cli(["train", "--model", "simplified", *args, "--out", str(out_dir)])
    assert_bad_input_exit(result, stderr, output, out_dir, f"{CORPUS}/{message}")


def test_cli_error_shows_paths_with_brackets_verbatim(tmp_path_factory):
    folder = tmp_path_factory.mktemp("brackets") / "season[draft]"
    folder.mkdir()
    path = folder / "nan_value.csv"
    path.write_bytes((CORPUS / "nan_value.csv").read_bytes())
    out_dir = folder.parent / "run"
    result, stderr, output = run_cli(["train", "--model", "simplified", "--data", str(path), "--out", str(out_dir)])
    assert result.exit_code == 2 and not out_dir.exists()
    assert str(path) in _flat(stderr)


CONSOLE_SCRIPT = Path(sys.executable).parent / "lineup-numpyro"


@pytest.mark.parametrize("name", ["text_in_numeric.csv", "truncated.csv", "constant_matchup35.csv"])
def test_cli_subprocess_exit_code_and_stderr(tmp_path, name):
    if not CONSOLE_SCRIPT.exists():
        pytest.fail(f"console script not installed: {CONSOLE_SCRIPT} (pip install -e .)")
    path = CORPUS / name
    out_dir = tmp_path / "run"
    proc = subprocess.run(
        [str(CONSOLE_SCRIPT), "train", "--model", "simplified", "--data", str(path), "--out", str(out_dir)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "NO_COLOR": "1", "TERM": "dumb"},
    )
    stderr = ANSI.sub("", proc.stderr)
    assert proc.returncode == 2, stderr
    assert "Traceback" not in stderr and "Traceback" not in proc.stdout
    assert proc.stdout == ""
    assert not out_dir.exists()
    error_lines = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1, stderr
    if name in BAD:
        assert stderr == f"error: {BAD[name]}\n"
    else:
        assert error_lines[0].startswith(f"error: {path}, column 'outcome': every possession has outcome 0; ")
        assert stderr.splitlines()[0].startswith(f"warning: {path}: every possession is in matchup 5_vs_5")


# --------------------------------------------------------------------------- plausibility (issue 16)


def _small(real_text: pd.DataFrame, n: int = 40) -> pd.DataFrame:
    frame = real_text.head(n).copy()
    for col in (names.OUTCOME, *names.Z_OFF, *names.Z_DEF):
        frame[col] = frame[col].astype(float)
    return frame


@pytest.mark.parametrize("value", [150.0, -200.0])
def test_outcomes_no_possession_can_score_are_refused(tmp_path, real_text, value):
    frame = _small(real_text)
    frame.loc[7, names.OUTCOME] = value
    path = tmp_path / "big.csv"
    frame.to_csv(path, index=False)
    message = load_error(path)
    assert f"{path}, row 8 (line 9), column '{names.OUTCOME}'" in message and "implausibly large" in message


@pytest.mark.parametrize("value", [-2.0, 1.5, 9.0])
def test_unusual_outcomes_are_warned_with_their_row(tmp_path, real_text, value):
    frame = _small(real_text)
    frame.loc[4, names.OUTCOME] = value
    path = tmp_path / "odd.csv"
    frame.to_csv(path, index=False)
    with pytest.warns(DataWarning, match=rf"row 5, column '{names.OUTCOME}': 1 outcome\(s\) are not whole points"):
        load_possessions(path)


def test_unusual_values_are_warned_once_per_file_with_their_total(tmp_path, real_text):
    """A large file's pass runs in chunks; its unusual values are one warning per kind, with
    the whole file's count and its first row."""
    frame = _small(real_text)
    frame.loc[[4, 11, 17], names.OUTCOME] = 1.5
    frame.loc[[9, 13], names.Z_DEF[2]] = 999.0
    frame.loc[15, names.Z_OFF[0]] = -999.0
    path = tmp_path / "odd.csv"
    frame.to_csv(path, index=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        list(iter_chunks(path, chunksize=4))
    messages = [str(w.message) for w in caught if issubclass(w.category, DataWarning)]
    assert len(messages) == 2, messages
    assert f"row 5, column '{names.OUTCOME}': 3 outcome(s) are not whole points" in messages[0]
    assert f"row 10, column '{names.Z_DEF[2]}': 3 skill sum(s) beyond" in messages[1]


def test_real_outcomes_raise_no_plausibility_warning(real_csv):
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)
        load_possessions(real_csv)


def test_implausible_skill_sums_are_warned(tmp_path, real_text):
    frame = _small(real_text)
    frame.loc[2, names.Z_OFF[3]] = 999.0
    path = tmp_path / "z.csv"
    frame.to_csv(path, index=False)
    with pytest.warns(DataWarning, match=rf"row 3, column '{names.Z_OFF[3]}': 1 skill sum"):
        load_possessions(path)


def test_a_boolean_outcome_is_refused(tmp_path, real_text):
    frame = _small(real_text)
    frame[names.OUTCOME] = frame[names.OUTCOME] > 0
    path = tmp_path / "bool.parquet"
    frame.to_parquet(path)
    message = load_error(path)
    assert f"column '{names.OUTCOME}': a true/false column; expected numbers" in message


@pytest.mark.parametrize("column", [names.OFF_SUPERCLUSTER, names.DEF_SUPERCLUSTER])
def test_a_supercluster_column_alone_is_checked_against_the_matchup(tmp_path, real_text, column):
    frame = _small(real_text)
    matchup = frame[names.MATCHUP].str.extract(r"(\d+)_vs_(\d+)").astype(int)
    frame[column] = matchup[0 if column == names.OFF_SUPERCLUSTER else 1]
    path = tmp_path / "ok.csv"
    frame.to_csv(path, index=False)
    load_possessions(path)  # agreeing: fine
    frame.loc[6, column] = (frame.loc[6, column] + 1) % names.N_SUPERCLUSTERS
    frame.to_csv(path, index=False)
    message = load_error(path)
    assert f"row 7 (line 8), column '{column}'" in message and "disagrees with matchup" in message


def _well_formed_files(tmp_path: Path) -> list[Path]:
    """Files pyarrow reads itself: labels and integer matchups, a season column, quoting, a
    byte-order mark, spaces after commas, an extra text column, blank lines, gzip."""
    rng = np.random.default_rng(5)
    n = 2_345
    frame = Possessions(
        y=rng.integers(0, 4, n).astype(float),
        matchup=rng.integers(0, names.N_MATCHUPS, n),
        z_off=np.round(rng.normal(size=(n, names.N_ARCHETYPES)), 4),
        z_def=np.round(rng.normal(size=(n, names.N_ARCHETYPES)), 4),
        season=np.where(rng.random(n) < 0.5, "2022-23", "2023-24").astype(object),
        source="made",
    ).to_frame()
    files = []
    plain = tmp_path / "plain.csv"
    frame.to_csv(plain, index=False)
    files.append(plain)
    integer = tmp_path / "integer.csv"
    frame.assign(matchup_id=rng.integers(0, names.N_MATCHUPS, n), team="Nuggets").to_csv(integer, index=False)
    files.append(integer)
    text = plain.read_text().splitlines()
    quoted = tmp_path / "quoted.csv"
    quoted.write_text("\ufeff" + "\n".join([text[0], *[",".join(f'"{v}"' for v in t.split(",")) for t in text[1:]]]))
    files.append(quoted)
    spaced = tmp_path / "spaced.csv"
    spaced.write_text("\n".join([text[0], *[", ".join(t.split(",")) for t in text[1:]]]))
    files.append(spaced)
    blank = tmp_path / "blank.csv"
    blank.write_text("\n".join(text[:100] + [""] + text[100:]) + "\n")
    files.append(blank)
    zipped = tmp_path / "plain.csv.gz"
    zipped.write_bytes(gzip.compress(plain.read_bytes()))
    files.append(zipped)
    return files


def _same(a: Possessions, b: Possessions) -> None:
    for field in ("y", "matchup", "z_off", "z_def"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field), err_msg=field)
    np.testing.assert_array_equal(a.season, b.season)


@pytest.mark.parametrize("chunksize", [1_000, 200_000])
def test_pyarrow_reads_well_formed_files_as_pandas_does(tmp_path, monkeypatch, chunksize):
    """The multi-threaded reader gives the same possessions, chunk for chunk, as the pandas
    reader it stands in for; pandas is not called on a well-formed file."""
    from lineup_numpyro.data import possessions

    files = _well_formed_files(tmp_path)
    fast = {f: list(iter_chunks(f, chunksize=chunksize)) for f in files}
    monkeypatch.setattr(
        possessions._ArrowRead, "chunks", lambda self, *a: iter(()) if setattr(self, "stopped", True) is None else None
    )
    slow = {f: list(iter_chunks(f, chunksize=chunksize)) for f in files}
    for f in files:
        assert [len(c) for c in fast[f]] == [len(c) for c in slow[f]], f.name
        for a, b in zip(fast[f], slow[f]):
            _same(a, b)
    monkeypatch.undo()

    def no_pandas(*args, **kwargs):
        raise AssertionError("pandas read a well-formed file")

    monkeypatch.setattr(possessions, "_pandas_csv_chunks", no_pandas)
    for f in files:
        assert sum(len(c) for c in iter_chunks(f, chunksize=chunksize)) == 2_345


def test_pyarrow_hands_over_to_pandas_at_a_bad_cell_far_into_the_file(tmp_path):
    """A bad value after the first block: the rows before it are read once, and the error is
    pandas', naming the row, line and column."""
    from lineup_numpyro.data import possessions

    path = _well_formed_files(tmp_path)[0]
    lines = path.read_text().splitlines()
    fields = lines[2_000].split(",")
    fields[2] = "abc"
    lines[2_000] = ",".join(fields)
    path.write_text("\n".join(lines) + "\n")
    column = pd.read_csv(path, nrows=0).columns[2]
    seen = []
    old = possessions.ARROW_BLOCK_BYTES
    try:
        possessions.ARROW_BLOCK_BYTES = 64 << 10  # several blocks, so the bad one is not the first
        with pytest.raises(DataError) as err:
            for chunk in iter_chunks(path, chunksize=500):
                seen.append(len(chunk))
    finally:
        possessions.ARROW_BLOCK_BYTES = old
    assert f"row 2000 (line 2001), column '{column}'" in str(err.value) and "'abc'" in str(err.value)
    assert sum(seen) == 1_500  # the chunks before the bad one, each once


# --------------------------------------------------------------------------- reading ahead


def test_read_ahead_keeps_order_errors_and_closes_its_source():
    """Chunks read on their own thread come out in order; an error comes out after the chunks
    before it; a caller that stops early stops and closes the source, and no thread is left."""
    closed = []

    def source(n: int, fail_at: int | None = None):
        try:
            for i in range(n):
                if i == fail_at:
                    raise DataError(f"bad chunk {i}")
                yield i
        finally:
            closed.append(n)

    assert list(read_ahead(source(50))) == list(range(50))
    got = []
    with pytest.raises(DataError, match="bad chunk 7"):
        for item in read_ahead(source(20, fail_at=7)):
            got.append(item)
    assert got == list(range(7))
    for item in read_ahead(source(1000), depth=2):
        if item == 3:
            break
    assert closed == [50, 20, 1000]  # every source closed, the abandoned one too
    assert not [t for t in threading.enumerate() if t.name == "read-ahead"]
