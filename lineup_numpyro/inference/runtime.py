"""JAX start-up settings that must be made before the first JAX operation.

XLA fixes the number of CPU devices when its backend starts; chains run in parallel only
if there are at least as many devices as chains. Call `configure_jax` first thing (the CLI
does); afterwards it can only report what it could not change.
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path

import jax
import numpyro
from jax._src import xla_bridge

from lineup_numpyro.config import default_host_devices
from lineup_numpyro.errors import ConfigError

# JAX's persistent compilation cache: on by default in the user's cache directory, moved by
# LINEUP_NUMPYRO_JAX_CACHE=DIR, turned off by LINEUP_NUMPYRO_JAX_CACHE=off.
CACHE_ENV = "LINEUP_NUMPYRO_JAX_CACHE"
CACHE_OFF = ("off", "0", "false", "no", "none")
# A size bound makes JAX take a file lock around every cache read and write (without one,
# jax 0.10.2 writes entries in place and reads them unlocked), and keeps the cache from
# growing without end: least recently used programs go first.
CACHE_MAX_BYTES = 2 * 1024**3


def configure_jax(platform: str = "cpu", chains: int = 4, host_devices: int | None = None) -> None:
    """Select the platform and (on CPU) one host device per core and at least one per chain.

    Compiled programs are kept in JAX's persistent compilation cache (`compilation_cache_dir`),
    so a second run of a model on data of the same shape compiles nothing.
    """
    jax.config.update("jax_enable_x64", True)
    cache = compilation_cache_dir()
    if cache is not None:
        jax.config.update("jax_compilation_cache_dir", str(cache))
        jax.config.update("jax_compilation_cache_max_size", CACHE_MAX_BYTES)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
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
        try:  # start the backend now: a missing GPU is the user's to fix, before any file is written
            jax.devices()
        except Exception as exc:  # JAX raises RuntimeError, or a bare AssertionError, without one
            raise ConfigError(
                f"--platform gpu: no usable GPU ({type(exc).__name__}: {str(exc) or 'JAX found no CUDA backend'}); "
                "install the CUDA build of JAX (see runpod/) or use --platform cpu"
            ) from None
    else:
        raise ConfigError(f"unknown platform {platform!r}; expected 'cpu' or 'gpu'")


def compilation_cache_dir() -> Path | None:
    """Where compiled programs are kept: LINEUP_NUMPYRO_JAX_CACHE if set (None if it says off),
    else lineup-numpyro/jax in the user's cache directory (XDG_CACHE_HOME, else ~/.cache)."""
    value = os.environ.get(CACHE_ENV, "").strip()
    if value.lower() in CACHE_OFF:
        return None
    if value:
        return Path(value).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "lineup-numpyro" / "jax"


def _requested_host_devices() -> int:
    """The host device count an earlier call (or the user's XLA_FLAGS) asked for, else 0."""
    match = re.search(r"--xla_force_host_platform_device_count=(\d+)", os.environ.get("XLA_FLAGS", ""))
    return int(match.group(1)) if match else 0


def device_summary() -> dict:
    """What JAX is running on, for the run record."""
    devices = jax.devices()
    return {"platform": devices[0].platform, "device_kind": devices[0].device_kind, "count": len(devices)}
