// Matchup-specific lineup model: independent coefficients per matchup, 36 x 17 + 1 = 613 parameters.
// Reproduces the original project's bayesian_model_k8_matchup_specific.stan in its shipped,
// row-by-row loop form (the file users trust), written from ../shared/MODELS.md §2:
//   y_i ~ Normal(beta_0[m_i] + z_off_i . beta_off[m_i,] - z_def_i . beta_def[m_i,], sigma)
//   beta_0[m] ~ N(0, 5); beta_off[m,a], beta_def[m,a] ~ N+(0, 5); sigma ~ C+(0, 2.5)
data {
  int<lower=1> N;                 // possessions
  int<lower=1> M;                 // matchups (36)
  int<lower=1> K;                 // archetypes (8)
  vector[N] y;
  array[N] int<lower=1, upper=M> matchup;   // matchup_id + 1
  matrix[N, K] z_off;
  matrix[N, K] z_def;
}
parameters {
  vector[M] beta_0;
  matrix<lower=0>[M, K] beta_off;
  matrix<lower=0>[M, K] beta_def;
  real<lower=0> sigma;
}
model {
  beta_0 ~ normal(0, 5);
  to_vector(beta_off) ~ normal(0, 5);
  to_vector(beta_def) ~ normal(0, 5);
  sigma ~ cauchy(0, 2.5);
  for (i in 1:N) {
    int m = matchup[i];
    y[i] ~ normal(beta_0[m] + z_off[i] * beta_off[m]' - z_def[i] * beta_def[m]', sigma);
  }
}
