"""Summaries of posterior draws under the Stan names: mean, sd, quantiles, R-hat, ESS, MCSE.

Used by the run directory's coefficients.csv and by the Stan parity check alike. R-hat, ESS
and MCSE are those of ArviZ (Vehtari et al. 2021: rank-normalised split R-hat, bulk and tail
ESS with Geyer's initial monotone sequence), computed here for every parameter at once:
ArviZ 0.23 loops over parameters in Python, 2.5 s for the matchup model's 613, which users
waited for at the end of every run. `tests/test_diagnostics.py` checks these functions
against ArviZ's to 1e-10.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy.special import ndtri

from lineup_numpyro import names

BLOM = 3.0 / 8.0  # the offset of the ranks' normal scores (Blom 1958), as in ArviZ
TAIL_PROBS = (0.05, 0.95)


def parameter_summary(posterior, model: str) -> pd.DataFrame:
    """mean, sd, 5/50/95% quantiles, R-hat, ESS and MCSE of every scalar parameter of `model`.

    `posterior` is an xarray Dataset of draws (chain, draw, ...) holding the model's sites;
    rows come in Stan's order under Stan's names, with the 0-based matchup of each row
    (None for parameters not indexed by matchup).
    """
    blocks, labels, matchups = [], [], []
    for var, dims in names.POSTERIOR_DIMS[model].items():
        draws = np.asarray(posterior[var].values, dtype=np.float64)  # (chains, draws, *shape)
        blocks.append(draws.reshape(*draws.shape[:2], -1))
        for index in np.ndindex(*draws.shape[2:]):
            labels.append(names.stan_name(var, index))
            matchups.append(index[0] if dims and dims[0] == "matchup" else None)
    x = _checked(np.concatenate(blocks, axis=-1))  # (chains, draws, parameters)
    flat = x.reshape(-1, x.shape[-1])
    q05, q50, q95 = np.quantile(_rows(x), [0.05, 0.5, 0.95], axis=1)
    if x.shape[1] >= 4:  # the rank-normalised split chains serve R-hat and bulk ESS alike
        split = _split_chains(x)
        z, ordered = _z_scale(split)
        r_hat, bulk = _rhat_of(split, z, ordered, _valid(x)), np.where(_valid(x), _ess(z), np.nan)
        tail = _ess_tail_of(x, (q05, q95))
    else:
        r_hat = bulk = tail = np.full(x.shape[-1], np.nan)
    return pd.DataFrame(
        {
            "parameter": labels,
            "mean": flat.mean(axis=0),
            "sd": flat.std(axis=0, ddof=1),
            "5%": q05,
            "50%": q50,
            "95%": q95,
            "r_hat": r_hat,  # NaN with one chain: R-hat compares chains
            "ess_bulk": bulk,
            "ess_tail": tail,
            "mcse_mean": mcse_mean(x),
            "matchup": matchups,
        }
    )


# Each function takes draws (chains, draws, parameters) and gives one value per parameter,
# NaN where ArviZ gives NaN (a non-finite draw, fewer than 4 draws, R-hat of one chain).


def rhat(x: np.ndarray) -> np.ndarray:
    """Rank-normalised split R-hat: the larger of the bulk and the folded (tail) R-hat."""
    x = _checked(x)
    if x.shape[0] < 2 or x.shape[1] < 4:
        return np.full(x.shape[-1], np.nan)
    split = _split_chains(x)
    return _rhat_of(split, *_z_scale(split), _valid(x))


def _rhat_of(split: np.ndarray, z: np.ndarray, ordered: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """R-hat from the split chains, their rank-normalised scores `z` and sorted draws `ordered`
    (_z_scale); NaN where not `valid` and for one chain (split in two)."""
    if split.shape[0] < 4:
        return np.full(split.shape[-1], np.nan)
    n = ordered.shape[1]  # the median as NumPy takes it: the middle value, or the mean of the two
    median = np.mean(ordered[:, [(n - 1) // 2, n // 2]], axis=1) if n % 2 == 0 else ordered[:, n // 2]
    folded = np.abs(split - median)
    out = np.maximum(_rhat(z), _rhat(_z_scale(folded)[0]))
    return np.where(valid, out, np.nan)


def ess_bulk(x: np.ndarray) -> np.ndarray:
    """Bulk ESS: the ESS of the rank-normalised split chains."""
    x = _checked(x)
    if x.shape[1] < 4:
        return np.full(x.shape[-1], np.nan)
    return np.where(_valid(x), _ess(_z_scale(_split_chains(x))[0]), np.nan)


def ess_tail(x: np.ndarray) -> np.ndarray:
    """Tail ESS: the smaller ESS of the indicators of the 5% and 95% quantiles."""
    x = _checked(x)
    if x.shape[1] < 4:
        return np.full(x.shape[-1], np.nan)
    return _ess_tail_of(x, np.quantile(_rows(x), TAIL_PROBS, axis=1))


def _ess_tail_of(x: np.ndarray, quantiles: np.ndarray) -> np.ndarray:
    """Tail ESS given each parameter's 5% and 95% quantiles."""
    out = np.full(x.shape[-1], np.inf)
    for q in quantiles:
        out = np.minimum(out, _ess(_split_chains((x <= q).astype(np.float64))))
    return np.where(_valid(x), out, np.nan)


