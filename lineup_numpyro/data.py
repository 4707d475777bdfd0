"""Loading and validating possession files (CSV or Parquet, either layout of the data README).

Every problem is reported as a `DataError` whose message names the file, the row (1-based
data row, and the line for CSV), the column and what was expected. Files are read in
chunks, so `iter_chunks` also serves the streaming sufficient-statistics pass.
"""

from __future__ import annotations

import csv
import difflib
import re
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from . import names

# Values beyond these are taken to be corrupt: DARKO sums of five players lie within about
# +-75, and a possession scores a handful of points. They also keep X'X far from overflow.
MAX_ABS_Z = 1_000.0
MAX_ABS_OUTCOME = 1_000.0
TYPICAL_OUTCOME = (0.0, 8.0)

_LABEL_RE = re.compile(r"^\s*(\d+)\s*_vs_\s*(\d+)\s*$")
_INT_RE = re.compile(r"^\s*(\d+)(?:\.0*)?\s*$")


class DataError(ValueError):
    """Input that cannot be used; the message says where and what was expected."""


class DataWarning(UserWarning):
    """Input that can be used but deserves an analyst's attention."""


@dataclass(frozen=True)
class Possessions:
    """Validated possessions, one row each.

    y: (N,) points scored; matchup: (N,) int 0-35; z_off, z_def: (N, 8) summed DARKO
    skill per archetype; season: (N,) str or None when the file has no season column.
    """

    y: np.ndarray
    matchup: np.ndarray
    z_off: np.ndarray
    z_def: np.ndarray
    season: np.ndarray | None
    source: str

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def design(self) -> np.ndarray:
        """Design rows x_i = [1, z_off_i, -z_def_i], shape (N, 17), float64."""
        return np.concatenate([np.ones((len(self), 1)), self.z_off, -self.z_def], axis=1)

    @classmethod
    def concat(cls, parts: Sequence[Possessions]) -> Possessions:
        has_season = all(p.season is not None for p in parts)
        return cls(
            y=np.concatenate([p.y for p in parts]),
            matchup=np.concatenate([p.matchup for p in parts]),
            z_off=np.concatenate([p.z_off for p in parts]),
            z_def=np.concatenate([p.z_def for p in parts]),
            season=np.concatenate([p.season for p in parts]) if has_season else None,
            source=parts[0].source,
        )

    def to_frame(self, layout: str = "label") -> pd.DataFrame:
        """A DataFrame in the data README's layout: 'label' ("o_vs_d") or 'integer' (0-35)."""
        if layout == "label":
            matchup = np.asarray(names.MATCHUP_LABELS, dtype=object)[self.matchup]
        elif layout == "integer":
            matchup = self.matchup
        else:
            raise ValueError(f"unknown layout {layout!r}; use 'label' or 'integer'")
        frame = {names.OUTCOME: self.y, names.MATCHUP: matchup}
        if layout == "integer":
            frame[names.OFF_SUPERCLUSTER] = self.matchup // names.N_SUPERCLUSTERS
            frame[names.DEF_SUPERCLUSTER] = self.matchup % names.N_SUPERCLUSTERS
        for a in range(names.N_ARCHETYPES):
            frame[names.Z_OFF[a]] = self.z_off[:, a]
            frame[names.Z_DEF[a]] = self.z_def[:, a]
        if self.season is not None:
            frame[names.SEASON] = self.season
        return pd.DataFrame(frame)


def _where(path: Path, row: int | None = None, column: str | None = None, csv_file: bool = True) -> str:
    """'file, row r (line l), column c' with whatever parts are known."""
    parts = [str(path)]
    if row is not None:
        parts.append(f"row {row} (line {row + 1})" if csv_file else f"row {row}")
    if column is not None:
        parts.append(f"column '{column}'")
    return ", ".join(parts)


def _file_format(path: Path) -> str:
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in (".parquet", ".pq"):
        return "parquet"
    if ".csv" in suffixes or ".tsv" in suffixes or ".txt" in suffixes:
        return "csv"
    raise DataError(f"{path}: unsupported file type '{path.suffix}'; expected .csv (optionally .gz) or .parquet")


