// Hierarchical lineup model: partial pooling toward league-wide archetype effects, non-centred.
// Written from ../shared/MODELS.md §3 (the original project had no such file):
//   beta_0[m] = mu_0 + tau_0 e_0[m]
//   beta_off[m,a] = exp(mu_off[a] + tau_off[a] e_off[m,a]), likewise beta_def
//   e ~ N(0, 1); mu_0 ~ N(0, 5); tau_0 ~ N+(0, 1); mu_off[a], mu_def[a] ~ N(-4, 2);
//   tau_off[a], tau_def[a] ~ N+(0, 1); sigma ~ C+(0, 2.5)
// The same posterior, with only the touched cells' deviations as parameters (see data).
data {
  int<lower=1> N;                 // possessions
  int<lower=1> M;                 // matchups (36)
  int<lower=1> K;                 // archetypes (8)
  vector[N] y;
  array[N] int<lower=1, upper=M> matchup;   // matchup_id + 1
  matrix[N, K] z_off;
  matrix[N, K] z_def;
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
  for (i in 1:N) {
    int m = matchup[i];
    y[i] ~ normal(b0[m] + z_off[i] * bo[m]' - z_def[i] * bd[m]', sigma);
  }
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
