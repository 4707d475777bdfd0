"""Players, lineups and the features the model sees of them.

A lineup enters the model (paper eq. 2.5) through its players' offensive and defensive
DARKO summed by archetype (z_off, z_def, each of length 8) and through its supercluster,
which the assignment table gives for its sorted archetype-lineup ("0_0_1_4_6"). A lineup
the table does not list gets the supercluster of the nearest listed one: the one reached by
changing the fewest players' archetypes (half the L1 distance between archetype counts),
ties to the first key in sort order; the lineup then says where its supercluster came from.

Tables are read from files like those in ../shared/data/: archetypes (player_id,
player_name, archetype 0-7), DARKO ratings (nba_id, O-DPM, D-DPM, optional Team) and,
optionally, salaries (player_id, salary). They are joined on the player id.
"""

from __future__ import annotations

import difflib
import json
import unicodedata
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from lineup_numpyro import names
from lineup_numpyro.data.possessions import DataError, DataWarning

ARCHETYPE_COLUMNS = ("player_id", "player_name", "archetype")
DARKO_ID_COLUMNS = ("nba_id", "player_id")  # either names the player id
DARKO_OFF, DARKO_DEF, DARKO_TEAM = "O-DPM", "D-DPM", "Team"
SALARY_COLUMNS = ("player_id", "salary")
LINEUP_SIZE = 5
TABLE_PATTERNS = {  # what --tables DIR looks for
    "archetypes": "player_archetypes*.csv",
    "darko": "darko*.csv",
    "assignments": "supercluster_assignments*.json",
    "salaries": "salar*.csv",
}


