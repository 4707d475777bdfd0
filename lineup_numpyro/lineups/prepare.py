"""`lineup-numpyro prepare`: possessions with lineups -> the model's input file (docs/input.md).

The input is a CSV with one row per possession: `off_1` .. `off_5` and `def_1` .. `def_5`,
the NBA ids of the offense's and the defense's players, `points`, what the offense scored,
and optionally `season`, copied through. Other columns are ignored; order is not significant.

Each row's features are those the `lineup` commands use: z from `players.lineup_features`,
each distinct archetype-lineup placed once by `players.make_lineup` (a lineup missing from the
assignment table takes the supercluster of the nearest listed one, as `lineup` does, and is
counted), and the matchup from `valuation.matchup`. A possession with a player who is not in
both the archetype and the DARKO table is dropped and counted, and the player named (with
`strict`, it is an error instead). Bad input (a missing column, an id that is not a whole
number, points that are not a number, a player twice in one possession) is a `DataError`
naming the file, row, line and column. The output is written to a temporary file and renamed
only when complete, so a failure leaves no file behind.
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from lineup_numpyro import names
from lineup_numpyro.data.possessions import COMPRESSED, MAX_ABS_OUTCOME, Possessions, csv_records
from lineup_numpyro.errors import ConfigError, DataError
from lineup_numpyro.files import atomic_path
from lineup_numpyro.lineups.players import (
    LINEUP_SIZE,
    Assignments,
    Lineup,
    Players,
    lineup_features,
    load_assignments,
    load_players,
    make_lineup,
)
from lineup_numpyro.lineups.valuation import matchup

OFFENSE = tuple(f"off_{k}" for k in range(1, LINEUP_SIZE + 1))
DEFENSE = tuple(f"def_{k}" for k in range(1, LINEUP_SIZE + 1))
POINTS = "points"
SEASON = names.SEASON
REQUIRED = (*OFFENSE, *DEFENSE, POINTS)
# the model's input file, in data/possessions.py's integer layout, columns in this order
OUTPUT_COLUMNS = (
    names.OUTCOME,
    names.MATCHUP,
    names.OFF_SUPERCLUSTER,
    names.DEF_SUPERCLUSTER,
    *names.Z_OFF,
    *names.Z_DEF,
)
CHUNKSIZE = 100_000
# why a possession is dropped; each dropped row is counted once, under the first that applies
NO_ARCHETYPE = "a player not in the archetype table"
NO_DARKO = "a player not in the DARKO table (but in the archetype table)"
OFF, DEF = slice(0, LINEUP_SIZE), slice(LINEUP_SIZE, 2 * LINEUP_SIZE)  # the sides' columns of the ids
_KEY_BASE = names.N_ARCHETYPES**LINEUP_SIZE  # archetype-lineup codes lie in [0, 8^5)


@dataclass(frozen=True)
class MissingPlayer:
    """A player of the input who is not in both tables; the possessions with them are dropped."""

    player_id: int
    name: str  # as the table that has them spells it; "" when in neither
    missing_from: str  # "archetypes", "DARKO" or "archetypes and DARKO"
    possessions: int  # input rows with this player (all dropped)


@dataclass(frozen=True)
class UnlistedLineup:
    """An archetype-lineup not in the assignment table, placed by the nearest listed one."""

    key: str  # sorted archetypes, "0_0_3_6_7"
    supercluster: int  # the one it took
    note: str  # which listed lineup it took it from (players.Assignments.supercluster)
    offense: int  # rows written with it on offense
    defense: int  # and on defense


@dataclass(frozen=True)
class PrepareReport:
    """What `prepare_possessions` read, wrote and dropped."""

    source: str
    out_path: str
    tables: dict[str, str]  # archetypes, darko, assignments -> path
    rows_read: int
    rows_written: int
    dropped: dict[str, int]  # reason -> rows dropped for it (each row under one reason)
    missing_players: tuple[MissingPlayer, ...]  # most possessions first
    unlisted: tuple[UnlistedLineup, ...]  # most possessions first
    nearest_rows: int  # rows written with an unlisted lineup on either side
    matchups: tuple[int, ...]  # (36,) rows written per matchup
    has_season: bool

    @property
    def rows_dropped(self) -> int:
        return sum(self.dropped.values())


def prepare_possessions(
    lineups_path: str | Path,
    out_path: str | Path,
    archetypes: str | Path,
    darko: str | Path,
    assignments: str | Path,
    chunksize: int = CHUNKSIZE,
    strict: bool = False,
    points: bool = True,
) -> PrepareReport:
    """Write the model's input file `out_path` (.csv) from the possessions with lineups in
    `lineups_path`, with the player tables `archetypes`, `darko` and the supercluster table
    `assignments` (the files of ../shared/data). The input is read `chunksize` rows at a time.

    A possession with a player missing from a table is dropped and counted (its player named
    in the report), or with `strict` raises a DataError at its row and column. Raises DataError
    for bad input and ConfigError for an output that is not a .csv or is the input itself.
    With `points` False the points column may be absent (possessions to predict): the output
    then has no outcome column.
    """
    src, out = Path(lineups_path), Path(out_path)
    if chunksize < 1:
        raise ConfigError(f"chunksize must be at least 1, got {chunksize}")
    if out.suffix.lower() != ".csv":
        raise ConfigError(f"{out}: the output is a CSV file; give a name ending in .csv")
    if out.exists() and src.exists() and out.resolve() == src.resolve():
        raise ConfigError(f"{out}: the output would overwrite the input; give another --out")
    players = load_players(archetypes, darko)
    table = load_assignments(assignments)
    tables = {"archetypes": str(archetypes), "darko": str(darko), "assignments": str(assignments)}
    header = _header(src, points)
    placer = _Placer(players, table)
    dropped: Counter[str] = Counter()
    absent: Counter[int] = Counter()  # missing player id -> rows
    per_matchup = np.zeros(names.N_MATCHUPS, dtype=np.int64)
    rows_read = rows_written = nearest_rows = 0
    has_season = SEASON in header
    with atomic_path(out) as tmp, open(tmp, "w", encoding="utf-8", newline="") as fh:
        for frame in _chunks(src, header, chunksize):
            n = len(frame)
            ids = np.column_stack([_ids(src, frame, col, rows_read) for col in REQUIRED[:-1]])  # (n, 10)
            scored = _points(src, frame, rows_read) if POINTS in header else np.full(n, np.nan)
            _no_repeats(src, ids, rows_read)
            at = players.positions(ids.ravel()).reshape(ids.shape)
            missing = at < 0
            if strict and missing.any():
                i, j = (int(k) for k in np.argwhere(missing)[0])
                raise DataError(
                    f"{_where(src, rows_read + i + 1, REQUIRED[j])}: player {ids[i, j]} "
                    f"{_missing_text(players, int(ids[i, j]), tables)}; expected a player in both tables "
                    "(without --strict such possessions are dropped and counted)"
                )
            bad = missing.any(axis=1)
            if bad.any():
                no_kind = (missing & ~np.isin(ids, list(players.unrated))).any(axis=1)
                dropped[NO_ARCHETYPE] += int(no_kind.sum())
                dropped[NO_DARKO] += int((bad & ~no_kind).sum())
                absent.update(ids[missing].tolist())  # a player appears once per row
            keep = ~bad
            rows_read += n
            if not keep.any():
                continue
            ids, at, scored = ids[keep], at[keep], scored[keep]
            kinds_off, z_off, _ = lineup_features(players, at[:, OFF])
            kinds_def, _, z_def = lineup_features(players, at[:, DEF])
            m, nearest = placer.matchups(ids, kinds_off, kinds_def)
            nearest_rows += int(nearest.sum())
            season = None
            if has_season:
                season = frame[SEASON].fillna("").astype(str).str.strip().to_numpy(dtype=object)[keep]
            chunk = Possessions(scored, m, z_off, z_def, season, str(src)).to_frame("integer")
            columns = [c for c in OUTPUT_COLUMNS if c != names.OUTCOME or POINTS in header]
            columns += [SEASON] if has_season else []
            chunk[columns].to_csv(fh, header=rows_written == 0, index=False, lineterminator="\n")
            rows_written += len(chunk)
            per_matchup += np.bincount(m, minlength=names.N_MATCHUPS)
        if rows_read == 0:
            raise DataError(f"{src}: the file has column names but no possessions; expected at least one data row")
        report = PrepareReport(
            source=str(src),
            out_path=str(out),
            tables=tables,
            rows_read=rows_read,
            rows_written=rows_written,
            dropped={why: dropped[why] for why in (NO_ARCHETYPE, NO_DARKO) if dropped[why]},
            missing_players=_missing_players(players, absent),
            unlisted=placer.unlisted(),
            nearest_rows=nearest_rows,
            matchups=tuple(int(k) for k in per_matchup),
            has_season=has_season,
        )
        if rows_written == 0:
            raise DataError(f"{src}: every one of the {rows_read:,} possessions was dropped ({describe_drops(report)})")
    return report


class _Placer:
    """Superclusters and matchups of lineups as the `lineup` commands find them: each distinct
    archetype-lineup is placed once by `make_lineup` (on the first possession that has it; the
    supercluster depends on the archetypes only), each pair's matchup is `valuation.matchup`."""

    def __init__(self, players: Players, assignments: Assignments) -> None:
        self.players, self.assignments = players, assignments
        self.placed: dict[int, Lineup] = {}  # archetype-lineup code -> its first lineup
        self.pairs: dict[int, int] = {}  # off code * 8^5 + def code -> matchup
        self.unlisted_rows: dict[int, Counter[str]] = {}  # unlisted code -> rows on "offense", "defense"

    def matchups(self, ids: np.ndarray, kinds_off: np.ndarray, kinds_def: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(matchup (n,), whether either lineup is missing from the assignment table (n,))."""
        codes = {"offense": _codes(kinds_off), "defense": _codes(kinds_def)}
        nearest = np.zeros(len(ids), dtype=bool)
        for (side, code), cols in zip(codes.items(), (OFF, DEF)):
            uniq, first, inverse = np.unique(code, return_index=True, return_inverse=True)
            inverse = inverse.ravel()
            for c, i in zip(uniq.tolist(), first.tolist()):
                if c not in self.placed:
                    self.placed[c] = make_lineup(self.players, self.assignments, ids[i, cols])
            unlisted = np.array([self.placed[c].note is not None for c in uniq.tolist()])
            nearest |= unlisted[inverse]
            counts = np.bincount(inverse, minlength=len(uniq))
            for c, n in zip(uniq[unlisted].tolist(), counts[unlisted].tolist()):
                self.unlisted_rows.setdefault(c, Counter())[side] += n
        uniq, inverse = np.unique(codes["offense"] * _KEY_BASE + codes["defense"], return_inverse=True)
        for p in uniq.tolist():
            if p not in self.pairs:
                self.pairs[p] = matchup(self.placed[p // _KEY_BASE], self.placed[p % _KEY_BASE])
        return np.array([self.pairs[p] for p in uniq.tolist()], dtype=np.int64)[inverse.ravel()], nearest

    def unlisted(self) -> tuple[UnlistedLineup, ...]:
        """The archetype-lineups placed by the nearest listed one, most possessions first."""
        found = [
            UnlistedLineup(
                self.placed[c].key, self.placed[c].supercluster, str(self.placed[c].note), n["offense"], n["defense"]
            )
            for c, n in self.unlisted_rows.items()
        ]
        return tuple(sorted(found, key=lambda u: (-(u.offense + u.defense), u.key)))


def describe_drops(report: PrepareReport, top: int = 5) -> str:
    """'N with <reason>; ...; players: id (name, not in T: k possessions), ...' for messages."""
    parts = [f"{n:,} with {why}" for why, n in report.dropped.items()]
    shown = [
        f"{p.player_id}{f' ({p.name})' if p.name else ''} not in {p.missing_from}: {p.possessions:,}"
        for p in report.missing_players[:top]
    ]
    more = len(report.missing_players) - len(shown)
    if shown:
        parts.append("players " + ", ".join(shown) + (f" and {more} more" if more > 0 else ""))
    return "; ".join(parts)


def _missing_text(players: Players, pid: int, tables: dict[str, str]) -> str:
    if pid in players.unrated:
        return f"({players.unrated[pid]}) has an archetype but is not in the DARKO table {tables['darko']}"
    if pid in players.unclassified:
        name = f"({players.unclassified[pid]}) " if players.unclassified[pid] else ""
        return f"{name}has a DARKO rating but is not in the archetype table {tables['archetypes']}"
    return f"is in neither the archetype table {tables['archetypes']} nor the DARKO table {tables['darko']}"


def _missing_players(players: Players, absent: Counter[int]) -> tuple[MissingPlayer, ...]:
    found = []
    for pid, rows in absent.items():
        if pid in players.unrated:
            found.append(MissingPlayer(pid, players.unrated[pid], "DARKO", rows))
        elif pid in players.unclassified:
            found.append(MissingPlayer(pid, players.unclassified[pid], "archetypes", rows))
        else:
            found.append(MissingPlayer(pid, "", "archetypes and DARKO", rows))
    return tuple(sorted(found, key=lambda p: (-p.possessions, p.player_id)))


def _codes(kinds: np.ndarray) -> np.ndarray:
    """Each lineup's sorted archetypes as one integer (base 8): equal codes, equal archetype-lineups."""
    ordered = np.sort(kinds, axis=1).astype(np.int64)
    return ordered @ (names.N_ARCHETYPES ** np.arange(LINEUP_SIZE - 1, -1, -1, dtype=np.int64))


def _line_of(path: Path, row: int) -> int | None:
    """The line on which data row `row` (1-based, blank lines skipped, as pandas counts) starts."""
    try:
        return next((line for r, line, _ in csv_records(path) if r == row), None)
    except (OSError, EOFError, csv.Error):
        return None


def _where(path: Path, row: int, column: str) -> str:
    line = _line_of(path, row)
    return f"{path}: row {row}{f' (line {line})' if line is not None else ''}, column '{column}'"


def _header(path: Path, points: bool = True) -> dict[str, str]:
    """Checked header: each wanted column's name -> its text in the file (spaces around names allowed)."""
    if not path.is_file():
        raise DataError(f"{path}: no such file (possessions with lineups)")
    suffixes = [x.lower() for x in path.suffixes[-2:]]
    if suffixes and suffixes[-1] in COMPRESSED:
        suffixes.pop()
    if not suffixes or suffixes[-1] not in (".csv", ".txt"):
        raise DataError(
            f"{path}: unsupported file type; expected a .csv file (optionally .csv.gz, .csv.bz2 or .csv.xz)"
        )
    what = f"a CSV of possessions with columns {', '.join(REQUIRED)} and optionally {SEASON}"
    try:
        raw = list(pd.read_csv(path, nrows=0, encoding="utf-8-sig").columns)
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: the file is empty; expected {what}") from None
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a UTF-8 text file; expected {what} (re-save it as 'CSV UTF-8')") from None
    except (pd.errors.ParserError, OSError, EOFError, ValueError) as exc:
        raise DataError(f"{path}: not a readable CSV ({exc}); expected {what}") from None
    found = {str(c).strip(): str(c) for c in raw}
    missing = [c for c in REQUIRED if c not in found and (points or c != POINTS)]
    if missing:
        raise DataError(
            f"{path}, line 1: missing column(s) {', '.join(map(repr, missing))}; expected {what} "
            f"(any order); found {', '.join(map(repr, found))}"
        )
    return {c: found[c] for c in (*REQUIRED, SEASON) if c in found}


def _chunks(path: Path, header: dict[str, str], chunksize: int) -> Iterator[pd.DataFrame]:
    """The wanted columns as text, `chunksize` rows at a time, under their stripped names."""
    rename = {raw: name for name, raw in header.items()}
    try:
        reader = pd.read_csv(
            path,
            usecols=list(rename),
            dtype=str,
            keep_default_na=False,
            encoding="utf-8-sig",
            chunksize=chunksize,
        )
        for chunk in reader:
            yield chunk.rename(columns=rename)
    except pd.errors.ParserError as exc:
        raise DataError(f"{path}: malformed CSV ({str(exc).strip()}); expected the same fields on every line") from None
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a UTF-8 text file; expected UTF-8 (re-save it as 'CSV UTF-8')") from None
    except (OSError, EOFError) as exc:
        raise DataError(f"{path}: cannot read the file ({exc}); expected a complete CSV file") from None


def _bad_cell(path: Path, frame: pd.DataFrame, bad: np.ndarray, col: str, row0: int, what: str, rule: str) -> DataError:
    """DataError at the first bad cell: "'x' is not <what>; expected <rule>"."""
    i = int(np.flatnonzero(bad)[0])
    text = str(frame[col].fillna("").iloc[i]).strip()
    shown = f"empty cell; expected {what}: {rule}" if not text else f"{text!r} is not {what}; expected {rule}"
    return DataError(f"{_where(path, row0 + i + 1, col)}: {shown}")


def _ids(path: Path, frame: pd.DataFrame, col: str, row0: int) -> np.ndarray:
    """Column `col` as player ids (whole numbers >= 0; '203999.0' is 203999)."""
    values = pd.to_numeric(frame[col].fillna("").str.strip(), errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    with np.errstate(invalid="ignore"):
        bad = ~np.isfinite(values) | (values != np.round(values)) | (values < 0) | (values >= 2.0**53)
    if bad.any():
        raise _bad_cell(path, frame, bad, col, row0, "a player id", "a whole number >= 0")
    return values.astype(np.int64)


def _points(path: Path, frame: pd.DataFrame, row0: int) -> np.ndarray:
    values = pd.to_numeric(frame[POINTS].fillna("").str.strip(), errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    with np.errstate(invalid="ignore"):
        bad = ~np.isfinite(values) | (values < 0) | (values > MAX_ABS_OUTCOME)
    if bad.any():
        raise _bad_cell(path, frame, bad, POINTS, row0, "a number of points", f"a number 0-{MAX_ABS_OUTCOME:g}")
    return values


def _no_repeats(path: Path, ids: np.ndarray, row0: int) -> None:
    """A player on the floor twice in one possession (in either lineup) is an error."""
    ordered = np.sort(ids, axis=1)
    twice = (np.diff(ordered, axis=1) == 0).any(axis=1)
    if twice.any():
        i = int(np.flatnonzero(twice)[0])
        pid = int(ordered[i][:-1][np.diff(ordered[i]) == 0][0])
        cols = [REQUIRED[j] for j in np.flatnonzero(ids[i] == pid)]
        line = _line_of(path, row0 + i + 1)
        raise DataError(
            f"{path}: row {row0 + i + 1}{f' (line {line})' if line is not None else ''}, columns "
            f"{' and '.join(map(repr, cols))}: player {pid} is on the floor twice; expected ten different players"
        )
