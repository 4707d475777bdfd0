"""The matchup-specific model on a real sample converges: the original Stan fit never did."""

from __future__ import annotations

import json

from lineup_numpyro.config import DataConfig, RunConfig, SamplerConfig
from lineup_numpyro.run.rundir import RunDir
from lineup_numpyro.run.train import train


def test_matchup_model_converges_on_real_sample(shared_data, tmp_path):
    config = RunConfig(
        model="matchup",
        data=DataConfig(path=str(shared_data / "quick_sample_10k.csv")),
        sampler=SamplerConfig(chains=4, warmup=1000, draws=1000, seed=0),
    )
    report = train(config, tmp_path / "run")
    assert report["divergences"]["count"] == 0
    assert report["max_rhat"] <= 1.01
    assert all(m["verdict"] == "converged" for m in report["matchups"])
    record = json.loads((tmp_path / "run" / RunDir.RUN_CONFIG).read_text())
    assert record["data"]["n_possessions"] == 10_000
