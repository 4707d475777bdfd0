"""Per-possession results of a run: its posterior as predictions, and the ArviZ groups that
`az.loo`, `az.compare` and `az.plot_ppc` read.

A run's posterior.nc carries `observed_data` (y), `log_likelihood` (y: log N(y_i | mu_si,
sigma_s), float64) and `posterior_predictive` (y: one replicate per draw, float32), each
(chain, draw, possession) for the possessions the run was fitted to, in file order. They are
written into the file CHUNK_ROWS possessions at a time (h5netcdf), so the whole N x draws
array is never in memory; by default only where they stay under config.POINTWISE_MAX_BYTES.
Validation, comparison and the report take their predictions from here too.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import h5netcdf
import numpy as np

from lineup_numpyro import names
from lineup_numpyro.config import POINTWISE_BYTES_PER_VALUE, POINTWISE_MAX_BYTES, DataConfig
from lineup_numpyro.data.possessions import DataError, Possessions, iter_chunks
from lineup_numpyro.errors import RunDirError
from lineup_numpyro.inference.diagnostics import ess_mean
from lineup_numpyro.models.model import predict
from lineup_numpyro.models.simulate import simulate_season

if TYPE_CHECKING:
    import arviz as az
    import xarray as xr

CHUNK_ROWS = 4_000  # possessions whose (draws x rows) predictions are held at once
LOG_2PI = math.log(2 * math.pi)
GROUPS = ("observed_data", "log_likelihood", "posterior_predictive")


@dataclass(frozen=True)
class Posterior:
    """The draws of one run in the form predictions need, chains flattened into S draws."""

    model: str
    coef: np.ndarray  # (S, M, 17): [beta_0, beta_off(8), beta_def(8)] per draw and matchup
    sigma: np.ndarray  # (S,)
    reff: float  # PSIS relative efficiency: mean ESS over parameters / S (ArviZ's definition)
    chains: int = 1

    @property
    def n_draws(self) -> int:
        return int(self.sigma.shape[0])


def posterior_of(idata: az.InferenceData | xr.DataTree) -> Posterior:
    """Posterior of a run's InferenceData (posterior.nc, or the DataTree written to it); the
    pooled model's one coefficient vector serves every matchup."""
    post = idata.posterior
    model = str(idata.attrs.get("model", ""))
    if model not in names.MODELS:
        raise RunDirError(f"the posterior does not say which model it is (attrs['model'] = {model!r})")
    s = post.sizes["chain"] * post.sizes["draw"]

    def flat(var: str) -> np.ndarray:
        v = post[var].values
        return v.reshape(s, *v.shape[2:])

    coef = np.concatenate([flat("beta_0")[..., None], flat("beta_off"), flat("beta_def")], axis=-1)
    if model == "simplified":
        coef = np.broadcast_to(coef[:, None, :], (s, names.N_MATCHUPS, names.N_FEATURES))
    if post.sizes["chain"] > 1:
        draws = np.concatenate([post[v].values.reshape(*post[v].shape[:2], -1) for v in post.data_vars], axis=-1)
        reff = float(ess_mean(draws).mean() / s)
    else:
        reff = 1.0
    return Posterior(model, coef, flat("sigma"), reff, int(post.sizes["chain"]))


def predicted_means(post: Posterior, rows: Possessions) -> np.ndarray:
    """mu[s, i] = x_i . b[s, m_i], shape (S, n)."""
    return predict(post.coef, rows.matchup, rows.design())


def log_likelihood(post: Posterior, rows: Possessions, mu: np.ndarray | None = None) -> np.ndarray:
    """log N(y_i | mu[s, i], sigma[s]), shape (S, n)."""
    mu = predicted_means(post, rows) if mu is None else mu
    z = (rows.y - mu) / post.sigma[:, None]
    return -0.5 * z**2 - np.log(post.sigma)[:, None] - 0.5 * LOG_2PI


def run_data(data: DataConfig, side: str = "train") -> Iterator[Possessions]:
    """The possessions of one side of a run's data: those it was fitted to ('train') or
    those its random split held out ('holdout')."""
    split = data.split(side)
    if side == "holdout" and split is None:
        raise DataError("the run held nothing out (trained with --holdout 0); give holdout data with --data")
    if data.path is None:
        rows, _ = simulate_season()
        yield rows if split is None else rows.subset(split.keep(0, len(rows)))
        return
    yield from iter_chunks(data.path, data.seasons, data.chunksize, split, where=data.where)


def pieces(chunks: Iterable[Possessions], size: int = CHUNK_ROWS) -> Iterator[Possessions]:
    """The possessions of `chunks` again, at most `size` at a time."""
    for chunk in chunks:
        for start in range(0, len(chunk), size):
            yield chunk.subset(slice(start, start + size))


