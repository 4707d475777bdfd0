"""The three lineup models (NumPyro), their touched cells and whitened coordinates, and simulated seasons."""
