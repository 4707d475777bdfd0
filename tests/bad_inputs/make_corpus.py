"""Regenerate the bad-input corpus used by tests/test_data.py.

    python tests/bad_inputs/make_corpus.py

Every file is small (< 5 KB) and deterministic: the same script always writes the same
bytes. Each file holds one problem at a known place (mostly data row 7, i.e. line 8);
tests/test_data.py asserts the exact behaviour for each file, so change both together.
"""

from __future__ import annotations

import random
from pathlib import Path

HERE = Path(__file__).resolve().parent

N_ROWS = 12
BAD_ROW = 7  # 1-based data row that carries the problem (line 8 of the file)

Z_COLUMNS = [f"z_{side}_{a}" for a in range(8) for side in ("off", "def")]  # interleaved, as in the real file
LABEL_HEADER = ["outcome", "matchup_id", *Z_COLUMNS]
# The original project's second layout: integer matchup, superclusters, season, z columns shuffled.
INTEGER_HEADER = [
    "season",
    "z_def_3",
    "outcome",
    "z_off_5",
    "def_supercluster",
    "z_off_0",
    "z_def_7",
    "matchup_id",
    "z_off_2",
    "z_def_0",
    "z_off_7",
    "z_def_5",
    "off_supercluster",
    "z_off_1",
    "z_def_2",
    "z_off_4",
    "z_def_6",
    "z_off_3",
    "z_def_1",
    "z_off_6",
    "z_def_4",
]


