"""NumPyro against Stan, side by side: `python benchmarks/run.py [options]` (see `--help` and
benchmarks/README.md); results go to benchmarks/results/latest/ by default (results.json,
results.md, scaling.png). The harness (harness.py) lives here, outside the installed package.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape

from harness import TABLE, BenchmarkConfig, load_prices, run_benchmark
from lineup_numpyro.cli import Model, PlatformKind, _fail, _known_errors, err, out
from lineup_numpyro.config import SamplerConfig

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


def _int_list(text: str, option: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v.replace("_", "")) for v in text.split(",") if v.strip())
    except ValueError:
        _fail(f"{option} takes comma-separated whole numbers, got {text!r}")
    return values


@app.command()
def main(
    out_dir: Annotated[Path, typer.Option("--out", help="Write results.json, results.md and scaling.png here.")] = Path(
        "benchmarks/results/latest"
    ),
    model: Annotated[Model, typer.Option(help="Which model to fit.")] = Model.matchup,
    sizes: Annotated[str, typer.Option(help="Possessions per simulated season, comma-separated.")] = (
        "10000,96837,1000000,10000000"
    ),
    methods: Annotated[
        str, typer.Option(help="Comma-separated, from numpyro-suffstats, numpyro-rows, stan-loop, stan-fast.")
    ] = "numpyro-suffstats,numpyro-rows,stan-loop,stan-fast",
    repeats: Annotated[int, typer.Option(min=1, help="Runs of each (size, method); the table shows medians.")] = 1,
    budget: Annotated[
        float,
        typer.Option(
            min=1.0, help="Seconds one run may take; longer ones run fewer iterations or not at all, and say so."
        ),
    ] = 1200.0,
    chains: Annotated[int, typer.Option(min=1, help="Chains, for every method.")] = 4,
    warmup: Annotated[int, typer.Option(min=0, help="Warm-up iterations per chain.")] = 1000,
    draws: Annotated[int, typer.Option(min=1, help="Kept draws per chain.")] = 1000,
    seed: Annotated[int, typer.Option(help="Sampler seed, for every method.")] = 1,
    seed_per_repeat: Annotated[
        bool, typer.Option(help="Repeat r uses seed + r - 1, so that the medians cover the chains' randomness.")
    ] = False,
    target_accept: Annotated[float, typer.Option(min=0.0, max=1.0, help="Target acceptance, for every method.")] = 0.9,
    platform: Annotated[PlatformKind, typer.Option(help="Where NumPyro runs (Stan always runs on the CPU).")] = (
        PlatformKind.cpu
    ),
    data_dir: Annotated[Path, typer.Option(help="Where the simulated seasons are written once and reused.")] = Path(
        "benchmarks/data"
    ),
    price_from: Annotated[
        Optional[Path],
        typer.Option(help="results.json of an earlier benchmark on this machine, to price the runs (no new pilots)."),
    ] = None,
) -> None:
    """Time NumPyro against Stan on simulated seasons of several sizes (see benchmarks/README)."""
    try:
        config = BenchmarkConfig(
            model=model.value,
            methods=tuple(m.strip() for m in methods.split(",") if m.strip()),
            sizes=_int_list(sizes, "--sizes"),
            repeats=repeats,
            budget_s=budget,
            data_dir=data_dir,
            seed_per_repeat=seed_per_repeat,
            sampler=SamplerConfig(
                chains=chains,
                warmup=warmup,
                draws=draws,
                seed=seed,
                target_accept=target_accept,
                platform=platform.value,
            ),
        )
        prices = load_prices(price_from, config.model) if price_from else []
    except _known_errors() as exc:
        _fail(str(exc))

    def show(r: dict) -> None:
        figures = (
            f"wall {r['wall_s']:.1f} s, min ESS_bulk/s {r['ess_bulk_min_per_s']:.2f}"
            if r["status"] in ("ok", "pilot")
            else r["status"]
        )
        if r["status"] == "pilot":
            figures = f"pilot run to price it, {r['chains']}x({r['warmup']}+{r['draws']}): {figures}"
        note = f" [{r['note']}]" if r.get("note") else ""
        err.print(
            escape(f"repeat {r['repeat']}: {r['method']} on {r['n']:,} possessions: {figures}{note}"),
            highlight=False,
            soft_wrap=True,
        )

    run_benchmark(config, out_dir, on_result=show, prices=prices)
    out.print((out_dir / TABLE).read_text(), markup=False, highlight=False, soft_wrap=True)
    out.print(f"wrote {out_dir}/results.json, results.md and scaling.png", highlight=False)


if __name__ == "__main__":
    app()
