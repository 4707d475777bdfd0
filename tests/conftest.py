"""Shared fixtures. JAX is configured here, before any test touches it, with one host
device per chain so that 'parallel' chains really run in parallel."""

from __future__ import annotations

import gc
import os
import tempfile
from pathlib import Path

import jax
import pytest

from lineup_numpyro.inference.runtime import CACHE_ENV, configure_jax

# compiled programs go to a cache of the tests' own (shared by the xdist workers and by the
# CLI subprocesses the tests start), not to the user's
os.environ.setdefault(CACHE_ENV, str(Path(tempfile.gettempdir()) / f"lineup-numpyro-tests-{os.getuid()}" / "jax"))
CHAINS = 4
configure_jax("cpu", chains=CHAINS)
jax.devices()  # start the backend now, so no later configure_jax call can change it

SHARED_DATA = Path(os.environ.get("LINEUP_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data beside the repository (CI has it there)."""
    if not (SHARED_DATA / "quick_sample_10k.csv").exists():
        pytest.fail(f"real data not found in {SHARED_DATA}; set LINEUP_SHARED_DATA")
    return SHARED_DATA


@pytest.fixture(autouse=True)
def _free_compiled_programs():
    """Drop JAX's compiled programs after each test. Each XLA CPU executable holds memory
    mappings until it is freed, and the suite compiles thousands: in one process they pass
    the kernel's vm.max_map_count (65,530) and XLA aborts mid-compile."""
    yield
    jax.clear_caches()
    gc.collect()


@pytest.fixture(scope="session")
def simulated_season(tmp_path_factory):
    """make(possessions, model, seed, empty_matchups) -> a simulated season written to CSV (truth
    beside it), once per session for each set of arguments. Tests that change the file copy it."""
    from lineup_numpyro.models.simulate import simulate_season, write_season

    made: dict[tuple, Path] = {}

    def make(possessions: int, model: str = "matchup", seed: int = 0, empty_matchups: int = 0) -> Path:
        key = (possessions, model, seed, empty_matchups)
        if key not in made:
            path = tmp_path_factory.mktemp("season") / f"{model}_{possessions}_{seed}_{empty_matchups}.csv"
            data, truth = simulate_season(possessions, model=model, seed=seed, empty_matchups=empty_matchups)
            write_season(data, truth, path)
            made[key] = path
        return made[key]

    return make


@pytest.fixture(scope="module")
def seasons():
    """Statistics of three simulated 2,000-possession seasons (seeds 1-3, two empty matchups each):
    the data sets of the batched-engine tests (test_batched.py, test_chees.py)."""
    from lineup_numpyro.data.suffstats import SuffStats
    from lineup_numpyro.models.simulate import simulate_season

    return [
        SuffStats.from_possessions(simulate_season(2_000, model="matchup", seed=seed, empty_matchups=2)[0])
        for seed in (1, 2, 3)
    ]
