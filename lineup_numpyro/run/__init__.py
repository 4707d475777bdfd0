"""A training run and its run directory."""
