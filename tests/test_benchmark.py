"""The benchmark harness (harness): its budget arithmetic, its tables, and
one real side-by-side run of all four methods on a tiny season."""

from __future__ import annotations

import json
import statistics
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))  # the harness lives outside the package

from run import app  # noqa: E402

import harness as bm  # noqa: E402
from lineup_numpyro.config import SamplerConfig

runner = CliRunner()


def _run(
    method,
    n,
    wall=100.0,
    data=10.0,
    warmup=30.0,
    sampling=20.0,
    its=(1000, 1000),
    status="ok",
    repeat=1,
    ess=400.0,
    **extra,
) -> dict:
    return {
        "method": method,
        "n": n,
        "repeat": repeat,
        "status": status,
        "reduced": False,
        "note": "",
        "estimate_s": None,
        "chains": 4,
        "warmup": its[0],
        "draws": its[1],
        "wall_s": wall,
        "data_s": data,
        "compile_s": 5.0,
        "warmup_s": warmup,
        "sampling_s": sampling,
        "leapfrog_per_s": 1e4,
        "ess_bulk_min_per_s": ess / sampling,
        "ess_bulk_median_per_s": 2 * ess / sampling,
        "ess_tail_min_per_s": ess / sampling,
        "ess_tail_median_per_s": ess / sampling,
        "max_rhat": 1.001,
        "divergences": 0,
        "peak_rss_mb": 500.0,
        **extra,
    }


def test_cost_model_scales_rows_only_where_gradients_do():
    earlier = [_run("numpyro-suffstats", 10_000), _run("stan-loop", 10_000)]
    # fixed = wall - data - (warmup + sampling) = 40 s; data 10 s x 10; the costlier phase,
    # warm-up, takes 30 s over 1,000 iterations
    assert bm.cost_model("numpyro-suffstats", 100_000, earlier) == pytest.approx((40 + 100, 30 / 1000))
    assert bm.cost_model("stan-loop", 100_000, earlier) == pytest.approx((40 + 100, 10 * 30 / 1000))
    assert bm.cost_model("stan-fast", 100_000, earlier) is None
    assert bm.cost_model("stan-loop", 5_000, earlier) is None  # never scaled down


def test_cost_model_uses_the_largest_smaller_run_and_pilots():
    earlier = [
        _run("stan-loop", 1_000, status="pilot", its=(25, 25), wall=20.0, data=1.0, warmup=5.0, sampling=4.0),
        _run("stan-loop", 10_000, wall=1e6, status="failed"),
    ]
    fixed, per_it = bm.cost_model("stan-loop", 10_000, earlier)
    assert fixed == pytest.approx(10.0 + 10.0) and per_it == pytest.approx(10 * 5.0 / 25)


def test_plan_full_reduced_and_not_run():
    config = bm.BenchmarkConfig(budget_s=1000.0, sizes=(10_000,))
    earlier = [_run("stan-loop", 10_000, wall=190.0, data=10.0, warmup=50.0, sampling=40.0)]
    # at 10,000 rows: fixed 90 + 10 s, and 2,000 iterations at the warm-up rate, 0.05 s: 200 s fits
    full = bm.plan_run("stan-loop", 10_000, config, earlier)
    assert full.sampler == config.sampler and not full.reduced and full.estimate_s == pytest.approx(200.0)
    # at 100,000 rows: fixed 90 + 100 = 190 s, MCMC 1,000 s for 2,000 iterations -> 0.81 of the iterations
    reduced = bm.plan_run("stan-loop", 100_000, config, earlier)
    assert reduced.reduced and reduced.estimate_s == pytest.approx(1190.0)
    assert (reduced.sampler.warmup, reduced.sampler.draws) == (810, 810)
    assert reduced.sampler.chains == 4 and reduced.sampler.seed == config.sampler.seed
    assert "reduced to 4x(810+810)" in reduced.note and "1,190" in reduced.note
    # at 10M rows even MIN_DRAWS do not fit
    skipped = bm.plan_run("stan-loop", 10_000_000, config, earlier)
    assert skipped.sampler is None and skipped.note.startswith("not run (budget")
    # no earlier run: run in full, with no estimate
    assert bm.plan_run("stan-fast", 10_000, config, earlier) == bm.Plan(config.sampler)


