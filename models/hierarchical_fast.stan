// Hierarchical lineup model, the same posterior as hierarchical.stan, written for speed: the
// Gaussian likelihood through per-matchup sufficient statistics (../shared/MODELS.md). A fair
// Stan baseline for benchmarks and CI's posterior parity; not a file of the original project.
// The priors are data (see hierarchical.stan).
functions {
  // The whitened coordinates of lineup_numpyro/models/whitening.py: given tau, an exact triangular change
  // of variables from (z_mu, z) to (mu, e), built from each touched cell's plug-in data precision p
  // and location ehat on the link scale (beta_0; log beta_off, log beta_def). Any p >= 0 gives the
  // same posterior; p = 0 is the plain non-centred form. a[k]: the population of cell k.
  vector mu_precision(vector tau, vector p, array[] int a, real sd) {
    vector[rows(tau)] prec = rep_vector(inv_square(sd), rows(tau));
    for (k in 1:rows(p)) prec[a[k]] += p[k] / (1 + p[k] * square(tau[a[k]]));
    return prec;
  }
  vector unwhiten_mu(vector z_mu, vector tau, vector p, vector ehat, array[] int a, real loc, real sd) {
    vector[rows(tau)] prec = mu_precision(tau, p, a, sd);
    vector[rows(tau)] num = rep_vector(loc * inv_square(sd), rows(tau));
    for (k in 1:rows(p)) num[a[k]] += p[k] * ehat[k] / (1 + p[k] * square(tau[a[k]]));
    return num ./ prec + z_mu ./ sqrt(prec);
  }
  // e = (eta - mu) / tau in closed form (no cancellation when tau is tiny)
  vector unwhiten_e(vector z, vector mu, vector tau, vector p, vector ehat, array[] int a) {
    vector[rows(z)] t = tau[a];
    vector[rows(z)] s = 1 + p .* square(t);
    return p .* t .* (ehat - mu[a]) ./ s + z ./ sqrt(s);
  }
  // tau = F^-1(Phi(z)), F the N+(0, 1) distribution function (lineup_numpyro/models/whitening.py):
  // z ~ N(0, 1) gives tau ~ N+(0, 1) exactly (for z < -5 tau is good to about 1e-16 absolute,
  // not relative as in NumPyro: a difference far below what a posterior can show)
  vector half_normal_from_standard(vector z) {
    vector[rows(z)] tau;
    for (i in 1:rows(z)) {
      if (z[i] < 0) tau[i] = sqrt2() * inv_erfc(1 - Phi(z[i]));
      else tau[i] = -inv_Phi(0.5 * Phi(-z[i]));
    }
    return tau;
  }
  real whitening_log_jacobian(vector tau, vector p, array[] int a, real sd) {
    return -0.5 * sum(log(mu_precision(tau, p, a, sd))) - 0.5 * sum(log1p(p .* square(tau[a])));
  }
}
data {
  int<lower=1> M;                 // matchups (36)
  int<lower=1> K;                 // archetypes (8)
  vector<lower=0>[M] n;           // possessions per matchup
  array[M] matrix[2 * K + 1, 2 * K + 1] xtx;   // X_m' X_m, X rows = [1, z_off, -z_def]
  array[M] vector[2 * K + 1] xty;              // X_m' y_m
  vector[M] yty;                               // y_m' y_m
  // The cells the data touch (lineup_numpyro/models/cells.py): only these are parameters; a cell whose
  // design column is 0 in every possession of its matchup does not enter the likelihood, so
  // its posterior is its prior and it is drawn in generated quantities (exact, not an approximation).
  int<lower=0> K_0;                              // touched intercepts
  array[K_0] int<lower=1, upper=M> m_0;          // their matchups
  int<lower=0> K_off;                            // touched offensive cells
  array[K_off] int<lower=1, upper=M> m_off;
  array[K_off] int<lower=1, upper=K> a_off;
  int<lower=0> K_def;                            // touched defensive cells
  array[K_def] int<lower=1, upper=M> m_def;
  array[K_def] int<lower=1, upper=K> a_def;
  // whitening.py: each touched cell's plug-in data precision and location on the link scale
  vector<lower=0>[K_0] p_0;
  vector[K_0] ehat_0;
  vector<lower=0>[K_off] p_off;
  vector[K_off] ehat_off;
  vector<lower=0>[K_def] p_def;
  vector[K_def] ehat_def;
  // priors (lineup_numpyro.config.Priors; defaults 5, -4, 2, 1, 2.5)
  real<lower=0> prior_beta_0;     // mu_0 ~ N(0, prior_beta_0)
  real prior_mu_loc;              // mu_off[a], mu_def[a] ~ N(prior_mu_loc, prior_mu_sd)
  real<lower=0> prior_mu_sd;
  real<lower=0> prior_tau;        // tau_0, tau_off[a], tau_def[a] ~ N+(0, prior_tau)
  real<lower=0> prior_sigma;      // sigma ~ C+(0, prior_sigma)
}
transformed data {
  array[K_0] int a_0 = rep_array(1, K_0);        // one intercept population
}
parameters {
  real z_tau_0;                  // whitened coordinates of tau, mu and the touched cells' e
  real z_mu_0;
  vector[K] z_tau_off;
  vector[K] z_mu_off;
  vector[K] z_tau_def;
  vector[K] z_mu_def;
  vector[K_0] z_0_data;
  vector[K_off] z_off_data;
  vector[K_def] z_def_data;
  real<lower=0> sigma;
}
transformed parameters {
  real<lower=0> tau_0 = prior_tau * half_normal_from_standard([z_tau_0]')[1];
  vector<lower=0>[K] tau_off = prior_tau * half_normal_from_standard(z_tau_off);
  vector<lower=0>[K] tau_def = prior_tau * half_normal_from_standard(z_tau_def);
  real mu_0 = unwhiten_mu([z_mu_0]', [tau_0]', p_0, ehat_0, a_0, 0, prior_beta_0)[1];
  vector[K] mu_off = unwhiten_mu(z_mu_off, tau_off, p_off, ehat_off, a_off, prior_mu_loc, prior_mu_sd);
  vector[K] mu_def = unwhiten_mu(z_mu_def, tau_def, p_def, ehat_def, a_def, prior_mu_loc, prior_mu_sd);
  vector[K_0] e_0_data = unwhiten_e(z_0_data, [mu_0]', [tau_0]', p_0, ehat_0, a_0);  // touched cells' deviations
  vector[K_off] e_off_data = unwhiten_e(z_off_data, mu_off, tau_off, p_off, ehat_off, a_off);
  vector[K_def] e_def_data = unwhiten_e(z_def_data, mu_def, tau_def, p_def, ehat_def, a_def);
}
model {
  real rss = 0;
  vector[K_0] b0_data = mu_0 + tau_0 * e_0_data;
  vector[K_off] bo_data = exp(mu_off[a_off] + tau_off[a_off] .* e_off_data);
  vector[K_def] bd_data = exp(mu_def[a_def] + tau_def[a_def] .* e_def_data);
  vector[M] b0 = rep_vector(0, M);             // untouched cells: 0 (their columns are 0)
  matrix[M, K] bo = rep_matrix(0, M, K);
  matrix[M, K] bd = rep_matrix(0, M, K);
  for (k in 1:K_0) b0[m_0[k]] = b0_data[k];
  for (k in 1:K_off) bo[m_off[k], a_off[k]] = bo_data[k];
  for (k in 1:K_def) bd[m_def[k], a_def[k]] = bd_data[k];
  target += normal_lpdf(mu_0 | 0, prior_beta_0) + normal_lpdf(mu_off | prior_mu_loc, prior_mu_sd)
            + normal_lpdf(mu_def | prior_mu_loc, prior_mu_sd);
  z_tau_0 ~ std_normal();         // tau ~ N+(0, prior_tau) through prior_tau * half_normal_from_standard
  z_tau_off ~ std_normal();
  z_tau_def ~ std_normal();
  target += std_normal_lpdf(e_0_data) + std_normal_lpdf(e_off_data) + std_normal_lpdf(e_def_data);
  target += whitening_log_jacobian([tau_0]', p_0, a_0, prior_beta_0)
            + whitening_log_jacobian(tau_off, p_off, a_off, prior_mu_sd)
            + whitening_log_jacobian(tau_def, p_def, a_def, prior_mu_sd);
  sigma ~ cauchy(0, prior_sigma);
  for (m in 1:M) {
    vector[2 * K + 1] b = append_row(b0[m], append_row(bo[m]', bd[m]'));
    rss += yty[m] - 2 * dot_product(b, xty[m]) + quad_form(xtx[m], b);
  }
  target += -sum(n) * log(sigma) - rss / (2 * square(sigma));
}
generated quantities {
  // every cell: the sampled deviation where the data touch it, e ~ N(0, 1) elsewhere (exact:
  // an untouched e is N(0, 1) given everything else), and beta from this draw's mu, tau
  vector[M] e_0 = to_vector(normal_rng(rep_vector(0, M), 1));
  matrix[M, K] e_off = to_matrix(normal_rng(rep_vector(0, M * K), 1), M, K);
  matrix[M, K] e_def = to_matrix(normal_rng(rep_vector(0, M * K), 1), M, K);
  vector[M] beta_0;
  matrix[M, K] beta_off;
  matrix[M, K] beta_def;
  for (k in 1:K_0) e_0[m_0[k]] = e_0_data[k];
  for (k in 1:K_off) e_off[m_off[k], a_off[k]] = e_off_data[k];
  for (k in 1:K_def) e_def[m_def[k], a_def[k]] = e_def_data[k];
  beta_0 = mu_0 + tau_0 * e_0;
  beta_off = exp(rep_matrix(mu_off', M) + diag_post_multiply(e_off, tau_off));
  beta_def = exp(rep_matrix(mu_def', M) + diag_post_multiply(e_def, tau_def));
}
