"""Loading and validating possession files (CSV or Parquet, either layout of the data README).

Every problem is reported as a `DataError` whose message names the file, the row (1-based
data row, and the line for CSV), the column and what was expected. Files are read in
chunks, so `iter_chunks` also serves the streaming sufficient-statistics pass.
"""

from __future__ import annotations

import csv
import difflib
import importlib
import io
import queue
import re
import threading
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TypeVar

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from lineup_numpyro import names
from lineup_numpyro.data.split import Split
from lineup_numpyro.errors import DataError

# Values beyond these are taken to be corrupt: DARKO sums of five players lie within about
# +-75, and a possession scores a handful of points. They also keep X'X far from overflow.
MAX_ABS_Z = 1_000.0  # refused beyond: not a sum of players' DARKO
MAX_ABS_OUTCOME = 100.0  # refused beyond: no possession scores that
PLAUSIBLE_POINTS = (0.0, 8.0)  # warned outside, or when not whole: a possession's points are 0, 1, 2, 3, ...
PLAUSIBLE_Z = 60.0  # warned beyond: five players' summed DARKO stays within about +-40

_NUMERIC_COLUMNS = frozenset((names.OUTCOME, *names.Z_OFF, *names.Z_DEF))
_LABEL_RE = re.compile(r"^\s*(\d+)\s*_vs_\s*(\d+)\s*$")
_INT_RE = re.compile(r"^\s*(\d+)(?:\.0*)?\s*$")


class DataWarning(UserWarning):
    """Input that can be used but deserves an analyst's attention."""