def test_efficiency_per_second_of_sampling():
    table = pd.DataFrame(
        {"ess_bulk": [100.0, 300.0, 500.0], "ess_tail": [50.0, 80.0, 90.0], "r_hat": [1.0, 1.02, 1.001]}
    )
    n_steps = np.array([[3, 7], [15, 7]])
    out = bm.efficiency(table, n_steps, np.array([[False, True], [False, False]]), sampling_s=2.0)
    assert out["ess_bulk_min_per_s"] == 50.0 and out["ess_bulk_median_per_s"] == 150.0
    assert out["ess_tail_min_per_s"] == 25.0 and out["ess_tail_median_per_s"] == 40.0
    assert out["leapfrog_steps"] == 32 and out["leapfrog_per_s"] == 16.0
    assert out["divergences"] == 1 and out["max_rhat"] == 1.02


def test_medians_ratios_and_table():
    config = bm.BenchmarkConfig(repeats=3, sizes=(96_837,))
    results = [
        _run("numpyro-suffstats", 96_837, wall=w, sampling=2.0, ess=e, repeat=i)
        for i, (w, e) in enumerate([(20.0, 1000.0), (18.0, 1200.0), (30.0, 1100.0)], start=1)
    ]
    results += [_run("stan-fast", 96_837, sampling=10.0, ess=1000.0, repeat=i) for i in (1, 2, 3)]
    results += [_run("nutpie", 96_837, sampling=4.0, ess=1000.0, repeat=i) for i in (1, 2, 3)]
    results += [_run("stan-loop", 96_837, status="pilot", repeat=0)]
    results += [
        {**_run("stan-loop", 96_837, repeat=1), "status": "not run (budget)", "note": "not run (budget; est. 99,000 s)"}
    ]
    rows = {r["method"]: r for r in bm.medians(results)}
    assert rows["numpyro-suffstats"]["runs"] == 3
    assert rows["numpyro-suffstats"]["wall_s"] == 20.0
    assert rows["numpyro-suffstats"]["ess_bulk_min_per_s"] == statistics.median([500.0, 600.0, 550.0])
    assert rows["stan-loop"]["runs"] == 0 and rows["stan-loop"]["wall_s"] is None  # the pilot is not a repeat
    q = bm.ratios(bm.medians(results), 96_837)
    assert q["stan-fast"] == pytest.approx(550.0 / 100.0) and q["best stan"] == q["stan-fast"]
    assert q["stan-loop"] is None
    assert q["nutpie"] == pytest.approx(550.0 / 250.0)  # a peer, not a Stan form: not in "best stan"
    text = bm.markdown(config, results, {"cpu_count": 2})
    assert "| 96,837 | stan-loop | 0 |" in text and "not run (budget; est. 99,000 s)" in text
    assert "5.5x stan-fast" in text and "4 chains x (1000 warm-up + 1000 draws)" in text


def test_config_rejects_bad_methods_and_sizes():
    with pytest.raises(ValueError, match="unknown method"):
        bm.BenchmarkConfig(methods=("numpyro-suffstats", "pymc"))
    with pytest.raises(ValueError, match="at least 1"):
        bm.BenchmarkConfig(sizes=(0,))
    with pytest.raises(ValueError, match="no fast Stan form"):
        bm.BenchmarkConfig(model="simplified")


def test_cli_rejects_bad_options():
    result = runner.invoke(app, ["--methods", "numpyro-suffstats,pymc"])
    assert result.exit_code == 2 and "unknown method(s) pymc" in result.output
    result = runner.invoke(app, ["--sizes", "10k"])
    assert result.exit_code == 2 and "--sizes takes comma-separated whole numbers" in result.output


def test_run_past_budget_is_stopped_and_said(tmp_path):
    config = bm.BenchmarkConfig(sizes=(500,), data_dir=tmp_path)
    spec = {
        "method": "numpyro-suffstats",
        "model": "matchup",
        "data": str(bm.season_path(config, 500)),
        "sampler": asdict(SamplerConfig(chains=1, warmup=10_000, draws=10_000)),
    }
    result = bm.run_command(bm.train_command(spec, tmp_path / "run"), timeout_s=3.0)
    assert result["status"] == "stopped (budget)" and "budget" in result["note"]
    assert 3.0 <= result["wall_s"] < 30.0 and result["peak_rss_mb"] > 0


