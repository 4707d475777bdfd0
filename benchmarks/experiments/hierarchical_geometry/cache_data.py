import os
HERE = os.path.dirname(os.path.abspath(__file__))
import numpy as np
from lineup_numpyro.suffstats import from_file, SuffStats
from lineup_numpyro.simulate import simulate_season
out = {}
out["strat"] = from_file("../shared/data/stratified_sample_10k.csv")
out["quick"] = from_file("../shared/data/quick_sample_10k.csv")
rows, truth = simulate_season(); out["sim"] = SuffStats.from_possessions(rows)
rows, truth = simulate_season(30000, model="hierarchical", seed=7, empty_matchups=4); out["sim7"] = SuffStats.from_possessions(rows)
# 2022-23 of the simulated three-season file of benchmarks/hierarchical_convergence.py
import sys, tempfile
from pathlib import Path
sys.path.insert(0, os.path.join(HERE, "..", ".."))
from hierarchical_convergence import multi_season_file
out["multi"] = from_file(multi_season_file(Path(tempfile.mkdtemp())), seasons=("2022-23",))
for k, s in out.items():
    np.savez(os.path.join(HERE, f"data_{k}.npz"), n=s.n, xtx=s.xtx, xty=s.xty, yty=s.yty)
    d = np.einsum("mjj->mj", s.xtx)
    print(k, int(s.n.sum()), "matchups", (s.n>0).sum(), "touched", (d>0).sum(), "n per matchup", np.sort(s.n[s.n>0]).astype(int)[:6])
