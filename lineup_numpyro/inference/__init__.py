"""NUTS with checkpoints, the optax approximations, JAX set-up, and draws summarised."""