@pytest.fixture(scope="module")
def tiny_benchmark(tmp_path_factory):
    """All four methods, side by side, on a 1,500-possession season: 2 chains x (60 + 60)."""
    from lineup_numpyro.stan.runner import fit_files

    root = tmp_path_factory.mktemp("bench")
    fits_before = fit_files()
    config = bm.BenchmarkConfig(
        sizes=(1_500,),
        budget_s=600.0,
        data_dir=root / "data",
        cache_dir=root / "jax-cache",
        sampler=SamplerConfig(chains=2, warmup=60, draws=60, seed=3),
    )
    seen = []
    results = bm.run_benchmark(config, root / "out", on_result=seen.append)
    return config, results, seen, root / "out", fits_before


@pytest.mark.slow  # the tiny benchmark runs every method in fresh processes (~2 min)
@pytest.mark.parametrize("method", bm.METHODS)
def test_every_method_runs_and_reports(tiny_benchmark, method):
    _, results, _, _, _ = tiny_benchmark
    (run,) = [r for r in results if r["method"] == method and r["repeat"] == 1]
    assert run["status"] == "ok", run["note"]
    assert (run["chains"], run["warmup"], run["draws"]) == (2, 60, 60) and not run["reduced"]
    assert run["wall_s"] > run["sampling_s"] > 0 and run["warmup_s"] > 0 and run["compile_s"] >= 0
    assert run["peak_rss_mb"] > 50
    assert 0 < run["ess_bulk_min_per_s"] <= run["ess_bulk_median_per_s"]
    assert run["ess_bulk_min_per_s"] * run["sampling_s"] == pytest.approx(run["ess_bulk_min"])
    assert run["leapfrog_steps"] >= 2 * 60  # at least one gradient per draw and chain
    assert np.isfinite(run["max_rhat"]) and run["divergences"] >= 0


@pytest.mark.slow
def test_row_by_row_methods_are_priced_by_a_pilot(tiny_benchmark):
    _, results, _, _, _ = tiny_benchmark
    pilots = [r for r in results if r["repeat"] == 0]
    assert sorted(r["method"] for r in pilots) == ["numpyro-rows", "stan-loop"]
    assert all(r["status"] == "pilot" and r["draws"] == bm.PILOT_ITERATIONS for r in pilots)


@pytest.mark.slow
def test_outputs_written_and_fit_cache_left_clean(tiny_benchmark):
    config, results, seen, out, fits_before = tiny_benchmark
    assert seen == results
    saved = json.loads((out / bm.RESULTS).read_text())
    assert len(saved["runs"]) == len(results) and {m["method"] for m in saved["medians"]} == set(bm.METHODS)
    assert saved["machine"]["versions"]["numpyro"] and saved["config"]["sampler"]["warmup"] == 60
    table = (out / bm.TABLE).read_text()
    assert all(f"| 1,500 | {m} | 1 | 2x(60+60) |" in table for m in bm.METHODS)
    assert "numpyro-suffstats min ESS_bulk/s =" in table
    png = (out / bm.PLOT).read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 10_000
    from lineup_numpyro.stan.runner import fit_files

    assert fit_files() - fits_before == set()  # httpstan's copies of the fits were deleted


def test_prices_from_an_earlier_benchmark(tmp_path):
    earlier = [
        _run("stan-loop", 10_000, wall=190.0, data=10.0, warmup=50.0, sampling=40.0),
        _run("stan-loop", 10_000, status="stopped (budget)"),
    ]
    path = tmp_path / "results.json"
    path.write_text(json.dumps({"config": {"model": "matchup"}, "runs": earlier}))
    prices = bm.load_prices(path, "matchup")
    assert prices == earlier[:1]
    config = bm.BenchmarkConfig(budget_s=1000.0)
    assert bm.plan_run("stan-loop", 100_000, config, prices).sampler.draws == 810
    with pytest.raises(ValueError, match="hierarchical model, not matchup"):
        path.write_text(json.dumps({"config": {"model": "hierarchical"}, "runs": earlier}))
        bm.load_prices(path, "matchup")
    result = runner.invoke(app, ["--price-from", str(tmp_path / "missing.json")])
    assert result.exit_code == 2 and "missing.json" in result.output


def test_cost_model_prefers_a_real_run_to_a_pilot_on_the_same_data():
    pilot = _run("stan-loop", 10_000, status="pilot", its=(25, 25), wall=100.0, data=1.0, warmup=60.0, sampling=20.0)
    full = _run("stan-loop", 10_000, its=(226, 226), wall=300.0, data=1.0, warmup=230.0, sampling=50.0)
    for earlier in ([pilot, full], [full, pilot]):
        assert bm.cost_model("stan-loop", 10_000, earlier) == pytest.approx((300.0 - 1.0 - 280.0 + 1.0, 230.0 / 226))


