"""Experiment (issue 18): what one NUTS step costs on this CPU, model against sampler.

Prints microseconds per value-and-gradient of each model's potential (quick_sample_10k's
statistics, 2,000 evaluations inside one compiled loop), and per leapfrog step of NumPyro's
NUTS on a d-dimensional standard normal at a fixed step size (its bookkeeping alone; and
BlackJAX's, when it is installed). One host device: one core.

    python benchmarks/experiments/step_cost/run.py [--data ../shared/data/quick_sample_10k.csv]
"""

from __future__ import annotations

import argparse
import time

from lineup_numpyro.inference.runtime import configure_jax


def _per_call(fn, x, n: int) -> float:  # noqa: ANN001
    import jax

    def loop(x):  # noqa: ANN001, ANN202
        return jax.lax.fori_loop(0, n, lambda i, c: c - 1e-6 * jax.grad(fn)(c), x)

    compiled = jax.jit(loop)
    compiled(x).block_until_ready()
    times = []
    for _ in range(3):
        start = time.perf_counter()
        compiled(x).block_until_ready()
        times.append(time.perf_counter() - start)
    return min(times) / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", default="../shared/data/quick_sample_10k.csv")
    args = parser.parse_args()
    configure_jax("cpu", 1)

    import jax
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist
    from jax.flatten_util import ravel_pytree
    from numpyro.infer import MCMC, NUTS
    from numpyro.infer.util import initialize_model

    from lineup_numpyro.config import Priors
    from lineup_numpyro.data.suffstats import from_file
    from lineup_numpyro.models.cells import Cells
    from lineup_numpyro.models.model import SuffStatsLikelihood, get_model
    from lineup_numpyro.models.whitening import Whitening

    stats = from_file(args.data)
    cells, priors = Cells.from_stats(stats), Priors()
    likelihood = SuffStatsLikelihood.from_stats(stats)
    for label, model in (
        ("simplified", get_model("simplified", None, priors=priors)),
        ("matchup", get_model("matchup", cells, priors=priors)),
        ("hierarchical (whitened)", get_model("hierarchical", cells, Whitening.from_stats(stats, priors.tau), priors)),
        ("hierarchical (non-centred)", get_model("hierarchical", cells, None, priors)),
    ):
        info = initialize_model(jax.random.PRNGKey(0), model, model_args=(likelihood,))
        flat, unravel = ravel_pytree(info.param_info.z)
        cost = _per_call(lambda y, info=info, unravel=unravel: info.potential_fn(unravel(y)), flat, 2000)
        print(f"gradient  {label:28s} {flat.size:4d} parameters  {cost:6.1f} us", flush=True)

    for d in (10, 554):

        def normal(d=d):  # noqa: ANN202
            numpyro.sample("x", dist.Normal(0.0, 1.0).expand([d]).to_event(1))

        kernel = NUTS(normal, step_size=0.1, adapt_step_size=False, adapt_mass_matrix=False, max_tree_depth=5)
        mcmc = MCMC(kernel, num_warmup=0, num_samples=3000, progress_bar=False)
        mcmc.run(jax.random.PRNGKey(0), extra_fields=("num_steps",))
        start = time.perf_counter()
        mcmc.run(jax.random.PRNGKey(1), extra_fields=("num_steps",))
        wall = time.perf_counter() - start
        steps = int(mcmc.get_extra_fields()["num_steps"].sum())
        print(f"NUTS step numpyro   standard normal, d = {d:3d}          {wall / steps * 1e6:6.1f} us", flush=True)
        try:
            import blackjax
        except ImportError:
            continue
        nuts = blackjax.nuts(lambda x: -0.5 * jnp.sum(x**2), step_size=0.1, inverse_mass_matrix=jnp.ones(d),
                             max_num_doublings=5)  # fmt: skip

        def chain(state, key, nuts=nuts):  # noqa: ANN001, ANN202
            def one(s, k):  # noqa: ANN001, ANN202
                s, info = nuts.step(k, s)
                return s, info.num_integration_steps

            return jax.lax.scan(one, state, jax.random.split(key, 3000))

        run = jax.jit(chain)
        state = nuts.init(jnp.full(d, 0.5))
        run(state, jax.random.PRNGKey(0))[1].block_until_ready()
        start = time.perf_counter()
        _, n = run(state, jax.random.PRNGKey(1))
        n.block_until_ready()
        print(f"NUTS step blackjax  standard normal, d = {d:3d}          "
              f"{(time.perf_counter() - start) / int(n.sum()) * 1e6:6.1f} us")  # fmt: skip


if __name__ == "__main__":
    main()
