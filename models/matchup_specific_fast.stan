// Matchup-specific lineup model, the same posterior as matchup_specific.stan, written for speed:
// the Gaussian likelihood through per-matchup sufficient statistics (../shared/MODELS.md,
// "The likelihood through sufficient statistics"). A fair, strong Stan baseline for
// benchmarks; not a file of the original project. The prior scales are data (see matchup_specific.stan).
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
  // prior scales (lineup_numpyro.config.Priors; defaults 5, 5, 2.5)
  real<lower=0> prior_beta_0;     // beta_0 ~ N(0, prior_beta_0)
  real<lower=0> prior_beta;       // beta_off, beta_def ~ N+(0, prior_beta)
  real<lower=0> prior_sigma;      // sigma ~ C+(0, prior_sigma)
}
parameters {
  vector[K_0] beta_0_data;
  vector<lower=0>[K_off] beta_off_data;
  vector<lower=0>[K_def] beta_def_data;
  real<lower=0> sigma;
}
model {
  real rss = 0;
  vector[M] b0 = rep_vector(0, M);             // untouched cells: 0 (their columns are 0)
  matrix[M, K] bo = rep_matrix(0, M, K);
  matrix[M, K] bd = rep_matrix(0, M, K);
  for (k in 1:K_0) b0[m_0[k]] = beta_0_data[k];
  for (k in 1:K_off) bo[m_off[k], a_off[k]] = beta_off_data[k];
  for (k in 1:K_def) bd[m_def[k], a_def[k]] = beta_def_data[k];
  beta_0_data ~ normal(0, prior_beta_0);
  beta_off_data ~ normal(0, prior_beta);
  beta_def_data ~ normal(0, prior_beta);
  sigma ~ cauchy(0, prior_sigma);
  for (m in 1:M) {
    vector[2 * K + 1] b = append_row(b0[m], append_row(bo[m]', bd[m]'));
    rss += yty[m] - 2 * dot_product(b, xty[m]) + quad_form(xtx[m], b);
  }
  target += -sum(n) * log(sigma) - rss / (2 * square(sigma));
}
generated quantities {
  // every coefficient: the sampled value where the data touch it, a prior draw elsewhere
  vector[M] beta_0;
  matrix[M, K] beta_off;
  matrix[M, K] beta_def;
  for (m in 1:M) {
    beta_0[m] = normal_rng(0, prior_beta_0);
    for (a in 1:K) {
      beta_off[m, a] = abs(normal_rng(0, prior_beta));
      beta_def[m, a] = abs(normal_rng(0, prior_beta));
    }
  }
  for (k in 1:K_0) beta_0[m_0[k]] = beta_0_data[k];
  for (k in 1:K_off) beta_off[m_off[k], a_off[k]] = beta_off_data[k];
  for (k in 1:K_def) beta_def[m_def[k], a_def[k]] = beta_def_data[k];
}