def _read_csv(path: str | Path, required: Sequence[str], what: str) -> pd.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file ({what})")
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except pd.errors.EmptyDataError:
        raise DataError(
            f"{path}: the file is empty; expected a CSV {what} with columns {', '.join(required)}"
        ) from None
    except (UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise DataError(f"{path}: not a readable CSV {what}: {exc}") from None
    frame.columns = [c.strip() for c in frame.columns]
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise DataError(
            f"{path}: missing column(s) {', '.join(map(repr, missing))} ({what}); "
            f"found {', '.join(map(repr, frame.columns))}"
        )
    if frame.empty:
        raise DataError(f"{path}: no rows under the header ({what})")
    return frame


def _column(
    path: Path, frame: pd.DataFrame, col: str, kind: type, lo: float | None = None, hi: float | None = None
) -> np.ndarray:
    """Column `col` parsed as `kind`, or a DataError naming the first bad row (line = row + 1)."""
    text = frame[col].str.strip()
    values = pd.to_numeric(text, errors="coerce")
    bad = values.isna() | ~np.isfinite(values.to_numpy(dtype=float, na_value=np.nan))
    if kind is int:
        bad |= values.notna() & (values != np.round(values))
    if lo is not None:
        bad |= values < lo
    if hi is not None:
        bad |= values > hi
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        if kind is not int:
            expected = "a finite number"
        else:
            expected = f"an integer {lo:g}-{hi:g}" if hi is not None else f"a whole number >= {lo:g}"
        raise DataError(f"{path}: row {i + 1} (line {i + 2}), column '{col}': {text.iloc[i]!r} is not {expected}")
    return values.to_numpy(dtype=np.int64 if kind is int else np.float64)


def _ids(path: Path, frame: pd.DataFrame, col: str) -> np.ndarray:
    ids = _column(path, frame, col, int, 0, None)
    dup = pd.Series(ids).duplicated(keep="first").to_numpy()
    if dup.any():
        i = int(np.flatnonzero(dup)[0])
        first = int(np.flatnonzero(ids == ids[i])[0])
        raise DataError(
            f"{path}: row {i + 1} (line {i + 2}), column '{col}': player {ids[i]} is listed "
            f"again (first on line {first + 2}); each player must appear once"
        )
    return ids


def _first_listing(path: Path, frame: pd.DataFrame, kinds: np.ndarray) -> tuple[pd.DataFrame, np.ndarray]:
    """Keep each player's first row. The 2024-25 table lists three players twice with two
    archetypes (a different role after a trade, presumably); a warning names them."""
    ids = frame["player_id"].str.strip()
    again = ids.duplicated(keep="first").to_numpy()
    if not again.any():
        return frame, kinds
    shown = []
    for pid in dict.fromkeys(ids[again]):
        rows = np.flatnonzero((ids == pid).to_numpy())
        shown.append(
            f"{frame['player_name'].iloc[rows[0]].strip()} (lines {', '.join(str(r + 2) for r in rows)}: "
            f"archetypes {', '.join(str(kinds[r]) for r in rows)})"
        )
    warnings.warn(
        f"{path}: {len(shown)} player(s) listed more than once; the first listing is used: {'; '.join(shown)}",
        DataWarning,
        stacklevel=3,
    )
    keep = ~again
    return frame[keep].reset_index(drop=True), kinds[keep]


@dataclass(frozen=True)
class Players:
    """The players that can be valued: id (index), name, archetype, o_dpm, d_dpm, team, salary.

    Only players with both an archetype and a DARKO rating are here; `unrated` and
    `unclassified` name the ones dropped from the archetype and DARKO files respectively.
    """

    table: pd.DataFrame
    source: str
    unrated: dict[int, str]  # in the archetype file, without DARKO
    unclassified: dict[int, str]  # in the DARKO file, without archetype

    def find(self, query: str | int) -> int:
        """The id of the player named or numbered `query`; names match ignoring case and accents."""
        text = str(query).strip()
        if text.isdigit():
            pid = int(text)
            if pid in self.table.index:
                return pid
            raise DataError(self._missing(f"player id {pid}", pid))
        hits = self.table.index[self.table["name"].map(fold) == fold(text)]
        if len(hits) == 1:
            return int(hits[0])
        if len(hits) > 1:
            raise DataError(
                f"{self.source}: {len(hits)} players are named {text!r} (ids "
                f"{', '.join(map(str, hits))}); give the id instead"
            )
        dropped = {fold(n): pid for pid, n in (self.unrated | self.unclassified).items()}
        raise DataError(self._missing(f"player {text!r}", dropped.get(fold(text)), text))

    def _missing(self, what: str, pid: int | None, name: str = "") -> str:
        if pid in self.unrated:
            return f"{self.source}: {what} ({self.unrated[pid]}) has an archetype but no DARKO rating"
        if pid in self.unclassified:
            return f"{self.source}: {what} ({self.unclassified[pid]}) has a DARKO rating but no archetype"
        close = difflib.get_close_matches(name, self.table["name"].tolist(), 3) if name else []
        hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
        return f"{self.source}: {what} is not among the players{hint}"

    def name(self, pid: int) -> str:
        return str(self.table.at[pid, "name"])

    @cached_property
    def arrays(self) -> dict[str, np.ndarray]:
        """The table's columns as arrays, for building many lineups quickly."""
        return {col: self.table[col].to_numpy() for col in ("name", "archetype", "o_dpm", "d_dpm")}

    def positions(self, ids: Sequence[int]) -> np.ndarray:
        return self.table.index.get_indexer(list(ids))


def fold(name: str) -> str:
    """A name for matching: case and accents dropped ('Nikola Jokić' -> 'nikola jokic')."""
    decomposed = unicodedata.normalize("NFKD", name.strip())
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def load_players(archetypes: str | Path, darko: str | Path, salaries: str | Path | None = None) -> Players:
    """Join the archetype, DARKO and (optional) salary tables on the player id."""
    archetypes, darko = Path(archetypes), Path(darko)
    arch = _read_csv(archetypes, ARCHETYPE_COLUMNS, "of player archetypes")
    kinds = _column(archetypes, arch, "archetype", int, 0, names.N_ARCHETYPES - 1)
    _column(archetypes, arch, "player_id", int, 0)  # bad ids reported at their own line, before
    arch, kinds = _first_listing(archetypes, arch, kinds)  # repeated players are dropped
    arch_ids = _ids(archetypes, arch, "player_id")

    dk = _read_csv(darko, (DARKO_OFF, DARKO_DEF), "of DARKO ratings")
    id_col = next((c for c in DARKO_ID_COLUMNS if c in dk.columns), None)
    if id_col is None:
        raise DataError(
            f"{darko}: missing the player id column ({' or '.join(map(repr, DARKO_ID_COLUMNS))}; of DARKO ratings)"
        )
    dk_ids = _ids(darko, dk, id_col)
    ratings = pd.DataFrame(
        {
            "o_dpm": _column(darko, dk, DARKO_OFF, float),
            "d_dpm": _column(darko, dk, DARKO_DEF, float),
            "team": dk[DARKO_TEAM].str.strip().to_numpy() if DARKO_TEAM in dk.columns else "",
        },
        index=pd.Index(dk_ids, name="player_id"),
    )
    people = pd.DataFrame(
        {"name": arch["player_name"].str.strip().to_numpy(), "archetype": kinds},
        index=pd.Index(arch_ids, name="player_id"),
    )
    table = people.join(ratings, how="inner")
    table["salary"] = np.nan
    source = f"{archetypes} + {darko}"
    if salaries is not None:
        salaries = Path(salaries)
        sal = _read_csv(salaries, SALARY_COLUMNS, "of salaries")
        pay = pd.Series(_column(salaries, sal, "salary", float), index=_ids(salaries, sal, "player_id"))
        if (pay < 0).any():
            i = int(np.flatnonzero((pay < 0).to_numpy())[0])
            raise DataError(f"{salaries}: row {i + 1} (line {i + 2}), column 'salary': negative salary {pay.iloc[i]:g}")
        table["salary"] = pay.reindex(table.index).to_numpy()
        source += f" + {salaries}"
    if table.empty:
        raise DataError(f"{source}: no player id is in both tables; are they the same id system (NBA ids)?")
    dk_names = dk["Player"].str.strip() if "Player" in dk.columns else pd.Series([""] * len(dk))
    unrated = {int(i): str(n) for i, n in zip(arch_ids, people["name"]) if i not in ratings.index}
    unclassified = {int(i): str(n) for i, n in zip(dk_ids, dk_names) if i not in people.index}
    return Players(table, source, unrated, unclassified)


@dataclass(frozen=True)
class Assignments:
    """Sorted archetype-lineup key ('0_0_1_4_6') -> lineup supercluster (0-5)."""

    lineups: dict[str, int]
    source: str

    def supercluster(self, archetypes: Sequence[int]) -> tuple[int, str, str | None]:
        """(supercluster, key, note): note is None for a listed lineup, else where it came from."""
        key = lineup_key(archetypes)
        if key in self.lineups:
            return self.lineups[key], key, None
        keys = sorted(self.lineups)
        distance = np.abs(self._counts(tuple(keys)) - _counts(archetypes)).sum(axis=1)
        best = keys[int(distance.argmin())]  # the first of the nearest, in key order
        swaps = int(distance.min()) // 2
        note = (
            f"archetype-lineup {key} is not in {self.source}; used the nearest listed one, {best} "
            f"({swaps} player{'s' if swaps != 1 else ''} of another archetype)"
        )
        return self.lineups[best], key, note

    @staticmethod
    @lru_cache(maxsize=4)
    def _counts(keys: tuple[str, ...]) -> np.ndarray:
        """Archetype counts of each key, (keys, 8)."""
        return np.stack([_counts(map(int, k.split("_"))) for k in keys])


def lineup_key(archetypes: Sequence[int]) -> str:
    return "_".join(str(a) for a in sorted(archetypes))


def _counts(archetypes) -> np.ndarray:  # noqa: ANN001
    return np.bincount(np.fromiter(archetypes, dtype=np.int64), minlength=names.N_ARCHETYPES)


def load_assignments(path: str | Path) -> Assignments:
    """The `lineup_assignments` table of a supercluster assignment JSON file."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file (supercluster assignments)")
    try:
        doc = json.loads(path.read_text(encoding="utf-8-sig"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not valid JSON: {exc}") from None
    table = doc.get("lineup_assignments") if isinstance(doc, dict) else None
    if not isinstance(table, dict) or not table:
        raise DataError(
            f"{path}: expected an object with a non-empty 'lineup_assignments' mapping "
            '(archetype-lineup such as "0_0_1_4_6" -> supercluster 0-5)'
        )
    lineups = {}
    for key, value in table.items():
        parts = key.split("_")
        ok_key = (
            len(parts) == LINEUP_SIZE
            and all(p.isdigit() and int(p) < names.N_ARCHETYPES for p in parts)
            and key == lineup_key(map(int, parts))
        )
        if not ok_key:
            raise DataError(
                f"{path}: lineup_assignments key {key!r} is not five archetypes 0-"
                f"{names.N_ARCHETYPES - 1} in ascending order joined by '_'"
            )
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < names.N_SUPERCLUSTERS:
            raise DataError(
                f"{path}: lineup_assignments[{key!r}] = {value!r} is not a supercluster 0-{names.N_SUPERCLUSTERS - 1}"
            )
        lineups[key] = value
    return Assignments(lineups, str(path))


@dataclass(frozen=True)
class Lineup:
    """Five players as the model sees them."""

    player_ids: tuple[int, ...]
    names: tuple[str, ...]
    z_off: np.ndarray  # (8,): offensive DARKO summed by archetype
    z_def: np.ndarray  # (8,): defensive DARKO summed by archetype
    key: str  # sorted archetype-lineup
    supercluster: int
    note: str | None  # how the supercluster was found, when the lineup is not listed
    archetypes: tuple[int, ...] = ()  # each player's archetype (0-7), in the order of `names`

    @property
    def label(self) -> str:
        return ", ".join(self.names)


def make_lineup(players: Players, assignments: Assignments, ids: Sequence[int]) -> Lineup:
    """The lineup of five distinct players (ids)."""
    ids = tuple(int(i) for i in ids)
    at = players.positions(ids)
    if (at < 0).any():
        raise DataError(f"{players.source}: no player with id {', '.join(str(i) for i in np.array(ids)[at < 0])}")
    if len(ids) != LINEUP_SIZE:
        raise DataError(
            f"a lineup has {LINEUP_SIZE} players; got {len(ids)} ({', '.join(players.name(i) for i in ids)})"
        )
    if len(set(ids)) != LINEUP_SIZE:
        twice = sorted({players.name(i) for i in ids if ids.count(i) > 1})
        raise DataError(f"a lineup lists {', '.join(twice)} more than once")
    kinds, z_off, z_def = (rows[0] for rows in lineup_features(players, at[None, :]))
    sc, key, note = assignments.supercluster(kinds)
    return Lineup(ids, tuple(players.arrays["name"][at]), z_off, z_def, key, sc, note, tuple(int(k) for k in kinds))


def lineup_features(players: Players, at: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The model's features of N lineups given by their players' rows in the table
    (`Players.positions`), `at` (N, 5): each player's archetype (N, 5), and z_off and z_def
    (N, 8), the players' O-DPM and D-DPM (points per 100 possessions, as DARKO gives them,
    signs unchanged) summed by archetype; 0.0 where no player has the archetype.

    The one place z is formed: `make_lineup` (the `lineup` commands) and `prepare` both call it.
    """
    kinds = players.arrays["archetype"][at]
    rows = np.arange(at.shape[0])
    z_off = np.zeros((at.shape[0], names.N_ARCHETYPES))
    z_def = np.zeros((at.shape[0], names.N_ARCHETYPES))
    for j in range(at.shape[1]):  # players added in column order, as np.bincount adds them
        z_off[rows, kinds[:, j]] += players.arrays["o_dpm"][at[:, j]]
        z_def[rows, kinds[:, j]] += players.arrays["d_dpm"][at[:, j]]
    return kinds, z_off, z_def


def parse_lineup(players: Players, assignments: Assignments, text: str) -> Lineup:
    """A lineup from "Name A, Name B, ..." (names or ids, comma-separated)."""
    return make_lineup(players, assignments, [players.find(q) for q in split_names(text)])


def split_names(text: str) -> list[str]:
    return [q.strip() for q in text.split(",") if q.strip()]


def load_opponents(path: str | Path, players: Players, assignments: Assignments) -> list[Lineup]:
    """Opponent lineups from a CSV with columns player_1..player_5 (names or ids)."""
    path = Path(path)
    cols = tuple(f"player_{k}" for k in range(1, LINEUP_SIZE + 1))
    frame = _read_csv(path, cols, "of opponent lineups")
    lineups = []
    for i, row in enumerate(frame.itertuples(index=False)):
        try:
            lineups.append(make_lineup(players, assignments, [players.find(getattr(row, c)) for c in cols]))
        except DataError as exc:
            raise DataError(f"{path}: row {i + 1} (line {i + 2}): {exc}") from None
    return lineups


def default_opponents(players: Players, assignments: Assignments) -> list[Lineup]:
    """Each team's five players with the highest DARKO (O-DPM + D-DPM): a league of starters."""
    if (players.table["team"] == "").all():
        raise DataError(f"{players.source}: no Team column to build the default opponents from; give --opponents FILE")
    ranked = players.table.assign(dpm=players.table["o_dpm"] + players.table["d_dpm"])
    lineups = []
    for _, group in ranked[ranked["team"] != ""].groupby("team", sort=True):
        if len(group) >= LINEUP_SIZE:
            lineups.append(make_lineup(players, assignments, group.nlargest(LINEUP_SIZE, "dpm").index))
    if not lineups:
        raise DataError(
            f"{players.source}: no team has five players with an archetype and a rating; give --opponents FILE"
        )
    return lineups


def find_tables(directory: str | Path) -> dict[str, Path]:
    """The player and lineup tables in `directory`, found by TABLE_PATTERNS (salaries optional)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise DataError(f"{directory}: no such directory (--tables)")
    found = {}
    for what, pattern in TABLE_PATTERNS.items():
        hits = sorted(directory.glob(pattern))
        if len(hits) > 1:
            raise DataError(
                f"{directory}: {len(hits)} files match {pattern} ({', '.join(h.name for h in hits)}); "
                f"name the {what} table with --{what}"
            )
        if hits:
            found[what] = hits[0]
    return found
