"""Fits per minute for SBC: the batched engine against fitting one data set at a time (issue 19).

Every method fits the same simulated data sets (prior draws of MODELS.md, statistics simulated
on the design of the built-in season or --data) with 4 chains x (warm-up + draws):

- batched: `analysis.sbc.run_sbc` (B fits x 4 chains as lanes of one compiled program), for
  each --batch given (NUTS) and each --chees given (the chees kernel, a fit per lane);
  compilation included (first call of each setting in the process);
- loop: `sample_posterior` once per data set in one process (as simuk calls MCMC.run in a
  loop; here the program compiles once, since the data are its arguments);
- process: `lineup-numpyro train` once per data set, each a new process (as one worker per fit),
  timed from the shell with a warm compilation cache.

Every method starts where --init says (default: NumPyro's random start; plugin: each fit's
plug-in start, matchup model only).

    python benchmarks/sbc_throughput.py --model matchup --fits 32 --batch 8,32 --loop 8 --process 3
    python benchmarks/sbc_throughput.py --model matchup --init plugin --fits 200 --batch 1 --chees 4,8 \
        --loop 20 --process 6 --data ../shared/data/quick_sample_10k.csv
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="matchup")
    parser.add_argument("--fits", type=int, default=32)
    parser.add_argument("--batch", default="8,32", help="NUTS fits per compiled call, comma-separated ('': none)")
    parser.add_argument("--chees", default="", help="chees fits per compiled call, comma-separated ('': none)")
    parser.add_argument("--init", default="default", choices=["default", "plugin"])
    parser.add_argument("--loop", type=int, default=8, help="fits for the in-process loop (0: skip)")
    parser.add_argument("--process", type=int, default=3, help="fits for one process per fit (0: skip)")
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument("--draws", type=int, default=500)
    parser.add_argument("--data", default=None)
    args = parser.parse_args()

    from lineup_numpyro.inference.runtime import configure_jax

    configure_jax("cpu", chains=4)
    from lineup_numpyro.analysis.sbc import (
        SBCConfig,
        coefficient_matrix,
        design_stats,
        draw_prior,
        run_sbc,
        simulate_stats,
    )
    from lineup_numpyro.config import Priors, model_sampler
    from lineup_numpyro.inference.sampling import sample_posterior
    from lineup_numpyro.models.cells import Cells
    from lineup_numpyro.models.model import get_model, make_likelihood, start_for
    from lineup_numpyro.models.whitening import Whitening

    design = design_stats(args.data)
    sampler = model_sampler(args.model, warmup=args.warmup, draws=args.draws, init=args.init)
    rows = []
    for kernel, batches in (("nuts", args.batch), ("chees", args.chees)):
        for batch in (int(b) for b in batches.split(",") if b):
            config = model_sampler(args.model, warmup=args.warmup, draws=args.draws, init=args.init, kernel=kernel)
            result = run_sbc(SBCConfig(model=args.model, fits=args.fits, sampler=config, batch=batch), design)
            name = f"batched {kernel}, {batch} fits per call"
            rows.append((name, args.fits, result.seconds, int((result.divergences > 0).sum())))
    rng = np.random.default_rng(0)
    pooled = args.model == "simplified"
    if args.loop:
        cells = None if pooled else Cells.from_stats(design)
        start = time.perf_counter()
        for i in range(args.loop):
            truth = draw_prior(args.model, Priors(), rng)
            stats = simulate_stats(design, coefficient_matrix(truth, pooled), float(truth["sigma"]), rng)
            whitening = Whitening.from_stats(stats) if args.model == "hierarchical" else None
            model = get_model(args.model, cells, whitening)
            begin = start_for(args.init, stats, cells, Priors(), sampler.chains, i)
            sample_posterior(model, make_likelihood("suffstats", stats=stats), replace(sampler, seed=i), start=begin)
        rows.append(("loop in one process", args.loop, time.perf_counter() - start, None))
    if args.process:
        work = Path(tempfile.mkdtemp(prefix="sbc_process_"))
        cmd = [sys.executable, "-m", "lineup_numpyro.cli", "train", "--model", args.model, "--warmup", str(args.warmup)]
        cmd += ["--draws", str(args.draws), "--no-progress", "--init", args.init]
        cmd += ["--data", args.data] if args.data else []
        subprocess.run([*cmd, "--out", str(work / "warm")], check=True, capture_output=True)  # fill the cache
        start = time.perf_counter()
        for i in range(args.process):
            subprocess.run([*cmd, "--seed", str(i), "--out", str(work / f"fit{i}")], check=True, capture_output=True)
        rows.append(("one process per fit (train, warm cache)", args.process, time.perf_counter() - start, None))
    print(f"\n{args.model} model, 4 chains x ({args.warmup} + {args.draws}), design: {args.data or 'built-in season'}")
    print(f"{'method':<42} {'fits':>5} {'seconds':>8} {'fits/min':>9} {'divergent fits':>15}")
    for name, fits, seconds, div in rows:
        print(f"{name:<42} {fits:>5} {seconds:>8.1f} {60 * fits / seconds:>9.2f} {'' if div is None else div:>15}")


if __name__ == "__main__":
    main()
