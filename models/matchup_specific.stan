// Matchup-specific lineup model: independent coefficients per matchup, 36 x 17 + 1 = 613 parameters.
// Reproduces the original project's bayesian_model_k8_matchup_specific.stan in its shipped,
// row-by-row loop form (the file users trust), written from ../shared/MODELS.md §2:
//   y_i ~ Normal(beta_0[m_i] + z_off_i . beta_off[m_i,] - z_def_i . beta_def[m_i,], sigma)
//   beta_0[m] ~ N(0, 5); beta_off[m,a], beta_def[m,a] ~ N+(0, 5); sigma ~ C+(0, 2.5)
// with the scales as data (5, 5 and 2.5 by default), so that parity covers any choice.
// The same posterior, but only the coefficients the data touch are parameters (see data).
data {
  int<lower=1> N;                 // possessions
  int<lower=1> M;                 // matchups (36)
  int<lower=1> K;                 // archetypes (8)
  vector[N] y;
  array[N] int<lower=1, upper=M> matchup;   // matchup_id + 1
  matrix[N, K] z_off;
  matrix[N, K] z_def;
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
  for (i in 1:N) {
    int m = matchup[i];
    y[i] ~ normal(b0[m] + z_off[i] * bo[m]' - z_def[i] * bd[m]', sigma);
  }
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
