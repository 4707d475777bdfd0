"""A semi-synthetic season: real-shaped lineups, outcomes drawn from a model with known parameters.

Lineups are five players per side, each with an archetype (rare archetypes are rare, as in
the real samples) and a DARKO-like skill; z[a] sums the skills of the side's players of
archetype a, so most of a row's 16 z columns are exactly 0. Matchup sizes are log-normal,
as uneven as the real data, and some matchups can be left empty. The outcome is Gaussian
from the chosen model, so that parameter recovery is a fair test of the sampler.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from lineup_numpyro import names
from lineup_numpyro.data.possessions import Possessions, design_matrix
from lineup_numpyro.errors import ConfigError
from lineup_numpyro.files import atomic_path
from lineup_numpyro.models.model import predict

DEFAULT_POSSESSIONS = 96_837
DEFAULT_SEED = 2023
# Share of players per archetype, matched to how often each archetype is on the floor in
# ../shared/data/quick_sample_10k.csv (archetypes 0 and 3 almost never appear).
ARCHETYPE_SHARES = np.array([0.004, 0.122, 0.122, 0.004, 0.206, 0.147, 0.128, 0.267])
SIGMA = 0.56  # sd of points per possession in the real samples


@dataclass(frozen=True)
class Truth:
    """The parameters the outcomes were drawn from, by site name (Stan layout, 0-based arrays)."""

    model: str
    params: dict[str, np.ndarray]

    def to_json(self) -> dict:
        return {"model": self.model, "params": {k: np.asarray(v).tolist() for k, v in self.params.items()}}

    @classmethod
    def from_json(cls, obj: dict) -> Truth:
        return cls(obj["model"], {k: np.asarray(v, dtype=np.float64) for k, v in obj["params"].items()})


def _true_params(model: str, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Effects of a few hundredths of a point per DARKO point, of both signs' worth of spread."""
    m, a = names.N_MATCHUPS, names.N_ARCHETYPES
    if model == "simplified":
        return {
            "beta_0": np.array(0.18),
            "beta_off": rng.uniform(0.01, 0.06, a),
            "beta_def": rng.uniform(0.01, 0.06, a),
            "sigma": np.array(SIGMA),
        }
    if model == "matchup":
        return {
            "beta_0": rng.normal(0.18, 0.04, m),
            "beta_off": rng.uniform(0.01, 0.08, (m, a)),
            "beta_def": rng.uniform(0.01, 0.08, (m, a)),
            "sigma": np.array(SIGMA),
        }
    if model == "hierarchical":
        mu_0, tau_0 = 0.18, 0.04
        mu_off, mu_def = np.log(rng.uniform(0.015, 0.05, a)), np.log(rng.uniform(0.015, 0.05, a))
        tau_off, tau_def = rng.uniform(0.2, 0.5, a), rng.uniform(0.2, 0.5, a)
        e_0, e_off, e_def = rng.normal(size=m), rng.normal(size=(m, a)), rng.normal(size=(m, a))
        return {
            "mu_0": np.array(mu_0),
            "tau_0": np.array(tau_0),
            "mu_off": mu_off,
            "tau_off": tau_off,
            "mu_def": mu_def,
            "tau_def": tau_def,
            "e_0": e_0,
            "e_off": e_off,
            "e_def": e_def,
            "sigma": np.array(SIGMA),
            "beta_0": mu_0 + tau_0 * e_0,
            "beta_off": np.exp(mu_off + tau_off * e_off),
            "beta_def": np.exp(mu_def + tau_def * e_def),
        }
    raise ValueError(f"unknown model {model!r}; expected one of {', '.join(names.MODELS)}")


def _matchup_weights(empty: int, rng: np.random.Generator) -> np.ndarray:
    """Share of possessions per matchup: log-normal (a 20x spread), `empty` of them zero."""
    weights = rng.lognormal(0.0, 0.9, names.N_MATCHUPS)
    if empty:
        weights[rng.choice(names.N_MATCHUPS, size=empty, replace=False)] = 0.0
    return weights / weights.sum()


def _side_skills(n: int, mean: float, sd: float, rng: np.random.Generator) -> np.ndarray:
    """(n, 8) summed skill per archetype for five players drawn per possession."""
    archetypes = rng.choice(names.N_ARCHETYPES, size=(n, 5), p=ARCHETYPE_SHARES / ARCHETYPE_SHARES.sum())
    skills = rng.normal(mean, sd, size=(n, 5))
    z = np.zeros((n, names.N_ARCHETYPES))
    np.add.at(z, (np.repeat(np.arange(n), 5), archetypes.ravel()), skills.ravel())
    return z


