"""Hierarchical lineup model, 'Gaussian-whitened' parameterisation (self-contained).

Same posterior as the non-centred model of ../shared/MODELS.md:
  beta_0[m]   = mu_0 + tau_0 e_0[m]
  beta_off[m,a] = exp(mu_off[a] + tau_off[a] e_off[m,a]),  beta_def likewise
  e ~ N(0,1), mu_0 ~ N(0,5), mu_off/def ~ N(-4,2), tau ~ N+(0,1), sigma ~ HalfCauchy(2.5).
Work on eta[m,j] = mu_j + tau_j e[m,j] (j = 0 intercept, identity link; j = 1..16 exp link).

plan(stats) builds, from the sufficient statistics only, a Gaussian approximation of each
touched cell's likelihood on the eta scale:  L(eta_mj) ~ N(ehat_mj ; eta_mj, 1/p_mj).
The model then samples (tau, sigma, v, u) and maps them with a triangular affine map:
  mu_j  = M_j(tau_j) + V_j(tau_j)^{1/2} v_j          (the conditional of mu_j given tau_j
                                                     under the approximation, cells integrated out)
  eta_mj = c_mj(mu_j, tau_j) + s_mj(tau_j) u_mj      (the conditional of eta_mj given mu_j, tau_j)
with Jacobian  prod_j V_j^{1/2} * prod_cells s_mj.  Untouched cells are not sampled (e ~ N(0,1)
a posteriori; draw them afterwards).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import jax
import jax.numpy as jnp
import numpyro
import numpyro.distributions as dist
from numpyro.distributions import constraints

M, A, P = 36, 8, 17
LOG_2PI = float(np.log(2 * np.pi))
PRIOR_LOC = np.array([0.0] + [-4.0] * 16)
PRIOR_SD = np.array([5.0] + [2.0] * 16)
IS_EXP = np.arange(P) > 0


class Likelihood(NamedTuple):
    """Exact Gaussian log-likelihood from per-matchup sufficient statistics (as models.SuffStatsLikelihood)."""
    n: jnp.ndarray
    xtx: jnp.ndarray
    xty: jnp.ndarray
    yty: jnp.ndarray

    @classmethod
    def from_stats(cls, stats):
        return cls(*(jnp.asarray(np.asarray(a), dtype=jnp.float64) for a in (stats.n, stats.xtx, stats.xty, stats.yty)))

    def log_likelihood(self, b, sigma):
        b = jnp.broadcast_to(b, self.xty.shape)
        quad = jnp.einsum("mi,mij,mj->m", b, self.xtx, b)
        rss = self.yty - 2.0 * jnp.sum(b * self.xty, axis=-1) + quad
        n = jnp.sum(self.n)
        return -n * jnp.log(sigma) - 0.5 * n * LOG_2PI - jnp.sum(rss) / (2.0 * sigma**2)


class Plan(NamedTuple):
    touched: np.ndarray   # (M, P) bool: X'X diagonal > 0
    rows: np.ndarray      # (K,) matchup index of each touched cell (row-major order)
    cols: np.ndarray      # (K,) population index of each touched cell
    p: np.ndarray         # (K,) plug-in data precision on the eta scale (0 = plain non-centred)
    ehat: np.ndarray      # (K,) plug-in data location on the eta scale
    whiten_mu: bool = True  # False: mu_j sampled directly (ablation)
    method: str = "whiten"  # "whiten" or "nc" (plain non-centred baseline)
    soft: np.ndarray = None  # (K,) bool: exp-link cell with p = 0 gets the softplus knee
    logk: np.ndarray = None  # (K,) log of the knee k (beta scale)
    tau_map: str = "exp"  # "quantile": tau = F^-1(Phi(x)), x ~ N(0,1) (prior-whitened scale)


def _link(eta):
    return np.where(IS_EXP, np.exp(np.minimum(eta, 30.0)), eta)


def _fit_cell_approx(xtx, xty, s2, eta0, r, iters=200):
    """Penalised Gauss-Newton fit of one matchup on the eta scale; returns eta*, GN likelihood precision."""
    T = np.diag(xtx) > 0
    A_ = xtx[np.ix_(T, T)] / s2
    g_ = xty[T] / s2
    isexp = IS_EXP[T]
    e0, rr = eta0[T], r[T]

    def obj(eta):
        b = np.where(isexp, np.exp(np.minimum(eta, 30.0)), eta)
        return 0.5 * b @ A_ @ b - b @ g_ + 0.5 * np.sum((eta - e0) ** 2 / rr**2)

    eta = e0.copy()
    f = obj(eta)
    for _ in range(iters):
        b = np.where(isexp, np.exp(eta), eta)
        J = np.where(isexp, b, 1.0)
        grad = J * (A_ @ b - g_) + (eta - e0) / rr**2
        H = J[:, None] * A_ * J[None, :] + np.diag(1.0 / rr**2)
        step = np.linalg.solve(H, grad)
        t = 1.0
        while t > 1e-8:
            new = eta - t * step
            fn = obj(new)
            if fn <= f:
                break
            t *= 0.5
        if f - fn < 1e-12 * (1 + abs(f)):
            eta, f = new, fn
            break
        eta, f = new, fn
    b = np.where(isexp, np.exp(eta), eta)
    J = np.where(isexp, b, 1.0)
    Hlik = J[:, None] * A_ * J[None, :]
    return T, eta, Hlik, e0, rr


def plan(stats, method: str = "whiten", whiten_mu: bool = True, r_int: float = 0.25, r_arch: float = 1.0,
         p_min: float = 0.0, clip_k: float = 0.0, knee: float = 0.0, p_soft: float = 1e-300, knee_gap: float = -np.inf,
         tau_map: str = "exp") -> Plan:
    """Treatment of every cell, from n, X'X, X'y, y'y only.

    1. Pooled ridge least squares over all matchups -> b_pool, residual variance s2.
    2. Per matchup, the touched columns T_m (X'X diagonal > 0) are fitted on the eta scale by
       penalised Gauss-Newton: minimise RSS_m(b(eta))/(2 s2) + sum_j (eta_j - eta0_j)^2/(2 r_j^2),
       eta0 = [b_pool_0, log max(b_pool_j, 0.005)], r = [r_int, r_arch, ...]: eta*_m.
    3. H_m = J X'X J / s2 (J = d b / d eta at eta*): Gauss-Newton likelihood precision.
       Sigma_m = (H_m + diag(1/r^2))^{-1};
       p_mj = max(1/Sigma_m,jj - 1/r_j^2, 0)   (marginal data precision of cell (m,j)),
       ehat_mj = (eta*_mj / Sigma_m,jj - eta0_j / r_j^2) / p_mj   (its data location).
    """
    xtx, xty, yty, n = (np.asarray(a, dtype=np.float64) for a in (stats.xtx, stats.xty, stats.yty, stats.n))
    d = np.einsum("mjj->mj", xtx)
    touched = d > 0
    rows, cols = np.nonzero(touched)
    K = len(rows)
    p = np.zeros((M, P)); ehat = np.zeros((M, P))
    if method in ("whiten", "signed"):
        tot, ty = xtx.sum(0), xty.sum(0)
        b_pool = np.linalg.solve(tot + 1e-6 * np.trace(tot) / P * np.eye(P) + 1e-12 * np.eye(P), ty)
        s2 = max((yty.sum() - 2 * b_pool @ ty + b_pool @ tot @ b_pool) / max(n.sum(), 1.0), 1e-6)
        eta0 = np.concatenate([[b_pool[0]], np.log(np.maximum(b_pool[1:], 0.005))])
        r = np.array([r_int] + [r_arch] * 16)
        for m in range(M):
            if not touched[m].any():
                continue
            T, eta_s, H, e0, rr = _fit_cell_approx(xtx[m], xty[m], s2, eta0, r)
            Sig = np.linalg.inv(H + np.diag(1.0 / rr**2))
            sjj = np.diag(Sig)
            pm = np.maximum(1.0 / sjj - 1.0 / rr**2, 0.0)
            ok = pm > 1e-8
            eh = np.where(ok, (eta_s / sjj - e0 / rr**2) / np.where(ok, pm, 1.0), eta_s)
            lim = clip_k / np.sqrt(np.where(ok, pm, 1.0))
            eh = eta_s + np.clip(eh - eta_s, -lim, lim)
            ok &= pm >= p_min
            p[m, T] = np.where(ok, pm, 0.0)
            ehat[m, T] = eh
    pk = p[rows, cols]
    s2_ = s2 if method != "nc" else 0.31
    soft = IS_EXP[cols] & (pk < p_soft) & (knee > 0)
    logk = np.log(max(knee, 1e-300) * np.sqrt(s2_ / d[rows, cols]))
    if method != "nc":
        logk = np.maximum(logk, eta0[cols] + knee_gap)
    return Plan(touched, rows, cols, pk, ehat[rows, cols], whiten_mu, method, soft, logk, tau_map)


def halfnormal_of_standard(x):
    """tau = F^-1(Phi(x)) for F the N+(0,1) cdf: x ~ N(0,1) gives tau ~ N+(0,1) exactly."""
    from jax.scipy.special import erfinv, ndtr, ndtri
    neg = x < 0
    xn = jnp.maximum(jnp.where(neg, x, -1.0), -30.0)
    xp = jnp.where(neg, 1.0, x)
    return jnp.where(neg, jnp.sqrt(2.0) * erfinv(ndtr(xn)), -ndtri(0.5 * ndtr(-xp)))


def _improper(shape):
    return dist.ImproperUniform(constraints.real_vector, (), shape)


def hierarchical(likelihood, plan: Plan):
    if plan.method == "signed":
        # tau = |z|, z ~ N(0,1): the half-normal prior without its boundary at 0
        zt = numpyro.sample("tau_signed", dist.Normal(0.0, 1.0).expand([P]).to_event(1))
        tau = numpyro.deterministic("tau", jnp.abs(zt))
    elif plan.tau_map == "quantile":
        xt = numpyro.sample("tau_x", dist.Normal(0.0, 1.0).expand([P]).to_event(1))
        tau = numpyro.deterministic("tau", halfnormal_of_standard(xt))
        zt = tau
    else:
        tau = numpyro.sample("tau", dist.HalfNormal(1.0).expand([P]).to_event(1))
        zt = tau
    sigma = numpyro.sample("sigma", dist.HalfCauchy(2.5))
    rows, cols = plan.rows, plan.cols
    K = len(rows)
    if plan.method == "nc":
        mu = numpyro.sample("mu", dist.Normal(PRIOR_LOC, PRIOR_SD).to_event(1))
        e = numpyro.sample("e", dist.Normal(0.0, 1.0).expand([K]).to_event(1))
        eta_t = mu[cols] + tau[cols] * e
    else:
        t2 = tau**2
        pk = jnp.asarray(plan.p); ek = jnp.asarray(plan.ehat)
        a = pk * t2[cols]                                   # p tau^2 per cell
        if plan.whiten_mu:
            w = pk / (1.0 + a)                               # 1 / (tau^2 + 1/p)
            prec = 1.0 / PRIOR_SD**2 + jnp.zeros(P).at[cols].add(w)
            mean = (PRIOR_LOC / PRIOR_SD**2 + jnp.zeros(P).at[cols].add(w * ek)) / prec
            v = numpyro.sample("v", _improper((P,)))
            mu = mean + v / jnp.sqrt(prec)
            logj = -0.5 * jnp.sum(jnp.log(prec))
            numpyro.factor("mu_prior", dist.Normal(PRIOR_LOC, PRIOR_SD).log_prob(mu).sum() + logj)
        else:
            mu = numpyro.sample("mu", dist.Normal(PRIOR_LOC, PRIOR_SD).to_event(1))
        u = numpyro.sample("u", _improper((K,)))
        s = zt[cols] / jnp.sqrt(1.0 + a)
        c = (mu[cols] + a * ek) / (1.0 + a)
        eta_t = c + s * u
        logj = jnp.sum(jnp.log(jnp.abs(s)))
        if plan.method == "signed":
            zc = pk * zt[cols] * (ek - mu[cols]) / (1.0 + a) + u / jnp.sqrt(1.0 + a)
            numpyro.factor("cell_prior", jnp.sum(-0.5 * zc**2 - 0.5 * LOG_2PI - 0.5 * jnp.log1p(a)))
            eta = jnp.zeros((M, P)).at[rows, cols].set(eta_t)
            numpyro.deterministic("mu_", mu)
            b = jnp.where(jnp.asarray(IS_EXP), jnp.exp(eta), eta)
            b = jnp.where(jnp.asarray(plan.touched), b, 0.0)
            numpyro.factor("lik", likelihood.log_likelihood(b, sigma))
            return
        if plan.soft is not None and plan.soft.any():
            # eta = log k + log softplus(t - log k): exp link below the knee k, linear in beta above
            sm = jnp.asarray(plan.soft); lk = jnp.asarray(plan.logk)
            x = eta_t - lk
            lsp = jnp.where(x < -30.0, x, jnp.log(jax.nn.softplus(jnp.maximum(x, -30.0))))
            eta_soft = lk + lsp
            logj = logj + jnp.sum(jnp.where(sm, jax.nn.log_sigmoid(x) - lsp, 0.0))
            eta_t = jnp.where(sm, eta_soft, eta_t)
        if plan.soft is not None and plan.soft.any():
            cp = jnp.sum(dist.Normal(mu[cols], tau[cols]).log_prob(eta_t))
        else:
            # (eta - mu) / tau in closed form: eta - mu cancels catastrophically when tau is tiny
            sq = jnp.sqrt(1.0 + a)
            zc = pk * tau[cols] * (ek - mu[cols]) / (1.0 + a) + u / sq
            cp = jnp.sum(-jnp.log(tau[cols]) - 0.5 * zc**2 - 0.5 * LOG_2PI)
        numpyro.factor("cell_prior", cp + logj)
    numpyro.deterministic("mu_", mu)
    eta = jnp.zeros((M, P)).at[rows, cols].set(eta_t)
    b = jnp.where(jnp.asarray(IS_EXP), jnp.exp(eta), eta)
    b = jnp.where(jnp.asarray(plan.touched), b, 0.0)
    numpyro.factor("lik", likelihood.log_likelihood(b, sigma))


def recover(samples: dict, plan: Plan, rng=None) -> dict:
    """mu (.., 17), tau (.., 17), sigma, e (.., 36, 17), beta (.., 36, 17) from the sites.

    Touched cells: eta from u (or e); untouched cells: e ~ N(0,1) drawn here (exact conditional).
    beta[..., 0] = eta (intercept), beta[..., 1:] = exp(eta).
    """
    tau = np.asarray(samples["tau"]); mu = np.asarray(samples["mu_"])
    lead = tau.shape[:-1]
    rows, cols = plan.rows, plan.cols
    if plan.method == "nc":
        e_t = np.asarray(samples["e"])
        eta_t = mu[..., cols] + tau[..., cols] * e_t
    else:
        a = plan.p * tau[..., cols] ** 2
        zt = np.asarray(samples.get("tau_signed", tau))
        eta_t = (mu[..., cols] + a * plan.ehat) / (1 + a) + zt[..., cols] / np.sqrt(1 + a) * np.asarray(samples["u"])
        if plan.soft is not None and plan.soft.any():
            x = eta_t - plan.logk
            lsp = np.where(x < -30.0, x, np.log(np.logaddexp(0.0, np.maximum(x, -30.0))))
            eta_t = np.where(plan.soft, plan.logk + lsp, eta_t)
        e_t = (eta_t - mu[..., cols]) / tau[..., cols]
    rng = rng or np.random.default_rng(0)
    e = rng.standard_normal(lead + (M, P))
    e[..., rows, cols] = e_t
    eta = mu[..., None, :] + tau[..., None, :] * e
    eta[..., rows, cols] = eta_t
    beta = np.where(IS_EXP, np.exp(eta), eta)
    return {"mu": mu, "tau": tau, "sigma": np.asarray(samples["sigma"]), "e": e, "beta": beta, "eta": eta}


# Winning settings (results table in the report): plan(stats) with its defaults
# (clip_k = 0 -> ehat = eta*, p_min = 0, no knee), and NUTS started near the whitened centre:
#   NUTS(hierarchical, target_accept_prob=0.9, init_strategy=numpyro.infer.init_to_uniform(radius=0.5))
# Options knee/p_soft/knee_gap/p_min/clip_k > 0 are failed variants, kept off by default.
