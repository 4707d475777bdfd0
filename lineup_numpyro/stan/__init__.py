"""The reference Stan files (repo: models/), running them, and parity with the NumPyro models."""
