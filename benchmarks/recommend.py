"""Time `lineup-numpyro lineup recommend` on a fit of the real 10K sample (issue 7's target:
a ranked list with intervals in under 5 seconds).

Fits the matchup model on ../shared/data/quick_sample_10k.csv (4 chains x (1000 + 1000)) unless
--run gives a finished run, then times the whole command (a fresh process: imports, loading
the tables and the posterior, 266 candidates x 30 default opponents x 4,000 draws) and,
separately, the `recommend` call itself. Prints each run and the medians.

    python benchmarks/recommend.py [--run RUN_DIR] [--repeats 5] [--shared ../shared/data]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CLI = Path(sys.executable).parent / "lineup-numpyro"
CORE = "Amen Thompson, Alperen Sengun, Jabari Smith Jr., Jalen Green"  # 2024-25 Houston Rockets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, help="a finished run directory (default: fit one)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        run = args.run
        if run is None:
            run = Path(tmp) / "run"
            subprocess.run(
                [
                    str(CLI),
                    "train",
                    "--model",
                    "matchup",
                    "--data",
                    str(args.shared / "quick_sample_10k.csv"),
                    "--out",
                    str(run),
                    "--no-progress",
                ],
                check=True,
                capture_output=True,
            )
        cmd = [str(CLI), "lineup", "recommend", str(run), "--core", CORE, "--tables", str(args.shared)]
        walls = []
        for i in range(args.repeats):
            start = time.perf_counter()
            proc = subprocess.run(cmd, capture_output=True, text=True)
            walls.append(time.perf_counter() - start)
            if proc.returncode != 0:
                raise SystemExit(proc.stderr)
            print(f"run {i + 1}: lineup recommend (whole command) {walls[-1]:.2f} s", flush=True)

        import warnings

        from lineup_numpyro.lineups.players import default_opponents, load_assignments, load_players
        from lineup_numpyro.lineups.valuation import load_fit, recommend

        warnings.simplefilter("ignore")
        players = load_players(args.shared / "player_archetypes_k8_2024-25.csv", args.shared / "darko_dpm_2024-25.csv")
        assignments = load_assignments(args.shared / "supercluster_assignments_multi_season.json")
        opponents = default_opponents(players, assignments)
        fit = load_fit(run)
        core = [players.find(q) for q in CORE.split(",")]
        calls = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            rec = recommend(fit, players, assignments, core, opponents)
            calls.append(time.perf_counter() - start)
    print(
        f"median of {args.repeats}: whole command {statistics.median(walls):.2f} s; recommend() "
        f"{statistics.median(calls):.3f} s for {len(rec.table)} candidates x {len(opponents)} opponents x "
        f"{fit.posterior.n_draws} draws"
    )


if __name__ == "__main__":
    main()
