"""Shared fixtures. JAX is configured here, before any test touches it, with one host
device per chain so that 'parallel' chains really run in parallel."""

from __future__ import annotations

import gc
import os
from pathlib import Path

import jax
import pytest

from lineup_numpyro.runtime import configure_jax

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
