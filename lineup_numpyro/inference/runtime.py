"""JAX start-up settings that must be made before the first JAX operation.

XLA fixes the number of CPU devices when its backend starts; chains run in parallel only
if there are at least as many devices as chains. Call `configure_jax` first thing (the CLI
does); afterwards it can only report what it could not change.
"""

from __future__ import annotations

import os
import re
import warnings

import jax
import numpyro
from jax._src import xla_bridge

from lineup_numpyro.config import default_host_devices
from lineup_numpyro.errors import ConfigError

CACHE_ENV = "LINEUP_NUMPYRO_JAX_CACHE"  # opt-in: a directory for JAX's persistent compilation cache


def configure_jax(platform: str = "cpu", chains: int = 4, host_devices: int | None = None) -> None:
    """Select the platform and (on CPU) one host device per core and at least one per chain.

    With LINEUP_NUMPYRO_JAX_CACHE set to a directory, compiled programs are kept there (JAX's
    persistent compilation cache), so checkpointed chunks and later runs skip most of XLA's
    compilation. It is opt-in: with jax 0.10.2 one of our test runs crashed (SIGSEGV) while
    JAX wrote an executable to that cache.
    """
    jax.config.update("jax_enable_x64", True)
    cache = os.environ.get(CACHE_ENV)
    if cache:
        jax.config.update("jax_compilation_cache_dir", cache)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
    if xla_bridge.backends_are_initialized():
        if platform == "cpu" and jax.local_device_count() < chains:
            warnings.warn(
                f"JAX started before configure_jax: {jax.local_device_count()} device(s) for {chains} "
                "chains, so 'parallel' chains will run one after another",
                RuntimeWarning,
                stacklevel=2,
            )
        return
    if platform == "cpu":
        wanted = host_devices or default_host_devices(chains)
        numpyro.set_host_device_count(max(wanted, _requested_host_devices()))
        jax.config.update("jax_platforms", "cpu")
    elif platform == "gpu":
        jax.config.update("jax_platforms", "cuda")
    else:
        raise ConfigError(f"unknown platform {platform!r}; expected 'cpu' or 'gpu'")


def _requested_host_devices() -> int:
    """The host device count an earlier call (or the user's XLA_FLAGS) asked for, else 0."""
    match = re.search(r"--xla_force_host_platform_device_count=(\d+)", os.environ.get("XLA_FLAGS", ""))
    return int(match.group(1)) if match else 0


def device_summary() -> dict:
    """What JAX is running on, for the run record."""
    devices = jax.devices()
    return {"platform": devices[0].platform, "device_kind": devices[0].device_kind, "count": len(devices)}
