"""End-to-end time of `lineup-numpyro train --model matchup` on the built-in simulated season.

96,837 possessions, 4 chains x (1,000 warm-up + 1,000 draws), JIT included: each repeat is a
fresh process, timed from start to exit. Prints each run and the medians; target on the
2-core CI machine: under 60 s, 0 divergences, R-hat <= 1.01, min ESS_bulk >= 1,000.

    python benchmarks/train_matchup.py [--repeats 3] [--model matchup] [--platform cpu]
        [--checkpoint-every 250,1000] [--cache cold,warm]

Several --checkpoint-every values, or compilation caches, alternate within each repeat, so
their medians compare on the same machine state: `cold` runs with an empty JAX compilation
cache (a first run on a machine), `warm` with the benchmark's own cache, filled by one untimed
run first (every later run).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CLI = Path(sys.executable).parent / "lineup-numpyro"


WARM_CACHE = Path(__file__).resolve().parent / "data" / "jax-cache-train"


def run_once(model: str, platform: str, extra: list[str], cache: str = "warm") -> dict:
    import os

    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "LINEUP_NUMPYRO_JAX_CACHE": str(WARM_CACHE if cache == "warm" else Path(tmp) / "cache")}
        run_dir = Path(tmp) / "run"
        cmd = [
            str(CLI),
            "train",
            "--model",
            model,
            "--out",
            str(run_dir),
            "--platform",
            platform,
            "--chains",
            "4",
            "--warmup",
            "1000",
            "--draws",
            "1000",
            "--no-progress",
            *extra,
        ]
        start = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        wall = time.perf_counter() - start
        if proc.returncode != 0:
            raise SystemExit(f"train failed ({proc.returncode}):\n{proc.stderr}")
        diag = json.loads((run_dir / "diagnostics.json").read_text())
        record = json.loads((run_dir / "run_config.json").read_text())
    return {
        "wall_s": wall,
        "compile_s": diag["timing"]["compile_s"],
        "warmup_s": diag["timing"]["warmup_s"],
        "sampling_s": diag["timing"]["sampling_s"],
        "min_ess_bulk": diag["min_ess_bulk"],
        "max_rhat": diag["max_rhat"],
        "divergences": diag["divergences"]["count"],
        "chain_method": diag["chain_method"],
        "n_possessions": record["data"]["n_possessions"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--model", default="matchup", choices=["simplified", "matchup", "hierarchical"])
    parser.add_argument("--platform", default="cpu", choices=["cpu", "gpu"])
    parser.add_argument(
        "--checkpoint-every", default="250", help="draws per saved chunk; a comma-separated list alternates the values"
    )
    parser.add_argument("--cache", default="warm", help="cold, warm, or cold,warm to alternate them")
    parser.add_argument("--json", type=Path, help="also write the runs and medians here")
    args, extra = parser.parse_known_args()
    everies = [(cache, int(v)) for v in args.checkpoint_every.split(",") for cache in args.cache.split(",")]
    if "warm" in args.cache.split(","):  # fill the warm cache (untimed)
        run_once(args.model, args.platform, extra, "warm")

    import os

    runs: dict[tuple[str, int], list[dict]] = {every: [] for every in everies}
    print(
        f"lineup-numpyro train --model {args.model}: built-in season, 4 chains x (1000 + 1000), "
        f"{os.cpu_count()} cores, platform {args.platform}"
    )
    print(
        f"{'run':>3} {'cache':>5} {'chunk':>5} {'wall s':>7} {'compile':>8} {'warm-up':>8} {'sampling':>9} "
        f"{'min ESS':>8} {'max R-hat':>9} {'div':>4}"
    )
    for i in range(args.repeats):
        for cache, every in everies:
            r = run_once(args.model, args.platform, [*extra, "--checkpoint-every", str(every)], cache)
            runs[(cache, every)].append(r)
            print(
                f"{i + 1:>3} {cache:>5} {every:>5} {r['wall_s']:>7.1f} {r['compile_s']:>8.1f} {r['warmup_s']:>8.1f} "
                f"{r['sampling_s']:>9.1f} {r['min_ess_bulk']:>8.0f} {r['max_rhat']:>9.4f} {r['divergences']:>4}",
                flush=True,
            )
    medians = {}
    for every, these in runs.items():
        median = {
            k: statistics.median(r[k] for r in these)
            for k in ("wall_s", "compile_s", "warmup_s", "sampling_s", "min_ess_bulk", "max_rhat")
        }
        medians[every] = median
        print(
            f"{every[0]} cache, checkpoint every {every[1]}, median of {len(these)}: wall {median['wall_s']:.1f} s "
            f"(compile {median['compile_s']:.1f}, warm-up {median['warmup_s']:.1f}, "
            f"sampling {median['sampling_s']:.1f}), min ESS_bulk {median['min_ess_bulk']:.0f}, "
            f"max R-hat {median['max_rhat']:.4f}, divergences {max(r['divergences'] for r in these)} "
            f"(max over runs), ESS_bulk/s {median['min_ess_bulk'] / median['wall_s']:.0f}"
        )
    if len(everies) > 1:
        base = medians[everies[-1]]["wall_s"]
        print(
            "wall time relative to",
            everies[-1],
            ": " + ", ".join(f"{every}: {medians[every]['wall_s'] / base:.2f}x" for every in everies[:-1]),
        )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        label = {every: f"{every[0]}/{every[1]}" for every in everies}
        args.json.write_text(
            json.dumps(
                {"runs": {label[k]: v for k, v in runs.items()}, "median": {label[k]: v for k, v in medians.items()}},
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
