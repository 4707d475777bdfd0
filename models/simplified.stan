// Simplified (pooled) lineup model: one coefficient vector for every matchup, 18 parameters.
// Reproduces the original project's bayesian_model_k8.stan, written from ../shared/MODELS.md §1:
//   y_i ~ Normal(beta_0 + z_off_i . beta_off - z_def_i . beta_def, sigma)
//   beta_0 ~ N(0, 5); beta_off[a], beta_def[a] ~ N+(0, 5); sigma ~ C+(0, 2.5)
// with the scales as data (5, 5 and 2.5 by default), so that parity covers any choice.
data {
  int<lower=1> N;                 // possessions
  int<lower=1> K;                 // archetypes (8)
  vector[N] y;                    // points scored
  matrix[N, K] z_off;             // summed offensive DARKO per archetype
  matrix[N, K] z_def;             // summed defensive DARKO per archetype
  // prior scales (lineup_numpyro.config.Priors; defaults 5, 5, 2.5)
  real<lower=0> prior_beta_0;     // beta_0 ~ N(0, prior_beta_0)
  real<lower=0> prior_beta;       // beta_off, beta_def ~ N+(0, prior_beta)
  real<lower=0> prior_sigma;      // sigma ~ C+(0, prior_sigma)
}
parameters {
  real beta_0;
  vector<lower=0>[K] beta_off;
  vector<lower=0>[K] beta_def;
  real<lower=0> sigma;
}
model {
  beta_0 ~ normal(0, prior_beta_0);
  beta_off ~ normal(0, prior_beta);
  beta_def ~ normal(0, prior_beta);
  sigma ~ cauchy(0, prior_sigma);
  y ~ normal(beta_0 + z_off * beta_off - z_def * beta_def, sigma);
}
