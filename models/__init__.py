"""The reference Stan files. Their home is this folder; they are installed inside the package as
lineup_numpyro.stan.files (pyproject.toml), so that an installed copy can find them."""
