"""Bayesian NBA lineup models (Brill, Hughes & Waldbaum 2023) in JAX/NumPyro.

Importing the package enables float64 in JAX (the sufficient-statistics algebra
needs it) but performs no JAX operation, so `runtime.configure_jax` can still set
the number of host devices afterwards.
"""

import warnings

import jax

jax.config.update("jax_enable_x64", True)
# ArviZ 0.23 announces its 1.0 refactor on import; we pin <0.24, so the notice is noise.
warnings.filterwarnings("ignore", message="ArviZ is undergoing", category=FutureWarning)

__version__ = "0.1.0"