def pointwise_bytes(n_possessions: int, n_draws: int) -> int:
    """Size of the log_likelihood and posterior_predictive groups of a run."""
    return int(n_possessions) * int(n_draws) * POINTWISE_BYTES_PER_VALUE


def pointwise_decision(wanted: bool | None, n_possessions: int, n_draws: int) -> tuple[bool, str]:
    """Whether to write the pointwise groups, and why: `wanted` None means 'where they stay
    under POINTWISE_MAX_BYTES'."""
    size = pointwise_bytes(n_possessions, n_draws)
    mb = f"{size / 2**20:,.0f} MB ({n_possessions:,} possessions x {n_draws:,} draws)"
    if wanted is None:
        if size <= POINTWISE_MAX_BYTES:
            return True, f"written: {mb}"
        return False, (
            f"not written: it would take {mb}, over the default {POINTWISE_MAX_BYTES / 2**20:,.0f} MB; "
            "train with --log-likelihood to write it anyway (validate and compare do not need it)"
        )
    return (True, f"written: {mb}") if wanted else (False, "not written (--no-log-likelihood)")


def write_pointwise(path: Path, idata: az.InferenceData | xr.DataTree, data: DataConfig, seed: int) -> int:
    """Append observed_data, log_likelihood and posterior_predictive to the netCDF file `path`
    (idata written there already), chunk by chunk; returns the number of possessions."""
    post = posterior_of(idata)
    rng = np.random.default_rng(seed)
    with PointwiseWriter(path, post.chains, post.n_draws // post.chains, log_likelihood=True) as out:
        for rows in pieces(run_data(data, "train")):
            mu = predicted_means(post, rows)
            out.add(rows, mu + post.sigma[:, None] * rng.standard_normal(mu.shape), log_likelihood(post, rows, mu))
    if out.n == 0:
        raise DataError(f"{data.path}: no possessions to write the log-likelihood of")
    return out.n


class PointwiseWriter:
    """Per-possession groups of a netCDF file (created, or appended to), written a chunk of
    possessions at a time along a growing `possession` dimension: posterior_predictive, the
    possessions' matchup ids in constant_data, observed_data when the outcomes are known, and
    log_likelihood when asked for."""

    def __init__(self, path: str | Path, chains: int, draws: int, log_likelihood: bool) -> None:
        self.path, self.chains, self.draws, self.with_ll = Path(path), chains, draws, log_likelihood
        self.n = 0
        self._file: h5netcdf.File | None = None
        self._vars: dict = {}

    def __enter__(self) -> PointwiseWriter:
        self._file = h5netcdf.File(self.path, "a")
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._file is not None
        self._file.close()

    def add(self, rows: Possessions, replicates: np.ndarray, log_lik: np.ndarray | None = None) -> None:
        """One chunk: `replicates` and `log_lik` are (chains x draws, len(rows))."""
        if not self._vars:
            self._create(observed=not np.isnan(rows.y).any())
        end = self.n + len(rows)
        per_draw = {"posterior_predictive": replicates, "log_likelihood": log_lik}
        per_row = {"observed_data": rows.y, "constant_data": rows.matchup}
        for name, (group, var) in self._vars.items():
            group.resize_dimension("possession", end)
            if name in per_draw:
                var[:, :, self.n : end] = per_draw[name].reshape(self.chains, self.draws, len(rows))
            else:
                var[self.n : end] = per_row[name]
        self.n = end

    def _create(self, observed: bool) -> None:
        f = self._file
        assert f is not None
        names_ = ["posterior_predictive", "constant_data"]
        names_ += ["observed_data"] if observed else []
        names_ += ["log_likelihood"] if self.with_ll else []
        for name in names_:
            group = f[name] if name in f.groups else f.create_group(name)
            group.dimensions["possession"] = None
            if name in ("log_likelihood", "posterior_predictive"):
                group.dimensions["chain"] = self.chains
                group.dimensions["draw"] = self.draws
                group.create_variable("chain", ("chain",), data=np.arange(self.chains, dtype=np.int64))
                group.create_variable("draw", ("draw",), data=np.arange(self.draws, dtype=np.int64))
                dtype = "f8" if name == "log_likelihood" else "f4"
                var = group.create_variable(
                    "y", ("chain", "draw", "possession"), dtype=dtype, chunks=(1, min(self.draws, 1000), 256)
                )
            elif name == "constant_data":
                var = group.create_variable("possession_matchup", ("possession",), dtype="i8", chunks=(CHUNK_ROWS,))
                var.attrs["description"] = "matchup id (0-35) of each possession"
            else:
                var = group.create_variable("y", ("possession",), dtype="f8", chunks=(CHUNK_ROWS,))
            self._vars[name] = (group, var)
