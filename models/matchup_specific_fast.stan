// Matchup-specific lineup model, the same posterior as matchup_specific.stan, written for speed:
// the Gaussian likelihood through per-matchup sufficient statistics (../shared/MODELS.md,
// "The likelihood through sufficient statistics"). A fair, strong Stan baseline for
// benchmarks; not a file of the original project.
data {
  int<lower=1> M;                 // matchups (36)
  int<lower=1> K;                 // archetypes (8)
  vector<lower=0>[M] n;           // possessions per matchup
  array[M] matrix[2 * K + 1, 2 * K + 1] xtx;   // X_m' X_m, X rows = [1, z_off, -z_def]
  array[M] vector[2 * K + 1] xty;              // X_m' y_m
  vector[M] yty;                               // y_m' y_m
}
parameters {
  vector[M] beta_0;
  matrix<lower=0>[M, K] beta_off;
  matrix<lower=0>[M, K] beta_def;
  real<lower=0> sigma;
}
model {
  real rss = 0;
  beta_0 ~ normal(0, 5);
  to_vector(beta_off) ~ normal(0, 5);
  to_vector(beta_def) ~ normal(0, 5);
  sigma ~ cauchy(0, 2.5);
  for (m in 1:M) {
    vector[2 * K + 1] b = append_row(beta_0[m], append_row(beta_off[m]', beta_def[m]'));
    rss += yty[m] - 2 * dot_product(b, xty[m]) + quad_form(xtx[m], b);
  }
  target += -sum(n) * log(sigma) - rss / (2 * square(sigma));
}