def _check_season_args(n_possessions: int, empty_matchups: int) -> None:
    if n_possessions < 1:
        raise ConfigError(f"n_possessions must be at least 1, got {n_possessions}")
    if not 0 <= empty_matchups < names.N_MATCHUPS:
        raise ConfigError(f"empty_matchups must lie in 0..{names.N_MATCHUPS - 1}, got {empty_matchups}")


def _possessions(n: int, params: dict, weights: np.ndarray, rng: np.random.Generator, source: str) -> Possessions:
    """`n` possessions with matchups in the proportions `weights`, outcomes from `params`."""
    matchup = rng.permutation(np.repeat(np.arange(names.N_MATCHUPS), rng.multinomial(n, weights)))
    z_off = _side_skills(n, 0.3, 1.8, rng)
    z_def = _side_skills(n, 0.1, 1.2, rng)
    b = np.concatenate([np.asarray(params["beta_0"])[..., None], params["beta_off"], params["beta_def"]], axis=-1)
    y = predict(b, matchup, design_matrix(z_off, z_def)) + rng.normal(0.0, float(params["sigma"]), n)
    return Possessions(y=y, matchup=matchup, z_off=z_off, z_def=z_def, season=None, source=source)


def simulate_season(
    n_possessions: int = DEFAULT_POSSESSIONS,
    model: str = "matchup",
    seed: int = DEFAULT_SEED,
    empty_matchups: int = 0,
) -> tuple[Possessions, Truth]:
    """Possessions drawn from `model` with parameters drawn once from `seed`."""
    _check_season_args(n_possessions, empty_matchups)
    rng = np.random.default_rng(seed)
    params = _true_params(model, rng)
    weights = _matchup_weights(empty_matchups, rng)
    return _possessions(n_possessions, params, weights, rng, f"simulated:{model}:{seed}"), Truth(model, params)


def iter_season(
    n_possessions: int,
    model: str = "matchup",
    seed: int = DEFAULT_SEED,
    empty_matchups: int = 0,
    chunk: int = 1_000_000,
) -> tuple[Truth, Iterator[Possessions]]:
    """A season too large to hold at once: the truth, and the possessions in chunks of `chunk`.

    The parameters and matchup shares are those `simulate_season` draws from the same seed,
    and a season of at most `chunk` possessions is exactly the same data.
    """
    _check_season_args(n_possessions, empty_matchups)
    rng = np.random.default_rng(seed)
    params = _true_params(model, rng)
    weights = _matchup_weights(empty_matchups, rng)
    source = f"simulated:{model}:{seed}"

    def chunks() -> Iterator[Possessions]:
        for start in range(0, n_possessions, chunk):
            yield _possessions(min(chunk, n_possessions - start), params, weights, rng, source)

    return Truth(model, params), chunks()


def truth_path(data_path: str | Path) -> Path:
    """Where the true parameters of a simulated file are saved: beside it, '<file>.truth.json'."""
    data_path = Path(data_path)
    return data_path.with_name(data_path.name + ".truth.json")


def write_season(data: Possessions, truth: Truth, path: str | Path) -> None:
    """Write the possessions (CSV or Parquet by suffix) and the truth beside them, atomically."""

    path = Path(path)
    frame = data.to_frame("label")
    with atomic_path(path) as tmp:
        if path.suffix.lower() in (".parquet", ".pq"):
            frame.to_parquet(tmp, index=False)
        else:
            frame.to_csv(tmp, index=False)
    with atomic_path(truth_path(path)) as tmp:
        tmp.write_text(json.dumps(truth.to_json(), indent=1))


def write_season_parquet(chunks: Iterable[Possessions], truth: Truth, path: str | Path) -> int:
    """Stream chunks of possessions into one Parquet file (and the truth beside it), atomically;
    memory stays that of one chunk. Returns the number of possessions written."""

    path = Path(path)
    total = 0
    with atomic_path(path) as tmp:
        writer = None
        try:
            for part in chunks:
                table = pa.Table.from_pandas(part.to_frame("label"), preserve_index=False)
                writer = writer or pq.ParquetWriter(tmp, table.schema)
                writer.write_table(table)
                total += len(part)
        finally:
            if writer is not None:
                writer.close()
    with atomic_path(truth_path(path)) as tmp:
        tmp.write_text(json.dumps(truth.to_json(), indent=1))
    return total
