// Hierarchical lineup model, the same posterior as hierarchical.stan, written for speed: the
// Gaussian likelihood through per-matchup sufficient statistics (../shared/MODELS.md). A fair
// Stan baseline for benchmarks and CI's posterior parity; not a file of the original project.
data {
  int<lower=1> M;                 // matchups (36)
  int<lower=1> K;                 // archetypes (8)
  vector<lower=0>[M] n;           // possessions per matchup
  array[M] matrix[2 * K + 1, 2 * K + 1] xtx;   // X_m' X_m, X rows = [1, z_off, -z_def]
  array[M] vector[2 * K + 1] xty;              // X_m' y_m
  vector[M] yty;                               // y_m' y_m
  // The cells the data touch (lineup_numpyro/cells.py): only these are parameters; a cell whose
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
}
parameters {
  real mu_0;
  real<lower=0> tau_0;
  vector[K] mu_off;
  vector<lower=0>[K] tau_off;
  vector[K] mu_def;
  vector<lower=0>[K] tau_def;
  vector[K_0] e_0_data;          // standardised deviations of the touched cells
  vector[K_off] e_off_data;
  vector[K_def] e_def_data;
  real<lower=0> sigma;
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
  mu_0 ~ normal(0, 5);
  tau_0 ~ normal(0, 1);
  mu_off ~ normal(-4, 2);
  tau_off ~ normal(0, 1);
  mu_def ~ normal(-4, 2);
  tau_def ~ normal(0, 1);
  e_0_data ~ std_normal();
  e_off_data ~ std_normal();
  e_def_data ~ std_normal();
  sigma ~ cauchy(0, 2.5);
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
