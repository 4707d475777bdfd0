// Simplified (pooled) lineup model: one coefficient vector for every matchup, 18 parameters.
// Reproduces the original project's bayesian_model_k8.stan, written from ../shared/MODELS.md §1:
//   y_i ~ Normal(beta_0 + z_off_i . beta_off - z_def_i . beta_def, sigma)
//   beta_0 ~ N(0, 5); beta_off[a], beta_def[a] ~ N+(0, 5); sigma ~ C+(0, 2.5)
data {
  int<lower=1> N;                 // possessions
  int<lower=1> K;                 // archetypes (8)
  vector[N] y;                    // points scored
  matrix[N, K] z_off;             // summed offensive DARKO per archetype
  matrix[N, K] z_def;             // summed defensive DARKO per archetype
}
parameters {
  real beta_0;
  vector<lower=0>[K] beta_off;
  vector<lower=0>[K] beta_def;
  real<lower=0> sigma;
}
model {
  beta_0 ~ normal(0, 5);
  beta_off ~ normal(0, 5);
  beta_def ~ normal(0, 5);
  sigma ~ cauchy(0, 2.5);
  y ~ normal(beta_0 + z_off * beta_off - z_def * beta_def, sigma);
}