def test_a_stopped_stan_run_reports_the_chains_that_finished(monkeypatch, tmp_path):
    from lineup_numpyro.stan import runner as stan_runner

    finished = tmp_path / "chain1.jsonlines.gz"
    on_disk: set = set()
    monkeypatch.setattr(stan_runner, "fit_files", lambda model_dir=None: set(on_disk))
    calls = []

    def fake_run(spec, timeout_s):
        calls.append((spec, timeout_s))
        if "finished_chains" not in spec:  # the run: one chain ends, then the budget stops it
            finished.write_bytes(b"draws")
            on_disk.add(finished)
            return {
                "wall_s": 91.0,
                "peak_rss_mb": 700.0,
                "status": "stopped (budget)",
                "note": "stopped after 91 s (budget)",
            }
        return {**_run("stan-loop", 1000), "wall_s": 4.0, "peak_rss_mb": 300.0, "status": "ok"}

    monkeypatch.setattr(bm, "run_in_subprocess", fake_run)
    config = bm.BenchmarkConfig(budget_s=60.0)
    out = bm._execute("stan-loop", tmp_path / "season.parquet", config, SamplerConfig(chains=4))
    assert out["status"] == "ok" and out["chains"] == 1
    assert out["wall_s"] == 91.0 and out["peak_rss_mb"] == 700.0  # the stopped run's, not the read-back's
    assert "stopped after 91 s" in out["note"] and "1 of 4 chains" in out["note"]
    assert calls[0][1] == bm.STOP_FACTOR * 60.0 and calls[1][0]["finished_chains"] == [str(finished)]
    assert not finished.exists()  # httpstan's copy is deleted once read
    # a NumPyro run (the CLI, timed) stopped at the budget is not read back
    calls.clear()
    commands = []

    def fake_command(cmd, timeout_s, env=None):
        commands.append(cmd)
        return {"wall_s": 91.0, "peak_rss_mb": 700.0, "status": "stopped (budget)", "note": "stopped after 91 s"}

    monkeypatch.setattr(bm, "run_command", fake_command)
    stopped = bm._execute("numpyro-rows-cold", tmp_path / "season.parquet", config, SamplerConfig())
    assert stopped["status"] == "stopped (budget)" and not calls
    assert len(commands) == 1 and commands[0][2:4] == ["lineup_numpyro.cli", "train"]
    assert "--likelihood" in commands[0] and commands[0][commands[0].index("--likelihood") + 1] == "rows"


@pytest.mark.slow
def test_a_warm_cache_compiles_less_than_a_cold_one(tiny_benchmark):
    _, results, _, _, _ = tiny_benchmark
    by = {r["method"]: r for r in results if r["repeat"] == 1}
    warm, cold = by["numpyro-suffstats"], by["numpyro-suffstats-cold"]
    assert warm["compile_s"] < 0.5 * cold["compile_s"]
    assert warm["ess_bulk_min"] == pytest.approx(cold["ess_bulk_min"])  # the same draws


def test_seed_per_repeat_gives_each_repeat_its_own_seed_for_every_method(monkeypatch, tmp_path):
    """With seed_per_repeat, repeat r runs every method with seed + r - 1 (and says which);
    without it every repeat has the one seed."""
    ran = []

    def execute(method, path, config, sampler):  # noqa: ANN001, ANN202 -- records instead of running
        ran.append((method, sampler.seed))
        return {"status": "ok"}

    monkeypatch.setattr(bm, "_execute", execute)
    monkeypatch.setattr(bm, "write_results", lambda *args: None)  # no tables of runs that did not run
    methods = ("numpyro-suffstats", "stan-fast")
    for per_repeat, seeds in ((True, [5, 5, 6, 6, 7, 7]), (False, [5] * 6)):
        ran.clear()
        config = bm.BenchmarkConfig(
            methods=methods, sizes=(500,), repeats=3, data_dir=tmp_path, sampler=SamplerConfig(seed=5),
            seed_per_repeat=per_repeat,
        )  # fmt: skip
        results = bm.run_benchmark(config, tmp_path / "out")
        assert [s for _, s in ran] == seeds and [m for m, _ in ran] == list(methods) * 3
        assert [r["seed"] for r in results] == seeds
