"""lineup-numpyro: the command line, a thin layer over the library's functions.

Errors in the input end the command with exit code 2 and one line naming the file, row
and column; warnings about the data are printed and the command goes on.
"""

from __future__ import annotations

import atexit
import json
import os
import sys
import threading
import warnings
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional, get_args

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from lineup_numpyro import __version__
from lineup_numpyro import config as literals
from lineup_numpyro.config import (
    FIXED_ON_RESUME,
    ApproxConfig,
    DataConfig,
    Priors,
    RunConfig,
    model_sampler,
    parse_where,
)
from lineup_numpyro.errors import LineupError
from lineup_numpyro.files import atomic_path
from lineup_numpyro.names import Labels, matchup_label

if TYPE_CHECKING:
    from lineup_numpyro.lineups.prepare import PrepareReport

app = typer.Typer(
    help="Bayesian NBA lineup models (Brill, Hughes & Waldbaum 2023) fitted with NumPyro.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console()
err = Console(stderr=True)

EXIT_BAD_INPUT = 2


def _choices(name: str, literal: object) -> type[Enum]:
    """A typer choice type made from a config.py Literal, so the allowed values are written once."""
    return Enum(name, {value: value for value in get_args(literal)}, type=str)


Model = _choices("Model", literals.ModelName)
Parameterization = _choices("Parameterization", literals.Parameterization)
LikelihoodKind = _choices("LikelihoodKind", literals.Likelihood)
ChainMethod = _choices("ChainMethod", literals.ChainMethod)
Method = _choices("Method", literals.Method)
Init = _choices("Init", literals.Init)
FirstMass = _choices("FirstMass", literals.FirstMass)
Kernel = _choices("Kernel", literals.Kernel)
MassEstimate = _choices("MassEstimate", literals.MassEstimate)
Guide = _choices("Guide", literals.Guide)
PlatformKind = _choices("PlatformKind", literals.Platform)

_P = Priors()  # the defaults, quoted in the help
PriorOption = Annotated[
    Optional[list[str]],
    typer.Option(
        "--prior",
        metavar="FAMILY=VALUE",
        help=f"Set one prior (repeatable; the others keep their defaults). FAMILY: beta_0 (beta_0 ~ N(0, "
        f"{_P.beta_0:g}); hierarchical: mu_0), beta (beta_off, beta_def ~ N+(0, {_P.beta:g})), sigma (sigma ~ "
        f"C+(0, {_P.sigma:g})); hierarchical model: mu_loc and mu_sd (mu_off, mu_def ~ N({_P.mu_loc:g}, "
        f"{_P.mu_sd:g})), tau (tau_0, tau_off, tau_def ~ N+(0, {_P.tau:g})). E.g. --prior beta=1 --prior tau=0.5.",
    ),
]


LabelsOption = Annotated[
    Optional[Path],
    typer.Option(
        help='JSON names for the numbers: {"archetypes": [8 names], "superclusters": [6 names]} (index = '
        "number); shown beside the numbers in tables and plots. Default: the numbers alone."
    ),
]


def _labels(path: Optional[Path]) -> Labels:
    try:
        return Labels.from_json(path) if path is not None else Labels()
    except LineupError as exc:
        _fail(str(exc))


def _fail(message: str, code: int = EXIT_BAD_INPUT) -> None:
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001
    err.print(f"[yellow]warning:[/] {escape(str(message))}", highlight=False, soft_wrap=True)


def _known_errors() -> tuple[type[BaseException], ...]:
    """What the user can fix (exit 2, one line); anything else is a bug and keeps its traceback."""
    return (LineupError,)


def _given(**options: object) -> dict[str, object]:
    """The options typed on the command line (not None); the others keep the model's defaults."""
    return {k: v for k, v in options.items() if v is not None}


def _version(value: bool) -> None:
    if value:
        out.print(f"lineup-numpyro {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    warnings.showwarning = _show_warning


# train's options that a resumed run keeps as it started (option -> RunConfig path, from
# train.FIXED_ON_RESUME): given again with --resume they must match, or the resume is refused
RENAMED = {"data.path": "data", "data.seasons": "season", "data.holdout_fraction": "holdout"}
RESUME_FIXED = {RENAMED.get(path, path.rpartition(".")[2]): path for path in FIXED_ON_RESUME}


def _given_again(ctx: typer.Context) -> dict[str, object]:
    """The RESUME_FIXED options typed on the command line, as RunConfig paths and values."""
    from lineup_numpyro.data.possessions import parse_seasons

    given = {}
    for name, path in RESUME_FIXED.items():
        source = ctx.get_parameter_source(name)  # click's ParameterSource (typer vendors click)
        if getattr(source, "name", None) != "COMMANDLINE":
            continue
        value = ctx.params[name]
        value = value.value if isinstance(value, Enum) else value
        value = Priors.parse(value).to_dict() if name == "priors" else value
        value = parse_where(value) if name == "where" else value
        given[path] = parse_seasons(value) if name == "season" else str(value) if name == "data" else value
    return given


def _interrupted(run_dir: Path) -> None:
    """Ctrl-C: say what was kept and how to go on (exit 130, the shell's code for SIGINT)."""
    from lineup_numpyro.run.rundir import RunDir

    run = RunDir(run_dir)
    if not (run / RunDir.RUN_CONFIG).exists():
        _fail("interrupted before sampling started; nothing was saved", code=130)
    progress = _checkpoint_progress(run.path, run.record()) or "saved: nothing yet"
    _fail(
        f"interrupted; {progress} in {run / RunDir.CHECKPOINT}; resume with: lineup-numpyro train --resume {run_dir}",
        code=130,
    )


@app.command()
def train(
    ctx: typer.Context,
    out_dir: Annotated[
        Optional[Path], typer.Option("--out", help="Run directory to write (posterior.nc, coefficients.csv, ...).")
    ] = None,
    resume: Annotated[
        Optional[Path],
        typer.Option(
            help="Finish the stopped run in this directory, with the settings it was "
            "started with (options that would change them are refused)."
        ),
    ] = None,
    model: Annotated[Model, typer.Option(help="Which model to fit.")] = Model.matchup,
    data: Annotated[
        Optional[Path], typer.Option(help="Possessions (CSV or Parquet). Default: the built-in simulated season.")
    ] = None,
    season: Annotated[
        Optional[str], typer.Option(help="Keep only these seasons, comma-separated (e.g. 2020-21,2021-22).")
    ] = None,
    likelihood: Annotated[
        LikelihoodKind, typer.Option(help="suffstats (exact, fast) or rows (row-by-row, as in Stan).")
    ] = LikelihoodKind.suffstats,
    holdout: Annotated[
        float,
        typer.Option(
            min=0.0,
            max=0.99,
            help="Hold out this share of the rows (seeded random split) for `validate`; 0: train on all.",
        ),
    ] = 0.0,
    split_seed: Annotated[int, typer.Option(help="Seed of the random holdout split.")] = 0,
    chains: Annotated[int, typer.Option(min=1, help="Number of chains.")] = 4,
    warmup: Annotated[int, typer.Option(min=0, help="Warm-up iterations per chain.")] = 1000,
    draws: Annotated[int, typer.Option(min=1, help="Kept draws per chain.")] = 1000,
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives the same draws.")] = 0,
    target_accept: Annotated[
        Optional[float],
        typer.Option(min=0.0, max=1.0, help="NUTS target acceptance rate (default: 0.9; 0.97 for hierarchical)."),
    ] = None,
    parameterization: Annotated[
        Parameterization,
        typer.Option(
            help="hierarchical model only: whitened (default) or noncentred (the plain form, to compare); "
            "the same posterior either way."
        ),
    ] = Parameterization.whitened,
    max_tree_depth: Annotated[int, typer.Option(min=1, help="NUTS maximum tree depth.")] = 10,
    warmup_max_tree_depth: Annotated[
        Optional[int],
        typer.Option(
            min=1,
            help="NUTS maximum tree depth in the first quarter of the warm-up, at most --max-tree-depth "
            "(default: 8; 10, no cap, for hierarchical): with the first mass matrices, trees ran to depth 10 "
            "and took most of the warm-up's time.",
        ),
    ] = None,
    dense_mass: Annotated[bool, typer.Option(help="Adapt a dense mass matrix instead of a diagonal one.")] = False,
    chain_method: Annotated[
        ChainMethod, typer.Option(help="parallel: one chain per device (CPU core); vectorized; sequential.")
    ] = ChainMethod.parallel,
    platform: Annotated[PlatformKind, typer.Option(help="cpu, or gpu (CUDA) when one is there.")] = PlatformKind.cpu,
    progress: Annotated[
        Optional[bool], typer.Option(help="Show a progress bar (default: when writing to a terminal).")
    ] = None,
    checkpoint_every: Annotated[
        int,
        typer.Option(
            min=1,
            help="Save the draws every this many per chain (what --resume continues from; "
            "the warm-up is always saved).",
        ),
    ] = 250,
    method: Annotated[
        Method,
        typer.Option(
            help="nuts (the posterior), or a fast approximation: map (the mode), laplace (a Gaussian at the "
            "mode), advi (variational). Approximations draw chains x draws times."
        ),
    ] = Method.nuts,
    init: Annotated[
        Init,
        typer.Option(
            help="Where NUTS chains start: default (random), map (the mode, jittered per chain), laplace "
            "(from the mode, with the Laplace approximation's variances as the first mass matrix), or plugin "
            "(matchup model: from each matchup's own fit to its statistics, its variances as the first mass "
            "matrix; no mode search)."
        ),
    ] = Init.default,
    first_mass: Annotated[
        FirstMass,
        typer.Option(
            help="NUTS's first inverse mass matrix where the start gives none: identity, or noise (1, but "
            "log sigma at 1 / (2 N), its posterior variance; halves the hierarchical model's warm-up)."
        ),
    ] = FirstMass.identity,
    mass_estimate: Annotated[
        Optional[MassEstimate],
        typer.Option(
            help="What NUTS's warm-up estimates its diagonal mass matrix from: variance (of the draws, Stan's; "
            "the default) or gradient (sqrt of the draws' over their gradients' variance, nutpie's; "
            "benchmarks/experiments/mass_estimate)."
        ),
    ] = None,
    guide: Annotated[Guide, typer.Option(help="advi's Gaussian: meanfield or lowrank.")] = Guide.meanfield,
    log_likelihood: Annotated[
        Optional[bool],
        typer.Option(
            help="Write observed_data, log_likelihood and posterior_predictive into posterior.nc (for az.loo, "
            "az.compare, az.plot_ppc). Default: when they take at most 512 MB (12 bytes per possession and draw)."
        ),
    ] = None,
    priors: PriorOption = None,
    overwrite: Annotated[bool, typer.Option(help="Replace the outputs of an earlier run in --out.")] = False,
    by: Annotated[
        Optional[str],
        typer.Option(
            help="Fit one model per value of this column (season, or any column of --data other than the "
            "model's) in one batched run: a run directory per value in --out, and --out/index.csv.",
        ),
    ] = None,
    where: Annotated[
        Optional[str],
        typer.Option(
            metavar="COLUMN=VALUE",
            help="Keep only the possessions whose COLUMN of --data holds VALUE (e.g. team=BOS): one group of --by.",
        ),
    ] = None,
) -> None:
    """Fit a model and write its run directory (or finish a stopped one: --resume)."""
    from lineup_numpyro.data.possessions import parse_seasons
    from lineup_numpyro.run.train import resume as resume_training
    from lineup_numpyro.run.train import train as run_training

    if (out_dir is None) == (resume is None):
        _fail("give --out DIR for a new run, or --resume DIR to finish a stopped one (not both)")
    if resume is not None:
        try:
            report = resume_training(resume, _given_again(ctx))
        except _known_errors() as exc:
            _fail(str(exc))
        except KeyboardInterrupt:
            _interrupted(resume)
        _print_summary(resume)
        _warn_if_unconverged(report)
        return
    try:
        config = RunConfig(
            model=model.value,
            likelihood=likelihood.value,
            data=DataConfig(
                path=str(data) if data else None,
                seasons=parse_seasons(season),
                holdout_fraction=holdout,
                split_seed=split_seed,
                where=parse_where(where),
            ),
            sampler=model_sampler(
                model.value,
                **_given(
                    target_accept=target_accept,
                    warmup_max_tree_depth=warmup_max_tree_depth,
                    mass_estimate=mass_estimate and mass_estimate.value,
                ),
                chains=chains,
                warmup=warmup,
                draws=draws,
                seed=seed,
                max_tree_depth=max_tree_depth,
                dense_mass=dense_mass,
                chain_method=chain_method.value,
                platform=platform.value,
                progress_bar=sys.stderr.isatty() if progress is None else progress,
                checkpoint_every=checkpoint_every,
                init=init.value,
                first_mass=first_mass.value,
            ),
            method=method.value,
            approx=ApproxConfig(draws=chains * draws, seed=seed, guide=guide.value),
            parameterization=parameterization.value,
            log_likelihood=log_likelihood,
            priors=Priors.parse(priors),
        )
        for family in config.priors.unused(config.model):
            err.print(
                f"[yellow]warning:[/] --prior {family}: the {config.model} model has no such prior; it has no effect"
            )
        if by is not None:
            from lineup_numpyro.run.by_group import train_by

            index = train_by(config, out_dir, by, overwrite=overwrite)
            table = Table(title=f"{config.model} model by {by}: {out_dir}", box=None, pad_edge=False)
            _add_rows(table, index, {c: c for c in index.columns})
            out.print(table)
            out.print(f"wrote {len(index)} run directories and {out_dir}/index.csv", highlight=False)
            return
        report = run_training(config, out_dir, overwrite=overwrite)
    except _known_errors() as exc:
        _fail(str(exc))
    except KeyboardInterrupt:
        _interrupted(out_dir)
    _print_summary(out_dir)
    _warn_if_unconverged(report)


def _warn_if_unconverged(report: dict) -> None:
    if report["converged"]:
        return
    problems = report.get("problems")
    if not problems:
        err.print("[yellow]warning:[/] the run did not meet the convergence thresholds; see diagnostics.json")
        return
    err.print("[yellow]warning:[/] not converged; act on the results only after fixing:")
    for problem in problems:
        err.print(f"  - {escape(problem)}", highlight=False, soft_wrap=True)


@app.command()
def simulate(
    out_file: Annotated[Path, typer.Option("--out", help="File to write (.csv or .parquet); truth goes beside it.")],
    possessions: Annotated[int, typer.Option(min=1, help="Number of possessions.")] = 96_837,
    model: Annotated[Model, typer.Option(help="Model the outcomes are drawn from.")] = Model.matchup,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 2023,
    empty_matchups: Annotated[int, typer.Option(min=0, max=35, help="Matchups left without possessions.")] = 0,
) -> None:
    """Write a semi-synthetic season drawn from known parameters (saved as FILE.truth.json)."""
    from lineup_numpyro.models.simulate import simulate_season, truth_path, write_season

    try:
        data, truth = simulate_season(possessions, model.value, seed, empty_matchups)
        write_season(data, truth, out_file)
    except _known_errors() as exc:
        _fail(str(exc))
    out.print(
        f"wrote {len(data):,} possessions to {out_file} and the true parameters to {truth_path(out_file)}",
        soft_wrap=True,
        highlight=False,
    )


@app.command()
def summary(
    run_dir: Annotated[Path, typer.Argument(help="A run directory written by `train`.")],
    top: Annotated[int, typer.Option(min=1, help="How many of the largest effects to list.")] = 10,
    labels: LabelsOption = None,
) -> None:
    """Show a run's diagnostics and its largest archetype effects."""
    try:
        complete = _print_summary(run_dir, top, _labels(labels))
    except _known_errors() as exc:
        _fail(str(exc))
    if not complete:
        raise typer.Exit(1)


@app.command()
def status(
    run_dir: Annotated[Path, typer.Argument(help="A run directory (it need not exist).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object (for scripts).")] = False,
    get: Annotated[Optional[str], typer.Option(help="Print only this field of the JSON object.")] = None,
) -> None:
    """Say whether a run is none, running, stopped, interrupted, failed or complete, and what it saved."""
    from lineup_numpyro.run.rundir import RunDir

    run = RunDir(run_dir)
    info: dict = {
        "run_dir": str(run_dir),
        "state": "none",
        "resumable": False,
        "progress": None,
        "error": None,
        "converged": None,
    }
    if run.path.is_dir() and (run / RunDir.STATUS).exists():
        try:
            state = run.status()
            record = run.record() if (run / RunDir.RUN_CONFIG).exists() else {}
        except _known_errors() as exc:
            _fail(str(exc))
        info.update(
            state=state["state"],
            error=state.get("error"),
            converged=state.get("converged"),
            progress=_checkpoint_progress(run.path, record),
            resumable=bool(record) and state["state"] != "complete",
        )
    elif run.path.is_dir() and (run / RunDir.RUN_CONFIG).exists():
        info["state"] = "started"  # stopped between writing its record and its status
    if get is not None:
        if get not in info:
            _fail(f"--get takes one of {', '.join(info)}, not {get!r}")
        value = info[get]
        typer.echo("" if value is None else str(value).lower() if isinstance(value, bool) else str(value))
    elif as_json:
        typer.echo(json.dumps(info))
    else:
        out.print(
            escape(
                f"{run_dir}: {info['state']}"
                + "".join(f"; {k} {info[k]}" for k in ("progress", "error", "converged") if info[k] is not None)
            ),
            highlight=False,
            soft_wrap=True,
        )


class StanForm(str, Enum):
    reference = "reference"
    fast = "fast"


@app.command()
def parity(
    model: Annotated[Model, typer.Option(help="Which model to check against its Stan file.")],
    data: Annotated[Path, typer.Option(help="Possessions (CSV or Parquet) to check on.")],
    out_dir: Annotated[Optional[Path], typer.Option("--out", help="Write parity.json and the tables here.")] = None,
    season: Annotated[Optional[str], typer.Option(help="Keep only these seasons, comma-separated.")] = None,
    stan_form: Annotated[
        StanForm, typer.Option(help="reference: the Stan file users trust; fast: its sufficient-statistics twin.")
    ] = StanForm.reference,
    points: Annotated[int, typer.Option(min=1, help="Random points for the density check.")] = 20,
    posterior: Annotated[bool, typer.Option(help="Also sample both and compare the posteriors.")] = True,
    chains: Annotated[int, typer.Option(min=1, help="Chains for each sampler.")] = 4,
    warmup: Annotated[int, typer.Option(min=0, help="Warm-up iterations per chain.")] = 1000,
    draws: Annotated[int, typer.Option(min=1, help="Kept draws per chain.")] = 1000,
    seed: Annotated[int, typer.Option(help="Random seed (points, NumPyro and Stan).")] = 0,
    priors: PriorOption = None,
) -> None:
    """Check that NumPyro and the Stan file define the same posterior (exit 1 if not)."""
    from lineup_numpyro.data.possessions import load_possessions, parse_seasons
    from lineup_numpyro.inference.runtime import configure_jax
    from lineup_numpyro.stan.parity import StanUnavailable, run_parity, write_parity

    configure_jax("cpu", chains)
    try:
        rows = load_possessions(data, parse_seasons(season))
        report = run_parity(
            model.value,
            rows,
            stan_form.value,
            model_sampler(model.value, chains=chains, warmup=warmup, draws=draws, seed=seed),
            points,
            posterior,
            Priors.parse(priors),
        )
    except StanUnavailable as exc:
        _fail(str(exc), code=3)
    except _known_errors() as exc:
        _fail(str(exc))
    if out_dir is not None:
        write_parity(report, out_dir)
    _print_parity(report)
    if not report.passed:
        raise typer.Exit(1)


def _holdout_config(data: Optional[Path], season: Optional[str]):  # noqa: ANN202
    """The DataConfig of --data/--season, or None (then the runs' own random split is used)."""
    from lineup_numpyro.data.possessions import parse_seasons

    if data is None:
        if season:
            _fail("--season selects seasons of --data; give --data too")
        return None
    return DataConfig(path=str(data), seasons=parse_seasons(season))


@app.command()
def validate(
    run_dir: Annotated[Path, typer.Argument(help="A run directory written by `train`.")],
    data: Annotated[
        Optional[Path], typer.Option(help="Held-out possessions. Default: the rows the run's --holdout split kept out.")
    ] = None,
    season: Annotated[Optional[str], typer.Option(help="Score only these seasons of --data, comma-separated.")] = None,
    loo: Annotated[bool, typer.Option(help="Also compute PSIS-LOO on the training possessions.")] = True,
) -> None:
    """Score a run on possessions it did not see: MSE, RMSE, log predictive density, coverage."""
    from lineup_numpyro.analysis.validation import validate_run

    holdout = _holdout_config(data, season)
    try:
        report, written = validate_run(run_dir, holdout, loo=loo)
    except _known_errors() as exc:
        _fail(str(exc))
    h = report["holdout"]
    table = Table(title=f"{report['model']}: {h['n']:,} held-out possessions ({escape(h['source'])})")
    for col in (
        "MSE",
        "RMSE",
        "mean log pred. density",
        "50% interval coverage",
        "90% interval coverage",
        "outcome variance",
    ):
        table.add_column(col, justify="right")
    table.add_row(
        f"{h['mse']:.4f}",
        f"{h['rmse']:.4f}",
        f"{h['mlpd']:.4f}",
        f"{h['coverage_50']:.3f}",
        f"{h['coverage_90']:.3f}",
        f"{h['outcome_var']:.4f}",
    )
    out.print(table)
    if loo:
        lo = report["loo"]
        out.print(
            f"PSIS-LOO on {lo['n']:,} training possessions: elpd_loo {lo['elpd_loo']:,.1f} "
            f"(se {lo['se']:.1f}), p_loo {lo['p_loo']:.1f}, {lo['n_high_k']} with Pareto k > "
            f"{lo['k_threshold']:.2f}"
        )
    out.print(f"wrote {written}", soft_wrap=True, highlight=False)


@app.command()
def sbc(
    out_dir: Annotated[
        Path,
        typer.Option(
            "--out",
            help="Write sbc.json, ranks.csv and ecdf.png here; progress.jsonl keeps each finished fit, and the "
            "same command goes on from it after a stop.",
        ),
    ],
    model: Annotated[Model, typer.Option(help="Which model to calibrate.")] = Model.matchup,
    fits: Annotated[int, typer.Option(min=2, help="Number of simulated data sets (each one NUTS fit).")] = 100,
    data: Annotated[
        Optional[Path],
        typer.Option(
            help="Possessions whose design (X'X per matchup) the seasons are simulated on. Default: built-in."
        ),
    ] = None,
    season: Annotated[Optional[str], typer.Option(help="Use only these seasons of --data, comma-separated.")] = None,
    chains: Annotated[int, typer.Option(min=1, help="Chains per fit.")] = 4,
    warmup: Annotated[int, typer.Option(min=0, help="Warm-up iterations per chain.")] = 500,
    draws: Annotated[int, typer.Option(min=1, help="Kept draws per chain.")] = 500,
    seed: Annotated[int, typer.Option(help="Seed of the prior draws, simulations and fits.")] = 0,
    target_accept: Annotated[
        Optional[float], typer.Option(min=0.0, max=1.0, help="NUTS target acceptance (default: the model's).")
    ] = None,
    thin_to: Annotated[int, typer.Option(min=9, help="Ranks are taken among this many thinned draws.")] = 99,
    level: Annotated[float, typer.Option(min=0.0, max=0.5, help="Family-wise level of the calibration check.")] = 0.05,
    batch: Annotated[
        Optional[int],
        typer.Option(
            min=1,
            help="Fits per compiled call (vectorised lanes). Default: 1 with nuts (every lane steps until the "
            "longest tree ends), 2 per device with chees (fits wait only for longer trajectories).",
        ),
    ] = None,
    priors: PriorOption = None,
    ray: Annotated[
        Optional[str],
        typer.Option(
            help="Run the batches as tasks on a Ray cluster: its address (ray://host:10001, auto), or local "
            "to start one on this machine. Needs the [ray] extra."
        ),
    ] = None,
    fit_prior: Annotated[
        Optional[list[str]],
        typer.Option(
            "--fit-prior",
            metavar="FAMILY=VALUE",
            help="Fit with this prior instead of the one that simulated (a negative control: SBC must then fail).",
        ),
    ] = None,
    platform: Annotated[
        PlatformKind, typer.Option(help="cpu, or gpu (CUDA; slower for these models, docs/performance.md).")
    ] = PlatformKind.cpu,
    init: Annotated[
        Init, typer.Option(help="Where each fit's chains start: default (random) or plugin (matchup model only).")
    ] = Init.default,
    first_mass: Annotated[
        FirstMass, typer.Option(help="NUTS's first inverse mass matrix: identity, or noise (as train's).")
    ] = FirstMass.identity,
    mass_estimate: Annotated[
        Optional[MassEstimate],
        typer.Option(help="NUTS's mass-matrix estimate: variance (the default) or gradient (as train's)."),
    ] = None,
    kernel: Annotated[
        Kernel,
        typer.Option(
            help="nuts; or chees: jittered HMC whose chains of a fit take the same number of steps, so that "
            "--batch many fits run as one program without waiting for each chain's longest tree "
            "(target acceptance 0.8 unless given). SBC has passed chees on the matchup model only (README)."
        ),
    ] = Kernel.nuts,
) -> None:
    """Simulation-based calibration: fit seasons simulated from the prior, rank the truth among the
    draws, and test the ranks' uniformity (exit 1 when calibration fails)."""
    from lineup_numpyro.data.possessions import parse_seasons
    from lineup_numpyro.inference.runtime import configure_jax

    try:
        configure_jax(platform.value, chains)
    except _known_errors() as exc:
        _fail(str(exc))
    from lineup_numpyro.analysis.sbc import SBCConfig, default_batch, design_stats, run_sbc, write_sbc

    try:
        simulate = Priors.parse(priors)
        fitted = Priors.parse(fit_prior) if fit_prior else None
        config = SBCConfig(
            model=model.value,
            fits=fits,
            sampler=model_sampler(
                model.value,
                **_given(target_accept=target_accept, mass_estimate=mass_estimate and mass_estimate.value),
                chains=chains,
                warmup=warmup,
                draws=draws,
                seed=seed,
                platform=platform.value,
                init=init.value,
                first_mass=first_mass.value,
                kernel=kernel.value,
            ),
            thin_to=thin_to,
            level=level,
            seed=seed,
            batch=batch or default_batch(kernel.value),
            priors=simulate,
            fit_priors=fitted,
        )
        design = design_stats(data, parse_seasons(season))
    except _known_errors() as exc:
        _fail(str(exc))
    try:
        result = run_sbc(config, design, ray_address=ray, out=out_dir)
    except _known_errors() as exc:
        _fail(str(exc))
    write_sbc(result, out_dir)
    verdict = "[green]passed[/]" if result.passed else f"[red]FAILED[/] ({len(result.failed)} quantities)"
    out.print(
        f"SBC of the {model.value} model, {fits} fits ({result.fits_run} run now, in {result.seconds:.0f} s: "
        f"{result.fits_per_minute:.1f} fits/min"
        + (f"; {fits - result.fits_run} saved earlier in {out_dir}/progress.jsonl" if result.fits_run < fits else "")
        + f"): {verdict} at family-wise level {level}; "
        f"{int((result.divergences > 0).sum())} fits with divergent transitions",
        highlight=False,
    )
    if result.failed:
        out.print("failed: " + ", ".join(result.failed[:20]) + (" ..." if len(result.failed) > 20 else ""))
    out.print(f"wrote {out_dir}/sbc.json, ranks.csv and ecdf.png", highlight=False)
    if not result.passed:
        raise typer.Exit(1)


@app.command()
def compare(
    run_dirs: Annotated[list[Path], typer.Argument(help="Two or more run directories fitted to the same data.")],
    data: Annotated[
        Optional[Path],
        typer.Option(
            help="Held-out possessions to score every run on. Default: the runs' --holdout split, when they had one."
        ),
    ] = None,
    season: Annotated[Optional[str], typer.Option(help="Score only these seasons of --data, comma-separated.")] = None,
    out_dir: Annotated[
        Optional[Path], typer.Option("--out", help="Write comparison.csv and comparison.json here.")
    ] = None,
) -> None:
    """Rank models by PSIS-LOO (and holdout scores) and say which to use."""
    from lineup_numpyro.analysis.comparison import compare_runs, write_comparison

    holdout = _holdout_config(data, season)
    try:
        result = compare_runs(run_dirs, holdout)
    except _known_errors() as exc:
        _fail(str(exc))
    if out_dir is not None:
        write_comparison(result, out_dir)
    t = result.table
    # one short label per run: the model where the models differ, else the directory's name
    t = t.assign(run=t["model"] if t["model"].is_unique else [Path(r).name for r in t["run"]])
    loo = Table(title=f"PSIS-LOO on {escape(result.training_data)}", box=None, pad_edge=False)
    columns = {
        "run": "run",
        "elpd_loo": "elpd_loo",
        "elpd_diff": "elpd_diff",
        "se_diff": "se_diff",
        "p_loo": "p_loo",
        "n_high_k": "high k",
        "divergences": "div",
        "verdict": "verdict",
    }
    _add_rows(loo, t, columns)
    out.print(loo)
    if "holdout_mse" in t:
        held = Table(title=f"held-out possessions: {escape(result.holdout_data)}", box=None, pad_edge=False)
        _add_rows(
            held,
            t,
            {
                "run": "run",
                "holdout_n": "n",
                "holdout_mse": "MSE",
                "holdout_rmse": "RMSE",
                "holdout_mlpd": "mean lpd",
                "coverage_50": "50% cover",
                "coverage_90": "90% cover",
            },
        )
        out.print(held)
    out.print(f"[bold]verdict:[/] {escape(result.verdict)}")
    if out_dir is not None:
        out.print(
            f"wrote {out_dir}/comparison.csv and comparison.json (full run paths)", soft_wrap=True, highlight=False
        )


def _add_rows(table: Table, frame, columns: dict[str, str]) -> None:  # noqa: ANN001
    """Columns of `frame` under their display names; elpd-scale numbers to 0.1, scores to 4 places."""
    one_decimal = {"elpd_loo", "se", "elpd_diff", "se_diff", "p_loo"}
    cells = [
        [
            escape(str(row[c]))
            if not isinstance(row[c], float)
            else f"{row[c]:,.1f}"
            if c in one_decimal
            else f"{row[c]:.4f}"
            for c in columns
        ]
        for _, row in frame.iterrows()
    ]
    for j, (col, title) in enumerate(columns.items()):
        table.add_column(
            title,
            justify="left" if col in ("run", "verdict") else "right",
            no_wrap=True,
            min_width=max(len(title), *(len(r[j]) for r in cells)),
        )
    for r in cells:
        table.add_row(*r)


@app.command()
def export(
    run_dir: Annotated[Path, typer.Argument(help="A matchup or hierarchical run directory.")],
    pooled: Annotated[Path, typer.Option(help="A simplified (pooled) run: the fallback for untrusted matchups.")],
    out_file: Annotated[
        Optional[Path], typer.Option("--out", help="CSV to write. Default: RUN_DIR/production_coefficients.csv.")
    ] = None,
    min_possessions: Annotated[
        int, typer.Option(min=0, help="Matchups with fewer possessions take the pooled coefficients.")
    ] = 200,
    force: Annotated[
        bool,
        typer.Option(
            help="Keep each matchup's own coefficients even where its convergence checks failed, and accept an "
            "unconverged pooled run (for a pipeline test); the table's reason column says so on every such row."
        ),
    ] = False,
) -> None:
    """Write production coefficients: each matchup's own where it converged, the pooled ones otherwise."""
    from lineup_numpyro.analysis.export import production_coefficients, write_production
    from lineup_numpyro.run.rundir import RunDir

    target = out_file or run_dir / RunDir.PRODUCTION
    try:
        table = production_coefficients(run_dir, pooled, min_possessions, force=force)
    except _known_errors() as exc:
        _fail(str(exc))
    write_production(table, target)
    per_matchup = table.dropna(subset=["matchup_id"]).drop_duplicates("matchup_id")
    counts = per_matchup["source"].value_counts()
    out.print(", ".join(f"{n} matchups from the {escape(src)} run" for src, n in counts.items()))
    for _, row in per_matchup[per_matchup["source"] == "simplified"].iterrows():
        out.print(f"  matchup {row['label']}: pooled, {escape(row['reason'])}")
    forced = per_matchup[per_matchup["reason"].str.contains("forced:", regex=False)]
    if len(forced):
        err.print(
            f"[yellow]warning:[/] --force: {len(forced)} matchups use coefficients that failed a check "
            "(see the reason column)"
        )
    out.print(f"wrote {target}", soft_wrap=True, highlight=False)


@app.command()
def report(
    run_dir: Annotated[Path, typer.Argument(help="A run directory written by `train`.")],
    comparison: Annotated[
        Optional[Path], typer.Option(help="A `compare --out` directory (or its comparison.json) to include.")
    ] = None,
    labels: LabelsOption = None,
) -> None:
    """Write RUN_DIR/report/report.html: diagnostics, rank, forest and predictive-check plots."""
    from lineup_numpyro.analysis.report import write_report

    try:
        path = write_report(run_dir, comparison, _labels(labels))
    except _known_errors() as exc:
        _fail(str(exc))
    out.print(f"wrote {path}", soft_wrap=True, highlight=False)


@app.command()
def predict(
    run_dir: Annotated[Path, typer.Argument(help="A run directory written by `train`.")],
    out_file: Annotated[Path, typer.Option("--out", help="CSV of predictions to write.")],
    data: Annotated[
        Optional[Path],
        typer.Option(help="Possessions to predict: the model's input format; the outcome column is optional."),
    ] = None,
    lineups: Annotated[
        Optional[Path],
        typer.Option(
            help="Or possessions as lineups (prepare's input: off_1..off_5, def_1..def_5, points optional), "
            "with the player tables (--tables or each file)."
        ),
    ] = None,
    tables: TablesOption = None,
    archetypes: ArchetypesOption = None,
    darko: DarkoOption = None,
    assignments: AssignmentsOption = None,
    season: Annotated[Optional[str], typer.Option(help="Keep only these seasons, comma-separated.")] = None,
    draws: Annotated[
        Optional[Path],
        typer.Option(help="Also write every predictive draw to this netCDF file (a posterior_predictive group)."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the predictive draws.")] = 0,
) -> None:
    """Predict possessions with a run: E[y]'s posterior mean and 90% interval, y's 90% predictive
    interval, and flags where a prediction rests on the prior (u, w) or leaves the scale (!)."""
    from lineup_numpyro.data.possessions import parse_seasons
    from lineup_numpyro.lineups.predict import predict_file, predict_lineups

    if (data is None) == (lineups is None):
        _fail("give --data FILE (the model's input format) or --lineups FILE (players), not both")
    try:
        if data is not None:
            report = predict_file(run_dir, data, out_file, parse_seasons(season), draws, seed)
        else:
            chosen = _table_files(tables, archetypes, darko, assignments, needed_for="--lineups")
            report = predict_lineups(
                run_dir,
                lineups,
                out_file,
                chosen["archetypes"],
                chosen["darko"],
                chosen["assignments"],
                draws=draws,
                seed=seed,
            )
    except _known_errors() as exc:
        _fail(str(exc))
    out.print(
        f"wrote {report.csv} ({report.n:,} possessions)" + (f" and {report.draws}" if report.draws else ""),
        soft_wrap=True,
        highlight=False,
    )
    for count, what in (
        (report.unseen, "in a matchup without training possessions (u): their prediction is the prior's"),
        (report.uninformed, "with an archetype whose coefficient the data do not inform (w; see 'uninformed')"),
        (report.implausible, "with a mean outside what a possession can score (!)"),
    ):
        if count:
            err.print(
                f"[yellow]warning:[/] {count:,} of {report.n:,} possessions {what}", highlight=False, soft_wrap=True
            )


lineup_app = typer.Typer(
    help="Value lineups and pick players with a fitted run (paper eq. 2.7-2.8).", no_args_is_help=True
)


# `prepare`: possessions with lineups -> the model's input file (docs/input.md), with the lineup
# commands' own features. Its table options (TablesOption, ...) are the lineup commands', below:
# typer reads the annotations only when the app runs.


@app.command()
def prepare(
    lineups_file: Annotated[
        Path,
        typer.Argument(
            help="CSV of possessions with lineups: off_1..off_5, def_1..def_5 (NBA player ids), points "
            "(scored by the offense) and optionally season; any column order, other columns ignored."
        ),
    ],
    out_file: Annotated[Path, typer.Option("--out", help="The model's input file to write (.csv), for train --data.")],
    tables: TablesOption = None,
    archetypes: ArchetypesOption = None,
    darko: DarkoOption = None,
    assignments: AssignmentsOption = None,
    strict: Annotated[
        bool,
        typer.Option(
            help="Stop (exit 2) at a player missing from the archetype or DARKO table, instead of dropping "
            "the possession and counting it."
        ),
    ] = False,
    chunksize: Annotated[int, typer.Option(min=1, help="Possessions read at a time.")] = 100_000,
) -> None:
    """Write the model's input file from possessions with lineups (z and matchups as `lineup` forms them)."""
    from lineup_numpyro.lineups.prepare import prepare_possessions

    try:
        chosen = _table_files(tables, archetypes, darko, assignments)
        report = prepare_possessions(
            lineups_file,
            out_file,
            chosen["archetypes"],
            chosen["darko"],
            chosen["assignments"],
            chunksize=chunksize,
            strict=strict,
        )
    except _known_errors() as exc:
        _fail(str(exc))
    _print_prepared(report)


def _print_prepared(report: PrepareReport, top: int = 10) -> None:
    t = Table(title=f"prepare: {escape(report.source)}", box=None)
    t.add_column("possessions")
    t.add_column("rows", justify="right")
    t.add_row("read", f"{report.rows_read:,}")
    t.add_row("written", f"{report.rows_written:,}")
    for why, n in report.dropped.items():
        t.add_row(f"dropped: {escape(why)}", f"{n:,}")
    t.add_row("written with a lineup not in the assignment table (nearest listed one used)", f"{report.nearest_rows:,}")
    out.print(t)
    present = [m for m, n in enumerate(report.matchups) if n]
    busiest = max(range(len(report.matchups)), key=report.matchups.__getitem__)
    out.print(
        f"{len(present)} of {len(report.matchups)} matchups have possessions; the most, "
        f"{report.matchups[busiest]:,}, in matchup {busiest} ({matchup_label(busiest)})"
    )
    for p in report.missing_players[:top]:
        tables = f"{p.missing_from} table{'s' if ' and ' in p.missing_from else ''}"
        err.print(
            f"[yellow]warning:[/] player {p.player_id}{escape(f' ({p.name})' if p.name else '')} is not in the "
            f"{tables}: {p.possessions:,} possession(s) dropped",
            highlight=False,
            soft_wrap=True,
        )
    if len(report.missing_players) > top:
        err.print(f"[yellow]warning:[/] and {len(report.missing_players) - top} more players missing from a table")
    for u in report.unlisted[:top]:
        err.print(
            f"[yellow]note:[/] {escape(u.note)}: supercluster {u.supercluster}, in {u.offense:,} possession(s) "
            f"on offense and {u.defense:,} on defense",
            highlight=False,
            soft_wrap=True,
        )
    if len(report.unlisted) > top:
        err.print(f"[yellow]note:[/] and {len(report.unlisted) - top} more archetype-lineups not in the table")
    out.print(f"wrote {escape(report.out_path)}", soft_wrap=True, highlight=False)


app.add_typer(lineup_app, name="lineup")

TablesOption = Annotated[
    Optional[Path],
    typer.Option(
        help="A folder holding the player and lineup tables (player_archetypes*.csv, darko*.csv, "
        "supercluster_assignments*.json, optional salar*.csv), e.g. ../shared/data."
    ),
]
ArchetypesOption = Annotated[Optional[Path], typer.Option(help="CSV: player_id, player_name, archetype (0-7).")]
DarkoOption = Annotated[Optional[Path], typer.Option(help="CSV of DARKO ratings: nba_id, O-DPM, D-DPM (Team).")]
SalariesOption = Annotated[Optional[Path], typer.Option(help="CSV: player_id, salary.")]
AssignmentsOption = Annotated[
    Optional[Path],
    typer.Option(help="JSON whose lineup_assignments maps a sorted archetype-lineup to its supercluster."),
]
OpponentsOption = Annotated[
    Optional[Path],
    typer.Option(
        help="CSV of opponent lineups (player_1..player_5, names or ids). Default: each team's five "
        "players with the highest DARKO."
    ),
]


def _lineup_kinds(lineup, labels: Labels) -> str:  # noqa: ANN001
    """'archetypes 0_1_6_7_7, supercluster 1', with the labels' names when there are."""
    kinds = lineup.key
    if labels.named:
        kinds += " = " + ", ".join(labels.archetype(int(a)) for a in lineup.key.split("_"))
    return f"archetypes {kinds}, supercluster {labels.supercluster(int(lineup.supercluster))}"


def _table_files(tables, archetypes, darko, assignments, salaries=None, needed_for: str = "") -> dict:  # noqa: ANN001
    """The archetype, DARKO and assignment files (and salaries, when `salaries` is not None or
    --tables has them: optional): each given one, else the one --tables finds; exit 2 naming the
    missing required ones."""
    from lineup_numpyro.lineups.players import find_tables

    found = find_tables(tables) if tables is not None else {}
    chosen = {
        "archetypes": archetypes or found.get("archetypes"),
        "darko": darko or found.get("darko"),
        "assignments": assignments or found.get("assignments"),
    }
    missing = [k for k, v in chosen.items() if v is None]
    chosen["salaries"] = salaries or found.get("salaries")
    if missing:
        where = f" (none found in {tables})" if tables is not None else ""
        need = f"{needed_for} needs the player tables: " if needed_for else ""
        _fail(f"{need}give --{', --'.join(missing)} or --tables DIR{where}")
    return chosen


def _lineup_inputs(tables, archetypes, darko, salaries, assignments, opponents):  # noqa: ANN001, ANN202
    """Players, assignments and opponents from the options (explicit files over --tables)."""
    from lineup_numpyro.lineups.players import default_opponents, load_assignments, load_opponents, load_players

    chosen = _table_files(tables, archetypes, darko, assignments, salaries)
    players = load_players(chosen["archetypes"], chosen["darko"], chosen["salaries"])
    table = load_assignments(chosen["assignments"])
    rivals = load_opponents(opponents, players, table) if opponents else default_opponents(players, table)
    return players, table, rivals


def _interval(row) -> str:  # noqa: ANN001
    return f"[{row['5%']:+.3f}, {row['95%']:+.3f}]"


@lineup_app.command("value")
def lineup_value(
    run_dir: Annotated[Path, typer.Argument(help="A complete run directory written by `train`.")],
    lineup: Annotated[str, typer.Option(help='Five players, "Name A, Name B, ..." (names or ids).')],
    opponent: Annotated[Optional[str], typer.Option(help="Five players to value the lineup against.")] = None,
    opponents: OpponentsOption = None,
    tables: TablesOption = None,
    archetypes: ArchetypesOption = None,
    darko: DarkoOption = None,
    salaries: SalariesOption = None,
    assignments: AssignmentsOption = None,
    labels: LabelsOption = None,
) -> None:
    """Expected points both ways, v(lineup, opponent) and v(lineup) over a set of opponents."""
    from lineup_numpyro.lineups.players import parse_lineup
    from lineup_numpyro.lineups.valuation import load_fit, value_lineup

    names_ = _labels(labels)
    try:
        players, table, rivals = _lineup_inputs(tables, archetypes, darko, salaries, assignments, opponents)
        mine = parse_lineup(players, table, lineup)
        theirs = parse_lineup(players, table, opponent) if opponent else None
        result = value_lineup(load_fit(run_dir), mine, theirs, rivals)
    except _known_errors() as exc:
        _fail(str(exc))
    out.print(f"lineup: {escape(mine.label)} ({escape(_lineup_kinds(mine, names_))})", soft_wrap=True)
    if theirs is not None:
        out.print(f"opponent: {escape(theirs.label)} ({escape(_lineup_kinds(theirs, names_))})", soft_wrap=True)
    t = Table(title="points per possession: posterior mean and 90% interval", box=None)
    for col in ("quantity", "mean", "90% interval", "matchup", "flags"):
        t.add_column(col, justify="left" if col in ("quantity", "matchup", "flags") else "right")
    for _, row in result.table.iterrows():
        flags = ("! " if row["flag"] else "") + ("w " if row["uninformed"] else "") + ("u" if row["no_data"] else "")
        t.add_row(escape(row["quantity"]), f"{row['mean']:+.3f}", escape(_interval(row)), row["matchup"], flags.strip())
    out.print(t)
    out.print(
        "flags: ! = outside what a possession can score (see the note); w = rests on coefficients the "
        "data do not inform; u = a matchup without training possessions",
        style="dim",
    )
    for note in dict.fromkeys(result.notes):
        err.print(f"[yellow]note:[/] {escape(note)}", highlight=False, soft_wrap=True)


@lineup_app.command("recommend")
def lineup_recommend(
    run_dir: Annotated[Path, typer.Argument(help="A complete run directory written by `train`.")],
    core: Annotated[str, typer.Option(help='Four players, "Name A, Name B, Name C, Name D" (names or ids).')],
    candidates: Annotated[
        Optional[str],
        typer.Option(help="Only these players (comma-separated names or ids). Default: every player not in the core."),
    ] = None,
    salary_cap: Annotated[
        Optional[float], typer.Option(help="The five players' salaries must add up to at most this (needs --salaries).")
    ] = None,
    informed_only: Annotated[
        bool, typer.Option(help="Leave out lineups with an archetype whose coefficients the data barely inform.")
    ] = False,
    top: Annotated[int, typer.Option(min=1, help="How many candidates to show (and plot).")] = 10,
    csv: Annotated[Optional[Path], typer.Option(help="Write every ranked candidate to this CSV.")] = None,
    png: Annotated[
        Optional[Path], typer.Option(help="Plot the top candidates' posterior distributions of v here.")
    ] = None,
    opponents: OpponentsOption = None,
    tables: TablesOption = None,
    archetypes: ArchetypesOption = None,
    darko: DarkoOption = None,
    salaries: SalariesOption = None,
    assignments: AssignmentsOption = None,
    labels: LabelsOption = None,
) -> None:
    """Rank fifth players for a core of four by v over the opponents, with P(best of all)."""
    from lineup_numpyro.lineups.players import split_names
    from lineup_numpyro.lineups.valuation import load_fit, plot_candidates, recommend

    names_ = _labels(labels)
    try:
        players, table, rivals = _lineup_inputs(tables, archetypes, darko, salaries, assignments, opponents)
        core_ids = [players.find(q) for q in split_names(core)]
        pool = [players.find(q) for q in split_names(candidates)] if candidates else None
        rec = recommend(load_fit(run_dir), players, table, core_ids, rivals, pool, salary_cap, informed_only)
    except _known_errors() as exc:
        _fail(str(exc))
    shown = rec.table.head(top)
    has_salary = shown["salary"].notna().any()
    out.print(
        f"fifth player for {escape(', '.join(rec.core))}: v = net points per possession against "
        f"{rec.n_opponents} opponent lineups, posterior mean and 90% interval"
    )
    t = Table(box=None)
    for col in [
        "rank",
        "player",
        "arch.",
        *(["salary"] if has_salary else []),
        "v",
        "90% interval",
        "P(best)",
        "flags",
    ]:
        t.add_column(col, justify="left" if col in ("player", "flags") else "right")
    for _, row in shown.iterrows():
        flags = (
            ("! " if row["flag"] else "")
            + (f"w{row['weak_archetypes'].replace(' ', ',')} " if row["weak_archetypes"] else "")
            + ("n " if row["nearest_listed"] else "")
            + (f"u{row['no_data_matchups']}" if row["no_data_matchups"] else "")
        )
        t.add_row(
            str(row["rank"]),
            escape(row["player"]),
            escape(names_.archetype(int(row["archetype"]))),
            *([f"{row['salary']:,.0f}"] if has_salary else []),
            f"{row['mean']:+.3f}",
            escape(_interval(row)),
            f"{row['p_best']:.3f}",
            flags.strip(),
        )
    out.print(t)
    out.print(
        "flags: ! = v outside what a possession can score (implausible) or its 90% interval reaching "
        "outside; wA = the lineup has archetype A, whose coefficients the data do not inform; n = its "
        "archetype-lineup is not in the assignment table (nearest listed one used); uK = K of its "
        "matchups had no training possessions",
        style="dim",
    )
    if rec.excluded:
        out.print("left out: " + "; ".join(f"{n} ({escape(why)})" for why, n in rec.excluded.items()))
    weak = shown["weak_archetypes"].astype(bool)
    if weak.any():
        err.print(
            f"[yellow]warning:[/] {int(weak.sum())} of the top {len(shown)} lineups have players of archetypes "
            "whose coefficients the data do not inform (unseen, or a 90% interval not narrowed tenfold from the "
            "prior's): their values "
            "mostly reflect the prior, not evidence",
            highlight=False,
            soft_wrap=True,
        )
    bad = shown["flag"].astype(bool)
    if bad.any():
        err.print(
            f"[yellow]warning:[/] {int(bad.sum())} of the top {len(shown)} values are outside (or their "
            f"intervals reach outside) what a possession can score: "
            f"{escape(shown.loc[bad, 'flag'].iloc[0])}",
            highlight=False,
            soft_wrap=True,
        )
    if csv is not None:
        with atomic_path(csv) as tmp:
            rec.table.to_csv(tmp, index=False)
        out.print(f"wrote {csv}", soft_wrap=True, highlight=False)
    if png is not None:
        out.print(f"wrote {plot_candidates(rec, png, top)}", soft_wrap=True, highlight=False)


def _print_parity(report) -> None:  # noqa: ANN001
    verdict = report.verdict()
    t = Table(title=f"parity: {report.model} model, NumPyro vs models/{verdict['stan_file']}")
    for col in ("check", "measured", "allowed", "result"):
        t.add_column(col)
    ok = {True: "[green]pass[/]", False: "[red]FAIL[/]"}
    for lik, d in verdict["density"].items():
        t.add_row(
            f"log density offset spread ({lik})",
            f"{d['offset_spread_rel']:.1e}",
            f"<= {d['tolerances'][0]:.0e}",
            ok[d["offset_spread_rel"] <= d["tolerances"][0]],
        )
        t.add_row(
            f"gradient rel. error ({lik})",
            f"{d['max_gradient_rel_error']:.1e}",
            f"<= {d['tolerances'][1]:.0e}",
            ok[d["max_gradient_rel_error"] <= d["tolerances"][1]],
        )
    p = verdict.get("posterior")
    if p:
        t.add_row(
            f"max |z| of means ({p['parameters']} parameters)",
            f"{p['max_z']:.2f} ({p['max_z_parameter']})",
            f"<= {p['z_bound']:.2f} (Bonferroni)",
            ok[p["max_z"] <= p["z_bound"]],
        )
        lo, hi = p["sd_ratio_range"]
        alo, ahi = p["sd_ratio_allowed"]
        t.add_row("sd ratio NumPyro/Stan", f"{lo:.3f} .. {hi:.3f}", f"{alo} .. {ahi}", ok[alo <= lo and hi <= ahi])
        if p["sd_ratio_range_derived"]:
            dlo, dhi = p["sd_ratio_range_derived"]
            t.add_row("sd ratio, derived beta (heavy tails)", f"{dlo:.3f} .. {dhi:.3f}", "reported only", "")
        t.add_row(
            "max |mean diff| / sd_stan", f"{p['max_std_diff']:.3f}", "< 0.25 (reported)", ok[p["std_diff_below_0.25"]]
        )
        t.add_row("Stan divergences", str(p["stan_divergences"]), "", "")
    t.add_row("verdict", "", "", ok[verdict["passed"]])
    out.print(t)


def _checkpoint_progress(run_dir: Path, record: dict) -> str | None:
    """What the checkpoint of an unfinished run holds, in words (None without one)."""
    from lineup_numpyro.inference.sampling import Checkpoint, saved_draws
    from lineup_numpyro.run.rundir import RunDir

    if not record.get("config") or not (run_dir / RunDir.CHECKPOINT).is_dir():
        return None
    sampler = RunConfig.from_dict(record["config"]).sampler
    warm, draws = saved_draws(run_dir / RunDir.CHECKPOINT, sampler)
    damaged = Checkpoint(run_dir / RunDir.CHECKPOINT, sampler).damaged()
    note = (
        f" (damaged: {damaged}; delete it and every later chunk file, then resume: their draws are drawn "
        "again, identically)"
        if damaged
        else ""
    )
    if not warm:
        return "saved: nothing yet (it stopped during warm-up)" + note
    return f"saved: warm-up and {draws:,} of {sampler.draws:,} draws per chain" + note


def _print_summary(run_dir: Path, top: int = 10, labels: Labels = Labels()) -> bool:
    """Print the tables; returns whether the run is complete."""
    from lineup_numpyro.run.outputs import rhat_text
    from lineup_numpyro.run.rundir import RunDir

    status, record, table, diag = RunDir(run_dir).load()
    if status["state"] != "complete" or diag is None or table is None:
        detail = f": {status['error']}" if status.get("error") else ""
        message = f"{run_dir}: this run is {status['state']}, not complete{detail}; its outputs are partial"
        err.print(f"[bold red]{escape(message)}[/]", highlight=False, soft_wrap=True)
        progress = _checkpoint_progress(run_dir, record)
        if progress:
            err.print(
                escape(f"{progress}; finish it with: lineup-numpyro train --resume {run_dir}"),
                highlight=False,
                soft_wrap=True,
            )
        return False
    t = Table(title=f"{run_dir}: {diag['model']} model ({diag.get('likelihood', '')}), {diag['method'].upper()}")
    t.add_column("diagnostic")
    t.add_column("value", justify="right")
    data = record.get("data", {})
    t.add_row("possessions", f"{data.get('n_possessions', 0):,}")
    changed = Priors(**record.get("config", {}).get("priors", {})).changed()
    if changed:
        t.add_row("priors (not the defaults)", ", ".join(f"{k}={v:g}" for k, v in changed.items()))
    if "log_likelihood" in diag:
        t.add_row("pointwise log-likelihood", escape(diag["log_likelihood"]))
    if diag["method"] != "nuts":
        _approx_rows(t, diag)
        out.print(t)
        _print_effects(table, top, labels)
        return True
    t.add_row(
        "chains x draws", f"{diag['chains']} x {diag['draws']} (+{diag['warmup']} warm-up, {diag['chain_method']})"
    )
    t.add_row(
        "max R-hat",
        rhat_text(diag["max_rhat"], 4) + (f" ({diag['max_rhat_parameter']})" if diag["max_rhat"] is not None else ""),
    )
    t.add_row("min ESS bulk", f"{diag['min_ess_bulk']:.0f} ({diag['min_ess_bulk_parameter']})")
    t.add_row("min ESS tail", f"{diag['min_ess_tail']:.0f}")
    div = diag["divergences"]
    t.add_row("divergences", f"{div['count']} ({div['percent']:.2f}%)")
    t.add_row("at max tree depth", f"{100 * diag['max_tree_depth']['share_at_limit']:.1f}%")
    tm = diag["timing"]
    t.add_row(
        "time",
        f"{tm['total_s']:.1f} s (compile {tm['compile_s']:.1f}, warm-up {tm['warmup_s']:.1f}, "
        f"sampling {tm['sampling_s']:.1f})",
    )
    if diag["matchups"]:
        counts: dict[str, int] = {}
        for m in diag["matchups"]:
            counts[m["verdict"]] = counts.get(m["verdict"], 0) + 1
        t.add_row("matchups", ", ".join(f"{v} {k}" for k, v in sorted(counts.items())))
    t.add_row("verdict", "[green]converged[/]" if diag["converged"] else "[red]not converged[/]")
    out.print(t)
    _print_effects(table, top, labels)
    return True


def _approx_rows(t: Table, diag: dict) -> None:
    """The evidence an approximation gives of its own convergence, in place of R-hat and ESS."""
    ev = diag["evidence"]
    t.add_row("draws", f"{diag['draws']:,} ({escape(diag['note'])})")
    if "iterations" in ev:
        t.add_row("L-BFGS iterations", f"{ev['iterations']:,}")
        t.add_row("largest |gradient| at the mode", f"{ev['grad_max']:.2e} (tolerance {ev['grad_tol']:.0e})")
    if "steps" in ev:
        t.add_row("SVI steps", f"{ev['steps']:,} ({ev['guide']} guide)")
        t.add_row("ELBO", f"{ev['elbo']:.2f} (block before: {ev['elbo_previous_block']:.2f})")
    if "pareto_k" in ev:
        t.add_row("Pareto k", f"{ev['pareto_k']:.2f} ({'ok' if ev['pareto_k_ok'] else 'above 0.7: unreliable'})")
    t.add_row("time", f"{diag['timing']['total_s']:.1f} s")
    t.add_row("verdict", "[green]converged[/]" if diag["converged"] else "[red]not converged[/]")


def _print_effects(table, top: int, labels: Labels = Labels()) -> None:  # noqa: ANN001

    import pandas as pd

    from lineup_numpyro.run.outputs import largest_effects

    eff = Table(
        title=f"largest {top} informed archetype effects (posterior mean, 90% interval)",
        box=box.SIMPLE_HEAD,
        padding=(0, 1),
        pad_edge=False,
        collapse_padding=True,
    )
    has_coverage = "n_on_floor" in table
    numbered = "archetype" in table  # runs written before the numbering columns lack them
    columns = ["parameter", *(["matchup", "arch."] if numbered else []), "mean", "90% interval"]
    columns += ["floor", "w/prior"] if has_coverage else []
    rows = [
        [
            row["parameter"],
            *(
                [
                    escape(labels.matchup(int(row["matchup_id"]))) if pd.notna(row["matchup_id"]) else "all",
                    escape(labels.archetype(int(row["archetype"]))),
                ]
                if numbered
                else []
            ),
            f"{row['mean']:.4f}",
            f"[{row['5%']:.4f}, {row['95%']:.4f}]",
            *([f"{int(row['n_on_floor']):,}", f"{row['prior_width_ratio']:.3f}"] if has_coverage else []),
        ]
        for _, row in largest_effects(table, top).iterrows()
    ]
    for i, col in enumerate(columns):  # cells never cut: a narrow terminal wraps the headers instead
        width = max([len(r[i]) for r in rows], default=0)
        eff.add_column(col, justify="left" if col in ("parameter", "matchup") else "right", min_width=width)
    for r in rows:
        eff.add_row(*r)
    out.print(eff)
    if has_coverage:
        cells = table[table["parameter"].str.match(r"beta_(0|off|def)\b")]
        counts = cells["source"].value_counts()
        out.print(
            f"{len(cells)} coefficients: "
            + ", ".join(f"{counts.get(k, 0)} {k}" for k in ("data", "population", "weak", "prior") if counts.get(k))
            + "; 'floor' = possessions with the archetype on the floor in the matchup, 'w/prior' = "
            "90% interval width / the prior's. Only informed coefficients are ranked.",
            style="dim",
        )


def run() -> None:
    """The console script: the app, then an exit that skips the interpreter's teardown.

    Tearing down JAX's runtime and the libraries behind it takes ~0.4 s after the work is done
    (a fifth of a warm matchup fit's time outside the sampler). Everything a command writes is
    closed when the command returns, so the exit handlers are run, the output flushed and the
    process ended with the command's exit code. An error that escapes (a bug) exits the usual
    way, traceback and all; so does a command that left a thread running."""
    try:
        app()
        code: object = 0
    except SystemExit as exc:
        code = exc.code
    if any(t.is_alive() and not t.daemon for t in threading.enumerate() if t is not threading.main_thread()):
        sys.exit(code)
    if code is not None and not isinstance(code, int):  # sys.exit("message"): Python prints it, exit 1
        print(code, file=sys.stderr)
        code = 1
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):  # a closed pipe (`| head`): as Python itself ends then
            code = code or 120
    os._exit(code or 0)


if __name__ == "__main__":
    run()
