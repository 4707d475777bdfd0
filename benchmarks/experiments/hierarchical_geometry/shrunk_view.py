"""RULE=shrunk[:tau]: re-place each exp-link cell's Gaussian view at its shrunken point.

The package's view (p, ehat) of a cell is taken at the cell's own fit; on the log scale an
exp-link cell's likelihood is exp(-a/2 (e^eta - b)^2) (a, b: its Gaussian on the beta scale,
given the matchup's other cells at their fit), whose curvature a e^{2 eta} depends on where it is
taken. A cell far above its population (the outlier of multi's column 4) gets too much precision,
a cell that only bounds beta from above (b <= 0) gets an arbitrary location. Here the view is
taken at eta*, the mode of that likelihood times N(mu_j, tau^2) with mu_j the pooled fit's log
value (whitening's `start`), tau the prior's scale: p* = a e^{2 eta*} (Gauss-Newton curvature),
ehat* = eta* - 1 + b e^{-eta*} (matching the gradient there). The map is exact for any (p, ehat).

It patches the model's internals as they were at commit fcb70cc; they have since been
restructured, so run it there: `git worktree add /tmp/hg fcb70cc`, then from /tmp/hg.
"""
import numpy as np
from lineup_numpyro.models import whitening as W


def _fit(a, g, exp_link, start, ridge_sd, iterations=200):
    """The package's damped Gauss-Newton fit of one matchup (eta at the ridge'd optimum)."""
    beta = lambda eta: np.where(exp_link, np.exp(np.minimum(eta, 30.0)), eta)
    obj = lambda eta: 0.5 * beta(eta) @ a @ beta(eta) - beta(eta) @ g + 0.5 * np.sum(((eta - start) / ridge_sd) ** 2)
    eta, f = start.copy(), obj(start)
    for _ in range(iterations):
        b = beta(eta); jac = np.where(exp_link, b, 1.0)
        grad = jac * (a @ b - g) + (eta - start) / ridge_sd**2
        hess = jac[:, None] * a * jac[None, :] + np.diag(ridge_sd**-2.0)
        step, t = np.linalg.solve(hess, grad), 1.0
        while True:
            new = eta - t * step; f_new = obj(new)
            if f_new <= f or t < 1e-8: break
            t *= 0.5
        done = f - f_new < 1e-12 * (1 + abs(f))
        if f_new <= f: eta, f = new, f_new
        if done: break
    return beta(eta)


def shrunk(stats, w, tau=1.0):
    xtx, xty = np.asarray(stats.xtx, float), np.asarray(stats.xty, float)
    pooled, s2 = W._pooled_fit(stats)
    start = np.concatenate([[pooled[0]], np.log(np.maximum(pooled[1:], W.SMALLEST_EFFECT))])
    prec, loc = w.precision.copy(), w.location.copy()
    grid = np.linspace(-25.0, 5.0, 3001)
    for m in range(W.M):
        t = np.diag(xtx[m]) > 0
        if not t.any(): continue
        A, g = xtx[m][np.ix_(t, t)] / s2, xty[m, t] / s2
        bfit = _fit(A, g, W.EXP_LINK[t], start[t], W.RIDGE_SD[t])
        for i, j in enumerate(np.flatnonzero(t)):
            if j == 0: continue
            a = A[i, i]; b = (g[i] - A[i] @ bfit + a * bfit[i]) / a  # conditional Gaussian on beta
            lp = -0.5 * a * (np.exp(grid) - b) ** 2 - 0.5 * ((grid - start[j]) / tau) ** 2
            e = grid[np.argmax(lp)]
            for _ in range(30):  # Newton refine on the log posterior (GN curvature)
                x = np.exp(e); d1 = -a * x * (x - b) - (e - start[j]) / tau**2; d2 = a * x * x + 1 / tau**2
                e = e + d1 / d2
            x = np.exp(e)
            prec[m, j] = a * x * x; loc[m, j] = e - 1.0 + b / x
    return W.Whitening(prec, loc)