def _read_csv_header(path: Path) -> list[str]:
    """The header row, checked for emptiness, delimiter and duplicates."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            header = next(csv.reader(fh), None)
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not a UTF-8 text file ({exc.reason} at byte {exc.start})") from None
    if header is None or not any(h.strip() for h in header):
        raise DataError(f"{path}: the file is empty; expected a header row and possessions")
    if len(header) == 1 and any(sep in header[0] for sep in (";", "\t", "|")):
        sep = next(s for s in (";", "\t", "|") if s in header[0])
        raise DataError(
            f"{path}, line 1: the header is one column separated by {sep!r}; "
            "expected a comma-separated file"
        )
    return [h.strip() for h in header]


def _check_columns(path: Path, columns: Sequence[str], seasons: Sequence[str]) -> None:
    """Required columns present, no duplicates, no misspelled expected column."""
    seen: set[str] = set()
    for col in columns:
        if col in seen:
            raise DataError(f"{path}, line 1: column '{col}' appears more than once in the header")
        seen.add(col)
    expected = names.REQUIRED_COLUMNS + names.OPTIONAL_COLUMNS
    unknown = [c for c in columns if c not in expected]
    absent = [c for c in expected if c not in seen]
    for col in unknown:
        match = difflib.get_close_matches(col, absent, n=1, cutoff=0.8)
        if match:
            raise DataError(
                f"{_where(path, column=col)}: unknown column; did you mean '{match[0]}'?"
            )
    missing = [c for c in names.REQUIRED_COLUMNS if c not in seen]
    if missing:
        raise DataError(
            f"{path}: missing required column(s) {', '.join(missing)}; "
            f"expected {', '.join(names.REQUIRED_COLUMNS)} (any order)"
        )
    if seasons and names.SEASON not in seen:
        raise DataError(f"{path}: a season filter was given but the file has no '{names.SEASON}' column")
    if unknown:
        warnings.warn(f"{path}: ignoring column(s) {', '.join(unknown)}", DataWarning, stacklevel=3)


def _numeric(path: Path, frame: pd.DataFrame, col: str, row0: int, csv_file: bool) -> np.ndarray:
    """Column `col` as finite float64, or a DataError at its first bad row."""
    raw = frame[col]
    values = pd.to_numeric(raw, errors="coerce") if not pd.api.types.is_numeric_dtype(raw) else raw
    values = np.asarray(values, dtype=np.float64)
    bad = ~np.isfinite(values)
    if bad.any():
        i = int(np.argmax(bad))
        original = raw.iloc[i]
        row = row0 + i + 1
        if pd.isna(original) or (isinstance(original, str) and not original.strip()):
            what = "missing value (empty or NaN)"
        elif isinstance(original, str) and pd.isna(pd.to_numeric(original, errors="coerce")) and not re.match(
            r"^\s*[-+]?(nan|inf|infinity)\s*$", original, re.IGNORECASE
        ):
            what = f"'{original}' is not a number"
        else:
            what = f"{original} is not a finite number"
        raise DataError(f"{_where(path, row, col, csv_file)}: {what}; expected a finite number")
    limit = MAX_ABS_OUTCOME if col == names.OUTCOME else MAX_ABS_Z
    big = np.abs(values) > limit
    if big.any():
        i = int(np.argmax(big))
        raise DataError(
            f"{_where(path, row0 + i + 1, col, csv_file)}: {values[i]:g} is implausibly large; "
            f"expected |value| <= {limit:g}"
        )
    return values


def _matchups(path: Path, frame: pd.DataFrame, row0: int, csv_file: bool) -> np.ndarray:
    """Matchup ids 0-35 from either "o_vs_d" labels or integers."""
    raw = frame[names.MATCHUP]
    n_sc, n_m = names.N_SUPERCLUSTERS, names.N_MATCHUPS
    if pd.api.types.is_numeric_dtype(raw) and not pd.api.types.is_bool_dtype(raw):
        values = np.asarray(raw, dtype=np.float64)
        ok = np.isfinite(values) & (values == np.round(values)) & (values >= 0) & (values < n_m)
        out = np.where(ok, values, -1).astype(np.int64)
    else:
        text = raw.astype("string")
        labels = text.str.extract(_LABEL_RE)
        ints = text.str.extract(_INT_RE)[0]
        off = pd.to_numeric(labels[0], errors="coerce")
        dfn = pd.to_numeric(labels[1], errors="coerce")
        as_label = (off * n_sc + dfn).where((off < n_sc) & (dfn < n_sc))
        as_int = pd.to_numeric(ints, errors="coerce")
        as_int = as_int.where(as_int < n_m)
        out = np.asarray(as_label.fillna(as_int).fillna(-1), dtype=np.int64)
        values = np.asarray(raw, dtype=object)
    bad = out < 0
    if bad.any():
        i = int(np.argmax(bad))
        raise DataError(
            f"{_where(path, row0 + i + 1, names.MATCHUP, csv_file)}: invalid matchup {values[i]!r}; "
            f"expected '<off>_vs_<def>' with superclusters 0-{n_sc - 1}, or an integer 0-{n_m - 1}"
        )
    if names.OFF_SUPERCLUSTER in frame and names.DEF_SUPERCLUSTER in frame:
        off = _numeric(path, frame, names.OFF_SUPERCLUSTER, row0, csv_file)
        dfn = _numeric(path, frame, names.DEF_SUPERCLUSTER, row0, csv_file)
        mismatch = off * n_sc + dfn != out
        if mismatch.any():
            i = int(np.argmax(mismatch))
            raise DataError(
                f"{_where(path, row0 + i + 1, names.MATCHUP, csv_file)}: matchup {values[i]!r} disagrees with "
                f"{names.OFF_SUPERCLUSTER}={off[i]:g}, {names.DEF_SUPERCLUSTER}={dfn[i]:g}; "
                f"expected matchup = off * {n_sc} + def"
            )
    return out


def _validate_frame(path: Path, frame: pd.DataFrame, row0: int, csv_file: bool) -> Possessions:
    y = _numeric(path, frame, names.OUTCOME, row0, csv_file)
    z_off = np.column_stack([_numeric(path, frame, c, row0, csv_file) for c in names.Z_OFF])
    z_def = np.column_stack([_numeric(path, frame, c, row0, csv_file) for c in names.Z_DEF])
    matchup = _matchups(path, frame, row0, csv_file)
    season = None
    if names.SEASON in frame:
        season = frame[names.SEASON].astype("string").str.strip().fillna("").to_numpy(dtype=object)
    return Possessions(y=y, matchup=matchup, z_off=z_off, z_def=z_def, season=season, source=str(path))


def _raw_chunks(path: Path, seasons: Sequence[str], chunksize: int) -> Iterator[tuple[pd.DataFrame, bool]]:
    """DataFrame chunks of the file after the header checks, with 'is CSV' flags."""
    fmt = _file_format(path)
    if fmt == "csv":
        header = _read_csv_header(path)
        _check_columns(path, header, seasons)
        dtype = {names.MATCHUP: str, names.SEASON: str}
        try:
            reader = pd.read_csv(
                path, chunksize=chunksize, dtype=dtype, encoding="utf-8-sig", skipinitialspace=True
            )
            for chunk in reader:
                chunk.columns = [str(c).strip() for c in chunk.columns]
                yield chunk, True
        except pd.errors.ParserError as exc:
            line = re.search(r"line (\d+)", str(exc))
            where = f"{path}, line {line.group(1)}" if line else str(path)
            raise DataError(f"{where}: malformed CSV ({exc}); expected {len(header)} fields per line") from None
    else:
        import pyarrow.parquet as pq

        try:
            pfile = pq.ParquetFile(path)
        except Exception as exc:  # pyarrow raises several types for unreadable files
            raise DataError(f"{path}: not a readable Parquet file ({exc})") from None
        _check_columns(path, pfile.schema_arrow.names, seasons)
        for batch in pfile.iter_batches(batch_size=chunksize):
            yield batch.to_pandas(), False


def iter_chunks(
    path: str | Path, seasons: Sequence[str] = (), chunksize: int = 200_000
) -> Iterator[Possessions]:
    """Validated chunks of possessions, filtered to `seasons` when given.

    Raises DataError for a missing, empty or header-only file, bad columns or bad values,
    and when the season filter leaves no possession.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file")
    if path.is_dir():
        raise DataError(f"{path}: is a directory; expected a CSV or Parquet file")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: the file is empty; expected a header row and possessions")
    wanted = set(seasons)
    rows_read = rows_kept = 0
    seen_seasons: set[str] = set()
    for frame, csv_file in _raw_chunks(path, seasons, chunksize):
        chunk = _validate_frame(path, frame, rows_read, csv_file)
        rows_read += len(chunk)
        if wanted:
            assert chunk.season is not None  # _check_columns guarantees the column
            seen_seasons.update(np.unique(chunk.season).tolist())
            keep = np.isin(chunk.season, list(wanted))
            chunk = Possessions(
                y=chunk.y[keep], matchup=chunk.matchup[keep], z_off=chunk.z_off[keep],
                z_def=chunk.z_def[keep], season=chunk.season[keep], source=chunk.source,
            )
        rows_kept += len(chunk)
        if len(chunk):
            yield chunk
    if rows_read == 0:
        raise DataError(f"{path}: the file has a header but no possessions")
    if rows_kept == 0:
        raise DataError(
            f"{path}, column '{names.SEASON}': no possession in season(s) {', '.join(sorted(wanted))}; "
            f"the file has {', '.join(sorted(seen_seasons))}"
        )


def load_possessions(path: str | Path, seasons: Sequence[str] = (), chunksize: int = 200_000) -> Possessions:
    """All validated possessions of a file in memory (needed by the `rows` likelihood)."""
    return Possessions.concat(list(iter_chunks(path, seasons, chunksize)))


def parse_seasons(text: str | None) -> tuple[str, ...]:
    """'2018-19,2021-22' -> ('2018-19', '2021-22'); None or '' -> ()."""
    if not text:
        return ()
    return tuple(s.strip() for s in text.split(",") if s.strip())