def design_matrix(z_off: np.ndarray, z_def: np.ndarray) -> np.ndarray:
    """Design rows x_i = [1, z_off_i, -z_def_i] of the model (../shared/MODELS.md), (N, 17)."""
    k = z_off.shape[1]
    x = np.empty((z_off.shape[0], 1 + k + z_def.shape[1]))
    x[:, 0] = 1.0
    x[:, 1 : 1 + k] = z_off
    np.negative(z_def, out=x[:, 1 + k :])
    return x


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
        return design_matrix(self.z_off, self.z_def)

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

    def subset(self, keep: np.ndarray) -> Possessions:
        """The possessions where `keep` (a boolean mask or indices) selects them."""
        return Possessions(
            y=self.y[keep],
            matchup=self.matchup[keep],
            z_off=self.z_off[keep],
            z_def=self.z_def[keep],
            season=None if self.season is None else self.season[keep],
            source=self.source,
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


@dataclass(frozen=True)
class _Source:
    """The file being read: where to point error messages."""

    path: Path
    csv_file: bool
    header: tuple[str, ...]

    def where(self, row: int | None = None, column: str | None = None, line: int | None = None) -> str:
        """'file, row r (line l), column c' with whatever parts are known."""
        parts = [str(self.path)]
        if row is not None:
            parts.append(f"row {row} (line {line})" if line is not None else f"row {row}")
        elif line is not None:
            parts.append(f"line {line}")
        if column is not None:
            parts.append(f"column '{column}'")
        return ", ".join(parts)

    def record(self, row: int) -> tuple[int, list[str]] | None:
        """(line, raw fields) of CSV data row `row` (1-based), or None (Parquet, not found)."""
        if not self.csv_file:
            return None
        for r, line, fields in csv_records(self.path):
            if r == row:
                return line, fields
        return None

    def cell_error(self, row: int, column: str, describe: Callable[[str | None], str], expected: str) -> DataError:
        """DataError for a bad cell: the exact line and the cell's text for CSV, or a short row.

        describe(raw) words the problem, given the cell's text as written in the CSV (None
        when it is not known, as for Parquet).
        """
        found = self.record(row)
        if found is None:
            return DataError(f"{self.where(row, column)}: {describe(None)}; expected {expected}")
        line, fields = found
        n = len(self.header)
        if len(fields) < n:
            return DataError(
                f"{self.where(row, line=line)}: the line has only {len(fields)} of the {n} fields named in the "
                f"header (it stops after column '{self.header[len(fields) - 1]}'); expected {n} comma-separated "
                "fields. Was the line cut short or the file truncated?"
            )
        raw = fields[self.header.index(column)].strip() if column in self.header else None
        return DataError(f"{self.where(row, column, line)}: {describe(raw)}; expected {expected}")


COMPRESSED = {".gz": "gzip", ".bz2": "bz2", ".xz": "lzma"}


def _open_binary(path: Path) -> IO[bytes]:
    """The file's bytes, decompressed as pandas does for .gz, .bz2 and .xz."""
    module = COMPRESSED.get(path.suffix.lower())
    if module is None:
        return open(path, "rb")
    return importlib.import_module(module).open(path, "rb")


def _open_text(path: Path, errors: str = "strict") -> IO[str]:
    return io.TextIOWrapper(_open_binary(path), encoding="utf-8-sig", errors=errors, newline="")


def csv_records(path: Path) -> Iterator[tuple[int, int, list[str]]]:
    """(data row, first line, fields) of each CSV record after the header, numbered as pandas
    numbers them (blank lines skipped). Only used to word error messages (here and in prepare)."""
    with _open_text(path, errors="replace") as fh:
        reader = csv.reader(fh, skipinitialspace=True)
        next(reader, None)
        row, last_line = 0, reader.line_num
        for fields in reader:
            first_line, last_line = last_line + 1, reader.line_num
            if len(fields) <= 1 and not "".join(fields).strip():
                continue
            row += 1
            yield row, first_line, fields


def _not_utf8(path: Path) -> DataError:
    """DataError naming the line (and column) of the first byte that is not UTF-8."""
    header: list[str] = []
    row = 0
    with _open_binary(path) as fh:
        for line_no, line in enumerate(fh, start=1):
            if line_no == 1 and line.startswith(b"\xef\xbb\xbf"):
                line = line[3:]
            try:
                text = line.decode("utf-8")
            except UnicodeDecodeError as exc:
                byte = line[exc.start : exc.start + 1].hex()
                where = f"{path}, line {line_no}"
                if line_no > 1:
                    where = f"{path}, row {row + 1} (line {line_no})"
                    if b'"' not in line:
                        field = line[: exc.start].count(b",")
                        if field < len(header):
                            where += f", column '{header[field]}'"
                return DataError(
                    f"{where}: byte 0x{byte} is not UTF-8 (the file looks saved as Windows-1252 or Latin-1); "
                    "expected a UTF-8 text file (re-save it as 'CSV UTF-8')"
                )
            if line_no == 1:
                header = [h.strip() for h in next(csv.reader([text]), [])]
            elif text.strip():
                row += 1
    return DataError(f"{path}: not a UTF-8 text file; expected UTF-8")


def _file_format(path: Path) -> str:
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in (".parquet", ".pq"):
        return "parquet"
    if suffixes and suffixes[-1] in COMPRESSED:
        suffixes = suffixes[:-1]
    if suffixes and suffixes[-1] in (".csv", ".tsv", ".txt"):
        return "csv"
    raise DataError(
        f"{path}: unsupported file type '{path.suffix}'; expected .csv (optionally .gz, .bz2 or .xz) or .parquet"
    )


def _read_csv_header(path: Path) -> list[str]:
    """The header row, checked for emptiness and delimiter."""
    try:
        with _open_text(path) as fh:
            header = next(csv.reader(fh), None)
    except UnicodeDecodeError:
        raise _not_utf8(path) from None
    except (OSError, EOFError, ValueError) as exc:  # gzip.BadGzipFile, lzma.LZMAError, truncated archive
        raise DataError(
            f"{path}: cannot decompress the file ({exc}); expected a {path.suffix} compressed CSV file"
        ) from None
    if header is None or not any(h.strip() for h in header):
        raise DataError(f"{path}: the file is empty; expected a header row and possessions")
    if len(header) == 1 and any(sep in header[0] for sep in (";", "\t", "|")):
        sep = next(s for s in (";", "\t", "|") if s in header[0])
        raise DataError(
            f"{path}, line 1: the header is one column separated by {sep!r}; expected a comma-separated file"
        )
    return [h.strip() for h in header]


def _looks_like_data(name: str) -> bool:
    try:
        float(name)
    except ValueError:
        return bool(_LABEL_RE.match(name))
    return True


def _check_columns(
    path: Path,
    columns: Sequence[str],
    seasons: Sequence[str],
    csv_file: bool = True,
    outcome: bool = True,
    column: str | None = None,
) -> None:
    """Header present, required columns present (the outcome only when `outcome`), no
    duplicates, no misspelled expected column, and `column` (to group or filter by) present."""
    where = f"{path}, line 1" if csv_file else str(path)
    expected = names.REQUIRED_COLUMNS + names.OPTIONAL_COLUMNS + ((column,) if column else ())
    if not set(columns) & set(expected) and any(_looks_like_data(c) for c in columns):
        shown = ", ".join(repr(c) for c in columns[:4]) + (", ..." if len(columns) > 4 else "")
        raise DataError(
            f"{where}: the first line looks like data ({shown}), not a header; expected a header row naming "
            f"the columns {', '.join(names.REQUIRED_COLUMNS)} (any order)"
        )
    seen: set[str] = set()
    for col in columns:
        if col in seen:
            raise DataError(f"{where}: column '{col}' appears more than once in the header; expected each column once")
        seen.add(col)
    unknown = [c for c in columns if c not in expected]
    absent = [c for c in expected if c not in seen]
    for col in unknown:
        match = difflib.get_close_matches(col, absent, n=1, cutoff=0.8)
        if match:
            raise DataError(f"{where}, column '{col}': unknown column; did you mean '{match[0]}'?")
    missing = [c for c in names.REQUIRED_COLUMNS if c not in seen and (outcome or c != names.OUTCOME)]
    if missing:
        raise DataError(
            f"{path}: missing required column(s) {', '.join(missing)}; "
            f"expected {', '.join(names.REQUIRED_COLUMNS)} (any order)"
        )
    if seasons and names.SEASON not in seen:
        raise DataError(
            f"{path}: a season filter ({', '.join(seasons)}) was given but the file has no '{names.SEASON}' "
            "column; expected a 'season' column, or no season filter"
        )
    if column and column not in seen:
        others = [c for c in columns if c not in names.REQUIRED_COLUMNS]
        raise DataError(
            f"{path}: no column '{column}' to split or filter by; expected one of the file's columns other "
            f"than the model's ({', '.join(others) or 'it has none'})"
        )
    if unknown:
        warnings.warn(f"{path}: ignoring column(s) {', '.join(unknown)}", DataWarning, stacklevel=3)


def _show(value: object) -> str:
    """A cell value for a message: 7 not 7.0 or np.float64(7.0), 'abc' quoted."""
    if isinstance(value, str):
        return repr(value)
    try:
        f = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return repr(value)
    return str(int(f)) if np.isfinite(f) and f == int(f) else f"{f:g}"


def _describe_nonfinite(value: object, col: str) -> Callable[[str | None], str]:
    def describe(raw: str | None) -> str:
        if value == col or raw == col:
            return f"{col!r} is the column's own name: the header is repeated here (two files joined?)"
        if raw is None:  # Parquet: only the parsed value is known
            if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
                return "missing value (null or NaN)"
            if isinstance(value, str):
                return f"{value!r} is not a number"
            return f"{_show(value)} is not a finite number"
        if not raw:
            return "empty cell"
        try:
            float(raw)
        except ValueError:
            return f"'{raw}' is not a number"
        return f"'{raw}' is not a finite number"

    return describe


def _numeric(src: _Source, frame: pd.DataFrame, col: str, row0: int, limit: float | None = None) -> np.ndarray:
    """Column `col` as finite float64, or a DataError at its first bad row."""
    raw = frame[col]
    if pd.api.types.is_bool_dtype(raw):  # a true/false column is no count of points or skill
        raise src.cell_error(row0 + 1, col, lambda _: "a true/false column", "numbers")
    numeric = pd.api.types.is_numeric_dtype(raw)
    values = raw if numeric else pd.to_numeric(raw, errors="coerce")
    values = np.asarray(values, dtype=np.float64)
    bad = ~np.isfinite(values)
    if bad.any():
        i = int(np.argmax(bad))
        raise src.cell_error(row0 + i + 1, col, _describe_nonfinite(raw.iloc[i], col), "a finite number")
    if limit is None:
        limit = MAX_ABS_OUTCOME if col == names.OUTCOME else MAX_ABS_Z
    big = np.abs(values) > limit
    if big.any():
        i = int(np.argmax(big))
        v = values[i]
        raise src.cell_error(
            row0 + i + 1, col, lambda raw: f"{raw if raw else f'{v:g}'} is implausibly large", f"|value| <= {limit:g}"
        )
    return values


def _numeric_columns(src: _Source, frame: pd.DataFrame, cols: Sequence[str], row0: int) -> np.ndarray:
    """Columns `cols` as one (rows, len(cols)) float64 array, each checked by _numeric in turn."""
    out = np.empty((len(frame), len(cols)))
    for j, col in enumerate(cols):
        out[:, j] = _numeric(src, frame, col, row0)
    return out


def _matchups(src: _Source, frame: pd.DataFrame, row0: int) -> np.ndarray:
    """Matchup ids 0-35 from either "o_vs_d" labels or integers."""
    raw = frame[names.MATCHUP]
    n_sc, n_m = names.N_SUPERCLUSTERS, names.N_MATCHUPS
    if pd.api.types.is_numeric_dtype(raw) and not pd.api.types.is_bool_dtype(raw):
        numbers = np.asarray(raw, dtype=np.float64)
        ok = np.isfinite(numbers) & (numbers == np.round(numbers)) & (numbers >= 0) & (numbers < n_m)
        out = np.where(ok, numbers, -1).astype(np.int64)
        value_at = numbers.__getitem__
    else:  # text: each distinct value is parsed once (a season has 36 of them)
        codes, distinct = pd.factorize(raw, use_na_sentinel=True)
        text = pd.Series(np.asarray(distinct, dtype=object), dtype="string")
        labels = text.str.extract(_LABEL_RE)
        ints = text.str.extract(_INT_RE)[0]
        off = pd.to_numeric(labels[0], errors="coerce")
        dfn = pd.to_numeric(labels[1], errors="coerce")
        as_label = (off * n_sc + dfn).where((off < n_sc) & (dfn < n_sc))
        as_int = pd.to_numeric(ints, errors="coerce")
        as_int = as_int.where(as_int < n_m)
        ids = np.append(np.asarray(as_label.fillna(as_int).fillna(-1), dtype=np.int64), -1)  # [-1]: missing
        out = ids[codes]
        value_at = raw.iloc.__getitem__  # a cell as read, for messages only
    bad = out < 0
    if bad.any():
        i = int(np.argmax(bad))
        value = value_at(i)

        def describe(cell: str | None) -> str:
            if cell is None:
                missing = value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value))
                return "missing matchup (null)" if missing else f"invalid matchup {_show(value)}"
            return f"invalid matchup '{cell}'" if cell else "empty cell (no matchup)"

        raise src.cell_error(
            row0 + i + 1,
            names.MATCHUP,
            describe,
            f"'<off>_vs_<def>' with superclusters 0-{n_sc - 1}, or an integer 0-{n_m - 1}",
        )
    sc = {}
    both = names.OFF_SUPERCLUSTER in frame and names.DEF_SUPERCLUSTER in frame
    for col in (names.OFF_SUPERCLUSTER, names.DEF_SUPERCLUSTER):
        if col not in frame:
            continue
        v = _numeric(src, frame, col, row0, limit=float(n_sc))
        wrong = (v != np.round(v)) | (v < 0) | (v >= n_sc)
        if wrong.any():
            i = int(np.argmax(wrong))
            raise src.cell_error(
                row0 + i + 1,
                col,
                lambda raw, x=v[i]: f"{raw or _show(x)} is not a supercluster",
                f"an integer 0-{n_sc - 1}",
            )
        sc[col] = v
        wrong = v != (out // n_sc if col == names.OFF_SUPERCLUSTER else out % n_sc)  # a column on its own
        if wrong.any() and not both:  # (both: the check below names the pair)
            i = int(np.argmax(wrong))
            raise src.cell_error(
                row0 + i + 1,
                col,
                lambda raw, i=i, col=col, v=v: (
                    f"{col}={raw or _show(v[i])} disagrees with matchup {_show(value_at(i))} "
                    f"(= {names.matchup_label(int(out[i]))})"
                ),
                f"matchup_id = off_supercluster * {n_sc} + def_supercluster",
            )
    if len(sc) == 2:
        off, dfn = sc[names.OFF_SUPERCLUSTER], sc[names.DEF_SUPERCLUSTER]
        mismatch = off * n_sc + dfn != out
        if mismatch.any():
            i = int(np.argmax(mismatch))
            raise src.cell_error(
                row0 + i + 1,
                names.MATCHUP,
                lambda raw: (
                    f"matchup {raw or _show(value_at(i))} disagrees with {names.OFF_SUPERCLUSTER}={_show(off[i])}, "
                    f"{names.DEF_SUPERCLUSTER}={_show(dfn[i])} (which make matchup {_show(off[i] * n_sc + dfn[i])}"
                    f" = {names.matchup_label(int(off[i] * n_sc + dfn[i]))})"
                ),
                f"matchup_id = off_supercluster * {n_sc} + def_supercluster",
            )
    return out


def column_text(frame: pd.DataFrame, column: str) -> np.ndarray:
    """A column's values as stripped text, '' where empty: what seasons and groups are named by."""
    return frame[column].astype("string").str.strip().fillna("").to_numpy(dtype=object)


def _validate_frame(src: _Source, frame: pd.DataFrame, row0: int, unusual: _Unusual) -> Possessions:
    # no outcome column (possessions to predict, iter_chunks(outcome=False)): y is NaN
    y = _numeric(src, frame, names.OUTCOME, row0) if names.OUTCOME in frame else np.full(len(frame), np.nan)
    z_off, z_def = (_numeric_columns(src, frame, cols, row0) for cols in (names.Z_OFF, names.Z_DEF))
    unusual.add(row0, y, z_off, z_def)
    matchup = _matchups(src, frame, row0)
    season = None
    if names.SEASON in frame:
        season = column_text(frame, names.SEASON)
    return Possessions(y=y, matchup=matchup, z_off=z_off, z_def=z_def, season=season, source=str(src.path))


class _Unusual:
    """Values a possession can have but rarely does (a simulated season's outcomes are not whole
    points either), tallied over a whole pass and warned once per kind at its end, with the
    count and the first row: not refused, and not one warning per chunk of a large file."""

    def __init__(self) -> None:
        self.count = {"outcome": 0, "skill": 0}
        self.first: dict[str, tuple[int, str, float]] = {}  # kind -> (row, column, value)

    def add(self, row0: int, y: np.ndarray, z_off: np.ndarray, z_def: np.ndarray) -> None:
        lo, hi = PLAUSIBLE_POINTS
        odd = ((y < lo) | (y > hi) | (y != np.round(y))) & ~np.isnan(y)  # NaN: no outcome (to predict)
        if odd.any():
            i = int(np.argmax(odd))
            self.count["outcome"] += int(odd.sum())
            self.first.setdefault("outcome", (row0 + i + 1, names.OUTCOME, float(y[i])))
        for cols, z in ((names.Z_OFF, z_off), (names.Z_DEF, z_def)):
            big = np.abs(z) > PLAUSIBLE_Z
            if big.any():
                i, a = (int(k) for k in np.argwhere(big)[0])
                self.count["skill"] += int(big.sum())
                first = (row0 + i + 1, cols[a], float(z[i, a]))
                self.first["skill"] = min(self.first.get("skill", first), first)

    def warn(self, src: _Source, stacklevel: int) -> None:
        lo, hi = PLAUSIBLE_POINTS
        if self.count["outcome"]:
            row, column, value = self.first["outcome"]
            warnings.warn(
                f"{src.where(row, column)}: {self.count['outcome']:,} outcome(s) are not whole points "
                f"{lo:g}-{hi:g} (first: {value:g}, this row); the model reads them as points per possession",
                DataWarning,
                stacklevel=stacklevel,
            )
        if self.count["skill"]:
            row, column, value = self.first["skill"]
            warnings.warn(
                f"{src.where(row, column)}: {self.count['skill']:,} skill sum(s) beyond +-{PLAUSIBLE_Z:g} "
                f"(first: {value:g}, this cell); five players' DARKO rarely pass +-40: is the column in "
                "another unit?",
                DataWarning,
                stacklevel=stacklevel,
            )


def _field_count_error(src: _Source, fallback: str) -> DataError:
    """DataError for the first CSV record whose number of fields differs from the header's."""
    n = len(src.header)
    for row, line, fields in csv_records(src.path):
        if len(fields) != n:
            return DataError(
                f"{src.where(row, line=line)}: the line has {len(fields)} fields but the header has {n}; "
                f"expected {n} comma-separated fields (a stray comma, or an unquoted comma inside a value?)"
            )
    return DataError(f"{src.path}: malformed CSV ({fallback}); expected {n} comma-separated fields per line")


def _raw_chunks(
    path: Path, seasons: Sequence[str], chunksize: int, outcome: bool = True, column: str | None = None
) -> Iterator[tuple[pd.DataFrame, _Source]]:
    """DataFrame chunks of the file after the header checks, each with its source; `column`
    (to group or filter by) is read as text."""
    fmt = _file_format(path)
    text_columns = (names.MATCHUP, names.SEASON) + ((column,) if column else ())
    if fmt == "csv":
        header = _read_csv_header(path)
        _check_columns(path, header, seasons, csv_file=True, outcome=outcome, column=column)
        src = _Source(path, True, tuple(header))
        fast = _ArrowRead(text_columns)
        for chunk in fast.chunks(path, header, chunksize):
            yield chunk, src
        if fast.stopped:  # at something pyarrow could not read: pandas reads the rest, and words any error
            yield from _pandas_csv_chunks(path, src, chunksize, skip=fast.rows, text_columns=text_columns)
    else:
        try:
            pfile = pq.ParquetFile(path)
        except Exception as exc:  # pyarrow raises several types for unreadable files
            raise DataError(f"{path}: not a readable Parquet file ({exc}); expected a Parquet file") from None
        columns = pfile.schema_arrow.names
        _check_columns(path, columns, seasons, csv_file=False, outcome=outcome, column=column)
        src = _Source(path, False, tuple(columns))
        # text columns as categories: 36 matchup labels per chunk, not 200,000 strings
        schema = pfile.schema_arrow
        text = [
            c
            for c in text_columns
            if c in columns and (pa.types.is_string(t := schema.field(c).type) or pa.types.is_large_string(t))
        ]
        if text:
            pfile = pq.ParquetFile(path, read_dictionary=text)
        for batch in pfile.iter_batches(batch_size=chunksize):
            yield batch.to_pandas(), src


def _pandas_csv_chunks(
    path: Path, src: _Source, chunksize: int, skip: int = 0, text_columns: Sequence[str] = (names.MATCHUP, names.SEASON)
) -> Iterator[tuple[pd.DataFrame, _Source]]:
    """The CSV file through pandas, the first `skip` data rows dropped: the path that words every error."""
    dtype = dict.fromkeys(text_columns, str)
    try:
        reader = pd.read_csv(path, chunksize=chunksize, dtype=dtype, encoding="utf-8-sig", skipinitialspace=True)
        for chunk in reader:
            chunk.columns = [str(c).strip() for c in chunk.columns]
            if skip >= len(chunk):
                skip -= len(chunk)
                continue
            if skip:
                chunk, skip = chunk.iloc[skip:], 0
            yield chunk, src
    except pd.errors.ParserError as exc:
        raise _field_count_error(src, str(exc).strip()) from None
    except UnicodeDecodeError:
        raise _not_utf8(path) from None
    except (OSError, EOFError) as exc:  # a compressed file that ends early or is corrupt
        raise DataError(f"{path}: cannot read the file ({exc}); expected a complete CSV file") from None


# pyarrow parses blocks of this many bytes on several threads; the chunks handed on are
# cut from them at `chunksize` rows, so that what follows sees the same chunks as before.
ARROW_BLOCK_BYTES = 16 << 20


class _ArrowRead:
    """A CSV file's rows in DataFrames of `chunksize` rows, parsed by pyarrow on several threads.

    pyarrow is the fast path for well-formed files. The moment it meets anything it does not
    read as pandas would (a malformed line, a value that is not a number, text that is not
    UTF-8), it stops with `stopped` set and `rows` the data rows handed on; the caller reads
    the rest with pandas, whose errors name the row and column.
    """

    def __init__(self, text_columns: Sequence[str] = (names.MATCHUP, names.SEASON)) -> None:
        self.rows = 0
        self.stopped = False
        self.text_columns = tuple(text_columns)

    def chunks(self, path: Path, header: list[str], chunksize: int) -> Iterator[pd.DataFrame]:
        text = pa.dictionary(pa.int32(), pa.string())  # 36 matchup labels: categories, not 10M strings
        types = {c: pa.float64() for c in header if c in _NUMERIC_COLUMNS}
        types.update({c: text for c in header if c in self.text_columns})
        pending: list[pa.RecordBatch] = []
        held = 0
        try:
            with (
                _open_binary(path) as stream,
                pcsv.open_csv(
                    stream,
                    # the header as _read_csv_header read it (stripped, without a byte-order mark)
                    read_options=pcsv.ReadOptions(block_size=ARROW_BLOCK_BYTES, column_names=header, skip_rows=1),
                    convert_options=pcsv.ConvertOptions(column_types=types, strings_can_be_null=True),
                ) as reader,
            ):
                for batch in reader:
                    pending.append(batch)
                    held += batch.num_rows
                    while held >= chunksize:
                        chunk, pending, held = _take(pending, chunksize)
                        self.rows += len(chunk)
                        yield chunk
            while held:
                chunk, pending, held = _take(pending, chunksize)
                self.rows += len(chunk)
                yield chunk
        except (pa.ArrowException, UnicodeDecodeError, OSError, EOFError):
            self.stopped = True


def _take(batches: list[pa.RecordBatch], n: int) -> tuple[pd.DataFrame, list[pa.RecordBatch], int]:
    """The first n rows of the batches as a DataFrame (fewer if there are fewer), and the batches
    left; the rows are cut and joined in Arrow, without copies, before one conversion."""
    table = pa.Table.from_batches(batches)
    rest = table.slice(n)
    return table.slice(0, n).to_pandas(), rest.to_batches(), rest.num_rows


T = TypeVar("T")


def read_ahead(items: Iterator[T], depth: int = 2) -> Iterator[T]:
    """`items` produced on a thread of their own, up to `depth` ahead of the caller, in order:
    pyarrow decodes and converts the next chunks (mostly without the GIL) while the caller
    checks and sums this one (the 10M-possession Parquet pass: 5.5 s to ~4 s on 2 cores). An
    error comes out where it happened, after the items before it. Stopping early (the caller's
    error, or a `break`) stops and closes the producer before this returns."""
    pipe: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def produce() -> None:
        try:
            for item in items:
                pipe.put((True, item))
                if stop.is_set():
                    return
            pipe.put((False, done))
        except BaseException as exc:  # handed to the caller, raised there
            pipe.put((False, exc))
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    worker = threading.Thread(target=produce, name="read-ahead", daemon=True)
    worker.start()
    try:
        while True:
            ok, item = pipe.get()
            if ok:
                yield item
            elif item is done:
                return
            else:
                raise item
    finally:
        stop.set()
        while worker.is_alive():  # let a producer blocked on a full pipe see `stop`
            try:
                while True:
                    pipe.get_nowait()
            except queue.Empty:
                worker.join(0.01)


def iter_chunks(
    path: str | Path,
    seasons: Sequence[str] = (),
    chunksize: int = 200_000,
    split: Split | None = None,
    outcome: bool = True,
    where: tuple[str, str] | None = None,
) -> Iterator[Possessions]:
    """Validated chunks of possessions, filtered to `seasons`, to the rows whose column
    `where[0]` holds `where[1]` (as text) and to one side of `split` when given. With `outcome`
    False the outcome column may be absent (possessions to predict: y is NaN).

    Raises DataError for a missing, empty or header-only file, bad columns or bad values,
    and when the filters leave no possession.
    """
    column, value = where if where else (None, None)
    for chunk, _ in _filtered_chunks(Path(path), seasons, chunksize, split, outcome, column, value):
        yield chunk


def iter_groups(
    path: str | Path,
    column: str,
    seasons: Sequence[str] = (),
    chunksize: int = 200_000,
    split: Split | None = None,
) -> Iterator[tuple[Possessions, np.ndarray]]:
    """Validated chunks of possessions (filtered as by `iter_chunks`), each with its rows' values
    of `column` as text: one pass over the file for a fit per group (`train --by`)."""
    yield from _filtered_chunks(Path(path), seasons, chunksize, split, True, column, None)


MAX_SHOWN_VALUES = 12  # a column's values an error message lists at most


def _filtered_chunks(
    path: Path,
    seasons: Sequence[str],
    chunksize: int,
    split: Split | None,
    outcome: bool,
    column: str | None,
    value: str | None,
) -> Iterator[tuple[Possessions, np.ndarray | None]]:
    if not path.exists():
        raise DataError(f"{path}: no such file")
    if path.is_dir():
        raise DataError(f"{path}: is a directory; expected a CSV or Parquet file")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: the file is empty (0 bytes); expected a header row and possessions")
    if chunksize < 1:
        raise ValueError(f"chunksize must be at least 1, got {chunksize}")
    wanted = set(seasons)
    rows_read = rows_kept = 0
    seen_seasons: set[str] = set()
    seen_values: set[str] = set()
    rows_in_seasons = rows_in_groups = 0
    unusual, source = _Unusual(), None
    for frame, src in read_ahead(_raw_chunks(path, seasons, chunksize, outcome, column)):
        source = src
        chunk = _validate_frame(src, frame, rows_read, unusual)
        values = column_text(frame, column) if column else None
        keep = np.ones(len(chunk), dtype=bool)
        if wanted:
            assert chunk.season is not None  # _check_columns guarantees the column
            seen_seasons.update(np.unique(chunk.season).tolist())
            keep &= np.isin(chunk.season, list(wanted))
        rows_in_seasons += int(keep.sum())
        if value is not None:
            if len(seen_values) <= MAX_SHOWN_VALUES:
                seen_values.update(np.unique(values[keep]).tolist())
            keep &= values == value
        rows_in_groups += int(keep.sum())
        if split is not None:
            keep &= split.keep(rows_read, len(chunk))
        rows_read += len(chunk)
        if not keep.all():
            chunk = chunk.subset(keep)
            values = None if values is None else values[keep]
        rows_kept += len(chunk)
        if len(chunk):
            yield chunk, values
    if source is not None:
        unusual.warn(source, stacklevel=4)
    if rows_read == 0:
        raise DataError(f"{path}: the file has column names but no possessions; expected at least one data row")
    if rows_kept == 0 and rows_in_groups > 0 and split is not None:
        raise DataError(
            f"{path}: the {split.side} side of the random split (fraction {split.fraction}, seed {split.seed}) "
            f"holds none of the {rows_in_groups} possession(s); expected a larger file or another fraction"
        )
    if rows_kept == 0 and value is not None and rows_in_seasons > 0:
        shown = sorted(seen_values)[:MAX_SHOWN_VALUES]
        more = ", ..." if len(seen_values) > MAX_SHOWN_VALUES else ""
        among = f" in season(s) {', '.join(sorted(wanted))}" if wanted else ""
        raise DataError(
            f"{path}, column '{column}': no possession{among} with {column} = {value!r}; "
            f"expected one of {', '.join(repr(v) for v in shown)}{more}"
        )
    if rows_kept == 0:
        present = sorted(s for s in seen_seasons if s)
        blank = " and rows with no season" if "" in seen_seasons else ""
        raise DataError(
            f"{path}, column '{names.SEASON}': no possession in season(s) {', '.join(sorted(wanted))}; "
            f"the file has {', '.join(present) or 'no named season'}{blank}"
        )


def load_possessions(
    path: str | Path,
    seasons: Sequence[str] = (),
    chunksize: int = 200_000,
    split: Split | None = None,
    where: tuple[str, str] | None = None,
) -> Possessions:
    """All validated possessions of a file in memory (needed by the `rows` likelihood)."""
    return Possessions.concat(list(iter_chunks(path, seasons, chunksize, split, where=where)))


def parse_seasons(text: str | None) -> tuple[str, ...]:
    """'2018-19,2021-22' -> ('2018-19', '2021-22'); None or '' -> ()."""
    if not text:
        return ()
    return tuple(s.strip() for s in text.split(",") if s.strip())