def ess_mean(x: np.ndarray) -> np.ndarray:
    """ESS of the mean: of the split chains as they are."""
    x = _checked(x)
    if x.shape[1] < 4:
        return np.full(x.shape[-1], np.nan)
    return np.where(_valid(x), _ess(_split_chains(x)), np.nan)


def mcse_mean(x: np.ndarray) -> np.ndarray:
    """Monte Carlo standard error of the mean: sd / sqrt(ESS of the mean)."""
    sd = np.asarray(x, dtype=np.float64).reshape(-1, np.shape(x)[-1]).std(axis=0, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return sd / np.sqrt(ess_mean(x))


def _checked(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 3:
        raise ValueError(f"draws must be (chains, draws, parameters), got shape {x.shape}")
    return x


def _rows(x: np.ndarray) -> np.ndarray:
    """(parameters, chains * draws), contiguous: sorts and partitions run along rows, many times faster."""
    return np.ascontiguousarray(x.reshape(-1, x.shape[-1]).T)


def _valid(x: np.ndarray) -> np.ndarray:
    """Per parameter: at least 4 draws and every draw finite."""
    return np.all(np.isfinite(x), axis=(0, 1)) & (x.shape[1] >= 4)


def _split_chains(x: np.ndarray) -> np.ndarray:
    """Each chain's first and last halves as two chains (the middle draw of an odd count dropped)."""
    half = x.shape[1] // 2
    return np.concatenate([x[:, :half], x[:, x.shape[1] - half :]], axis=0)


def _z_scale(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Normal scores of the ranks over all chains and draws (ties take their average rank), and
    each parameter's draws sorted, (parameters, chains * draws).

    Without ties the sorted positions' scores are one table of n values, put back in the rows'
    own order; tied runs (NUTS repeats a draw when it stays put: every parameter then has a tie)
    are corrected where they are, so the work is a sort per parameter, not a pass per rank."""
    rows = _rows(x)
    n = rows.shape[1]
    order = np.argsort(rows, axis=1)
    ordered = np.sort(rows, axis=1)  # a second sort is cheaper than gathering by `order`
    scored = np.broadcast_to(_scores(np.arange(1.0, n + 1.0), n), rows.shape)
    positions, ranks = _tied_runs(ordered)
    if positions.size:
        scored = scored.copy()
        scored.reshape(-1)[positions] = _scores(ranks, n)
    out = np.empty_like(rows)
    np.put_along_axis(out, order, scored, axis=1)
    return out.T.reshape(x.shape), ordered


def _tied_runs(ordered: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The flat positions (into `ordered`, rows sorted) of every value equal to a neighbour, and
    the average 1-based rank of its run of equal values."""
    rows, n = ordered.shape
    edges = np.zeros((rows, n + 1), dtype=np.int8)  # 1 between two equal neighbours, 0 at row ends
    edges[:, 1:n] = ordered[:, 1:] == ordered[:, :-1]
    step = np.diff(edges, axis=1).reshape(-1)  # +1 where a run starts, -1 where it ends
    starts, ends = np.flatnonzero(step == 1), np.flatnonzero(step == -1)
    if not starts.size:
        return starts, np.empty(0)
    lengths = ends - starts + 1
    offsets = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    average = (starts % n + ends % n) / 2.0 + 1.0
    return np.repeat(starts, lengths) + offsets, np.repeat(average, lengths)


def _scores(ranks: np.ndarray, n: int) -> np.ndarray:
    return ndtri((ranks - BLOM) / (n - 2 * BLOM + 1))


def _rhat(x: np.ndarray) -> np.ndarray:
    n = x.shape[1]
    between = n * np.var(x.mean(axis=1), axis=0, ddof=1)
    within = np.mean(np.var(x, axis=1, ddof=1), axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.sqrt((between / within + n - 1) / n)


def _ess(x: np.ndarray) -> np.ndarray:
    """ESS of chains x (chains, draws, parameters): autocorrelations from all chains together,
    summed in pairs up to the first negative pair (Geyer's initial positive sequence), the pair
    sums made non-increasing (initial monotone sequence), as ArviZ's `_ess` does chain by chain."""
    chains, n, k = x.shape
    size = chains * n
    constant = (x.max(axis=(0, 1)) - x.min(axis=(0, 1))) < np.finfo(float).resolution
    # each chain's autocovariance by FFT, averaged over chains (in the spectrum: one inverse FFT)
    rows = np.ascontiguousarray(x.transpose(0, 2, 1))  # (chains, k, draws): FFTs along rows
    spectrum = np.fft.rfft(rows - rows.mean(axis=2, keepdims=True), n=2 * n, axis=2)
    power = (spectrum.real**2 + spectrum.imag**2).mean(axis=0)  # (k, frequencies)
    mean_acov = np.fft.irfft(power, n=2 * n, axis=1)[:, :n].T / n  # (lags, k)
    mean_var = mean_acov[0] * n / (n - 1.0)
    var_plus = mean_var * (n - 1.0) / n
    if chains > 1:
        var_plus = var_plus + np.var(x.mean(axis=1), axis=0, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        rho = 1.0 - (mean_var - mean_acov) / var_plus  # (lags, k)
    rho[0] = 1.0
    pairs = n // 2
    pair_sum = rho[0 : 2 * pairs : 2] + rho[1 : 2 * pairs : 2]  # (pairs, k)
    # pair p (p >= 1) is examined while every earlier pair sum is positive, up to ArviZ's lag limit
    p = np.arange(pairs)[:, None]
    earlier_positive = np.cumprod(np.vstack([np.ones((1, k), dtype=bool), pair_sum[:-1] > 0]), axis=0).astype(bool)
    examined = earlier_positive & (p >= 1) & (2 * p - 1 < n - 3)
    j = examined.sum(axis=0)  # pairs examined: pairs 0..j-1 are summed, pair j's even lag is added
    monotone = np.minimum.accumulate(pair_sum, axis=0)
    summed = np.where(p < j, monotone, 0.0).sum(axis=0)
    cols = np.arange(k)
    last = np.minimum(j, pairs - 1)
    even = rho[2 * last, cols]
    last_kept = (j >= 1) & ((pair_sum[last, cols] >= 0) | (even > 0))
    tau = -1.0 + 2.0 * summed + np.where(j >= 1, np.where(last_kept, even, 0.0), 1.0)
    tau = np.maximum(tau, 1.0 / np.log10(size))
    ess = size / tau
    ess = np.where(np.isnan(rho).any(axis=0), np.nan, ess)
    return np.where(constant, float(size), ess)


# When a NUTS run counts as converged (Vehtari et al. 2021): R-hat at most RHAT_MAX on every
# parameter, and ESS_bulk at least ESS_PER_CHAIN per chain (400 for 4 chains), so a short
# exploratory run with fewer chains is held to a bar it can reach; and no divergent transition.
RHAT_MAX = 1.01
ESS_PER_CHAIN = 100


def ess_min(chains: int) -> int:
    return ESS_PER_CHAIN * int(chains)


def convergence_problems(
    max_rhat: float | None,
    min_ess_bulk: float,
    divergences: int,
    chains: int,
    draws: int,
    target_accept: float | None = None,
    where: str = "",
) -> list[str]:
    """What keeps a run (or one matchup's parameters: `where`) from converging, each with the
    advice that lifts that limit; empty when it converged. R-hat needs 2 chains: with one, the
    missing check is the problem."""
    problems = []
    where = f" ({where})" if where else ""
    if divergences:
        higher = f" (now {target_accept:g})" if target_accept is not None else ""
        problems.append(
            f"{divergences} divergent transitions: the sampler could not follow the posterior; raise "
            f"--target-accept{higher} toward 0.99, or use another parameterization"
        )
    if max_rhat is None:
        problems.append(
            "one chain: R-hat needs at least 2 chains, so convergence was not checked; rerun with --chains 2 or more"
        )
    elif max_rhat > RHAT_MAX:
        problems.append(
            f"R-hat {max_rhat:.3f} > {RHAT_MAX}{where}: the chains disagree; give more --warmup and more --draws"
        )
    need = ess_min(chains)
    if min_ess_bulk < need:
        # at this run's efficiency (ESS per draw), how many draws per chain would reach the bar
        per_draw = max(min_ess_bulk, 1.0) / max(chains * draws, 1)
        enough = math.ceil(1.1 * need / per_draw / max(chains, 1))
        problems.append(
            f"ESS_bulk {min_ess_bulk:.0f} < {need} ({ESS_PER_CHAIN} per chain){where}: too few effective draws; "
            f"at this run's {per_draw:.2f} effective draws per draw, about --draws {enough:,} would do"
        )
    return problems