def base_rows(n: int = N_ROWS, seed: int = 7) -> list[dict[str, str]]:
    """n valid possessions as text cells: varying outcomes and matchups, mostly-zero z."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        off, dfn = rng.randrange(6), rng.randrange(6)
        row = {
            "outcome": str([0, 0, 0, 1, 2, 3][i % 6]),
            "matchup_id": f"{off}_vs_{dfn}",
            "off_supercluster": str(off),
            "def_supercluster": str(dfn),
            "season": "2021-22" if i % 3 else "2020-21",
        }
        for col in Z_COLUMNS:
            row[col] = f"{rng.uniform(-8, 10):.4f}" if rng.random() < 0.4 else "0.0"
        rows.append(row)
    return rows


def to_csv(header: list[str], rows: list[dict[str, str]], sep: str = ",") -> str:
    lines = [sep.join(header)] + [sep.join(r[c] for c in header) for r in rows]
    return "\n".join(lines) + "\n"


def integer_layout(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    out = []
    for r in rows:
        r = dict(r)
        r["matchup_id"] = str(int(r["off_supercluster"]) * 6 + int(r["def_supercluster"]))
        out.append(r)
    return out


def with_cell(rows: list[dict[str, str]], column: str, value: str, row: int = BAD_ROW) -> list[dict[str, str]]:
    rows = [dict(r) for r in rows]
    rows[row - 1][column] = value
    return rows


def corpus() -> dict[str, bytes]:
    rows = base_rows()
    irows = integer_layout(rows)
    good = to_csv(LABEL_HEADER, rows)
    files: dict[str, str | bytes] = {}

    # Valid references.
    files["good.csv"] = good
    files["good_integer_layout.csv"] = to_csv(INTEGER_HEADER, irows)
    files["bom.csv"] = "\ufeff" + good  # Excel's "CSV UTF-8": must load like good.csv

    # Structure of the file.
    files["empty.csv"] = b""
    files["header_only.csv"] = ",".join(LABEL_HEADER) + "\n"
    lines = good.splitlines()
    files["truncated.csv"] = "\n".join(lines[:-1] + [lines[-1][: len(lines[-1]) // 2]])  # last line cut mid-row
    files["semicolon.csv"] = to_csv(LABEL_HEADER, rows, sep=";")
    files["no_header.csv"] = "\n".join(lines[1:]) + "\n"
    extra = lines[:]
    extra[BAD_ROW] = extra[BAD_ROW] + ",0.0"
    files["extra_field.csv"] = "\n".join(extra) + "\n"
    # Two files joined with `cat`: the header again as data row BAD_ROW.
    files["repeated_header.csv"] = "\n".join(lines[:BAD_ROW] + [lines[0]] + lines[BAD_ROW:]) + "\n"
    # Two blank lines before data row 3 (pandas skips them), so data row 9 is on line 12.
    blank_rows = with_cell(rows, "z_off_4", "oops", row=9)
    blank_lines = to_csv(LABEL_HEADER, blank_rows).splitlines()
    blank_lines[3:3] = ["", ""]
    files["blank_lines_then_bad.csv"] = "\n".join(blank_lines) + "\n"
    cp = to_csv(INTEGER_HEADER, with_cell(irows, "season", "2021\u201322")).encode("cp1252")  # Excel en dash
    files["cp1252.csv"] = cp
    files["not_parquet.parquet"] = good

    # Columns.
    header, body = good.split("\n", 1)
    files["duplicate_column.csv"] = header.replace("z_def_7", "z_off_3") + "\n" + body  # z_off_3 twice
    files["misspelled_column.csv"] = to_csv(LABEL_HEADER, rows).replace("z_off_3", "z_of_3", 1)
    missing = [c for c in LABEL_HEADER if c != "z_def_7"]
    files["missing_column.csv"] = to_csv(missing, rows)

    # Cells.
    files["text_in_numeric.csv"] = to_csv(LABEL_HEADER, with_cell(rows, "z_off_2", "abc"))
    files["nan_value.csv"] = to_csv(LABEL_HEADER, with_cell(rows, "z_def_4", "NaN"))
    files["inf_value.csv"] = to_csv(LABEL_HEADER, with_cell(rows, "z_off_1", "inf"))
    files["empty_cell.csv"] = to_csv(LABEL_HEADER, with_cell(rows, "outcome", ""))
    files["huge_value.csv"] = to_csv(LABEL_HEADER, with_cell(rows, "z_def_6", "1e300"))
    files["matchup_out_of_range_label.csv"] = to_csv(LABEL_HEADER, with_cell(rows, "matchup_id", "6_vs_1"))
    files["matchup_out_of_range_int.csv"] = to_csv(
        INTEGER_HEADER,
        with_cell(with_cell(with_cell(irows, "matchup_id", "36"), "off_supercluster", "6"), "def_supercluster", "0"),
    )
    files["matchup_negative.csv"] = to_csv(INTEGER_HEADER, with_cell(irows, "matchup_id", "-1"))
    files["matchup_malformed_dash.csv"] = to_csv(LABEL_HEADER, with_cell(rows, "matchup_id", "1-vs-2"))
    files["matchup_malformed_text.csv"] = to_csv(LABEL_HEADER, with_cell(rows, "matchup_id", "abc"))
    files["matchup_empty.csv"] = to_csv(LABEL_HEADER, with_cell(rows, "matchup_id", ""))
    bad = with_cell(with_cell(irows, "off_supercluster", "2"), "def_supercluster", "1")  # 2*6+1 = 13
    files["inconsistent_superclusters.csv"] = to_csv(INTEGER_HEADER, with_cell(bad, "matchup_id", "7"))

    # Loads, but cannot be fitted: the original project's bug (every row matchup 35, outcome 0).
    const = [
        dict(r, outcome="0", matchup_id="35", off_supercluster="5", def_supercluster="5")
        for r in integer_layout(base_rows(30, seed=35))
    ]
    files["constant_matchup35.csv"] = to_csv(INTEGER_HEADER, const)

    return {name: (data if isinstance(data, bytes) else data.encode("utf-8")) for name, data in files.items()}


def main() -> None:
    for name, data in corpus().items():
        assert len(data) < 5_000, f"{name} is {len(data)} bytes; keep corpus files under 5 KB"
        (HERE / name).write_bytes(data)
    print(f"wrote {len(corpus())} files to {HERE}")


if __name__ == "__main__":
    main()
