"""Scoring a finished run against possessions: holdout prediction metrics and PSIS-LOO.

Both need each draw's predicted mean for each possession, (draws, rows): 100K rows x
4,000 draws is 3.2 GB in float64, so the rows are taken CHUNK_ROWS at a time and only
per-row results are kept. PSIS works observation by observation, so LOO by chunks equals
ArviZ's `loo` on the whole array; ArviZ's `psislw` does the Pareto smoothing.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import arviz as az
import numpy as np
from scipy.special import ndtr

from lineup_numpyro.config import DataConfig
from lineup_numpyro.data.possessions import DataError, Possessions, iter_chunks
from lineup_numpyro.data.suffstats import accumulate
from lineup_numpyro.errors import RunDirError
from lineup_numpyro.run.pointwise import (
    Posterior,
    log_likelihood,
    pieces,
    posterior_of,
    predicted_means,
    run_data,
)
from lineup_numpyro.run.rundir import RunDir

INTERVALS = (0.5, 0.9)  # central predictive intervals whose coverage is reported


def _logsumexp(a: np.ndarray, axis: int) -> np.ndarray:
    """log(sum(exp(a))) along `axis`, for finite `a`: scipy's version, without its checks and
    copies, which cost more than the rest of PSIS-LOO."""
    peak = a.max(axis=axis, keepdims=True)
    return np.log(np.exp(a - peak).sum(axis=axis)) + np.squeeze(peak, axis=axis)


def load_posterior(run_dir: str | Path) -> Posterior:
    """The posterior of a complete run directory."""
    run = RunDir(run_dir)
    run.require_complete("score")
    return posterior_of(az.from_netcdf(str(run / RunDir.POSTERIOR)))


@dataclass(frozen=True)
class HoldoutScore:
    """How well a run predicts possessions it did not see.

    mse/rmse: of the posterior-predictive mean; mlpd: mean log predictive density per
    possession; coverage_50/90: share of outcomes inside the central 50%/90% predictive
    intervals (exact, from the predictive CDF, a mixture over draws); outcome_var: the
    variance of the outcomes themselves, the MSE of predicting their mean.
    """

    source: str
    n: int
    mse: float
    rmse: float
    mlpd: float
    coverage_50: float
    coverage_90: float
    outcome_var: float

    def to_dict(self) -> dict:
        return asdict(self)


def score_holdout(post: Posterior, chunks: Iterable[Possessions], source: str) -> HoldoutScore:
    """Posterior-predictive MSE, RMSE, mean log predictive density and interval coverage."""
    n, sse, lpd, sum_y, sum_y2 = 0, 0.0, 0.0, 0.0, 0.0
    inside = dict.fromkeys(INTERVALS, 0)
    for rows in pieces(chunks):
        mu = predicted_means(post, rows)
        ll = log_likelihood(post, rows, mu)
        sse += float(np.sum((rows.y - mu.mean(axis=0)) ** 2))
        lpd += float(np.sum(_logsumexp(ll, axis=0) - math.log(post.n_draws)))
        cdf = ndtr((rows.y - mu) / post.sigma[:, None]).mean(axis=0)  # predictive CDF at each outcome
        for p in INTERVALS:
            inside[p] += int(np.sum(np.abs(cdf - 0.5) <= p / 2))
        n += len(rows)
        sum_y += float(rows.y.sum())
        sum_y2 += float(np.sum(rows.y**2))
    if n == 0:
        raise DataError(f"{source}: no possessions to score")
    mse = sse / n
    return HoldoutScore(
        source, n, mse, math.sqrt(mse), lpd / n, inside[0.5] / n, inside[0.9] / n, sum_y2 / n - (sum_y / n) ** 2
    )


@dataclass(frozen=True)
class LooResult:
    """PSIS-LOO of one run on the possessions it was fitted to, pointwise."""

    elpd_i: np.ndarray  # (N,) leave-one-out expected log predictive density of each possession
    lppd_i: np.ndarray  # (N,) in-sample log predictive density
    pareto_k: np.ndarray  # (N,) Pareto shape of each possession's importance weights
    n_draws: int

    @property
    def n(self) -> int:
        return int(self.elpd_i.shape[0])

    @property
    def elpd(self) -> float:
        return float(self.elpd_i.sum())

    @property
    def se(self) -> float:
        return float(math.sqrt(self.n * np.var(self.elpd_i)))

    @property
    def p_loo(self) -> float:
        """Effective number of parameters: in-sample minus leave-one-out density."""
        return float(self.lppd_i.sum() - self.elpd)

    @property
    def k_threshold(self) -> float:
        """Above this k the PSIS estimate is unreliable (Vehtari et al. 2024; ArviZ's bar)."""
        return min(1 - 1 / math.log10(self.n_draws), 0.7)

    @property
    def n_high_k(self) -> int:
        return int(np.sum(self.pareto_k > self.k_threshold))

    def summary(self) -> dict:
        return {
            "n": self.n,
            "elpd_loo": self.elpd,
            "se": self.se,
            "p_loo": self.p_loo,
            "k_threshold": self.k_threshold,
            "n_high_k": self.n_high_k,
            "max_k": float(self.pareto_k.max()),
        }


def psis_loo(post: Posterior, chunks: Iterable[Possessions]) -> LooResult:
    """PSIS-LOO over `chunks` (the run's own training possessions), chunk by chunk."""
    elpd, lppd, kss = [], [], []
    for rows in pieces(chunks):
        ll = log_likelihood(post, rows).T  # (n, S): draws last, as psislw expects
        log_w, k = az.psislw(-ll, post.reff)
        elpd.append(_logsumexp(log_w + ll, axis=1))
        lppd.append(_logsumexp(ll, axis=1) - math.log(post.n_draws))
        kss.append(np.asarray(k))
    if not elpd:
        raise DataError("no possessions for LOO")
    return LooResult(np.concatenate(elpd), np.concatenate(lppd), np.concatenate(kss), post.n_draws)


def data_config_of(record: dict) -> DataConfig:
    """The DataConfig a run was trained with, from its run_config.json record."""
    try:
        data = dict(record["config"]["data"])
    except (KeyError, TypeError):
        raise RunDirError("run_config.json does not record the run's data") from None
    data["seasons"] = tuple(data.get("seasons") or ())
    return DataConfig(**data)


def require_same_builtin_season(record: dict, where: str | Path) -> None:
    """The built-in season is simulated again whenever a run's data are read: refuse when this
    version simulates another season than the run was fitted to (its recorded digest), instead
    of scoring the run on data it never saw as if they were its own."""
    data = data_config_of(record)
    saved = record.get("data", {}).get("digest", {}).get("suffstats")
    if data.path is not None or saved is None:
        return
    if accumulate(run_data(data, "train")).digest() != saved:
        raise RunDirError(
            f"{where}: this version of lineup-numpyro simulates another built-in season than the one "
            "the run was fitted to; use the version that trained it (run_config.json 'versions'), or "
            "train again"
        )


def overlaps_training(train: DataConfig, holdout: DataConfig) -> bool:
    """Whether `holdout` reads possessions the run was fitted to (same file, shared seasons, the
    same value of a column both filter on)."""
    if train.path is None or holdout.path is None or Path(train.path).resolve() != Path(holdout.path).resolve():
        return False
    if train.seasons and holdout.seasons and not set(train.seasons) & set(holdout.seasons):
        return False
    if train.where and holdout.where and train.where[0] == holdout.where[0]:
        return train.where[1] == holdout.where[1]
    return True


def validate_run(run_dir: str | Path, holdout: DataConfig | None = None, loo: bool = True) -> tuple[dict, Path]:
    """Score a run on held-out possessions (`holdout`, or those its random split kept out)
    and, with `loo`, by PSIS-LOO on its training possessions. Written to the run's
    validation/NAME.json, NAME saying what was scored (a file and its seasons, or the run's
    own split), so that validating on another data set keeps the earlier result; returns
    the report and its path."""

    run = RunDir(run_dir)
    post = load_posterior(run.path)
    record = run.record()
    require_same_builtin_season(record, run)
    train = data_config_of(record)
    in_sample = False
    if holdout is None:
        name, source, chunks = "holdout-split", train.describe("holdout"), run_data(train, "holdout")
    else:
        in_sample = overlaps_training(train, holdout)
        if in_sample:
            warnings.warn(
                f"{holdout.path}: these possessions include the run's training data; "
                "the scores are in-sample, not a holdout",
                UserWarning,
                stacklevel=2,
            )
        name = (
            Path(holdout.path).stem
            + (f"-{'-'.join(holdout.seasons)}" if holdout.seasons else "")
            + (f"-{holdout.where[0]}-{holdout.where[1]}" if holdout.where else "")
        )
        chunks = iter_chunks(holdout.path, holdout.seasons, holdout.chunksize, where=holdout.where)
        source = holdout.describe()
    report = {
        "run": str(run),
        "model": post.model,
        "training_data": train.describe(),
        "in_sample": in_sample,
        "holdout": score_holdout(post, chunks, source).to_dict(),
    }
    if loo:
        report["loo"] = psis_loo(post, run_data(train, "train")).summary()
    return report, run.write_validation(name, report)
