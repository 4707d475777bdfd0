// Hierarchical lineup model, the same posterior as hierarchical.stan, written for speed: the
// Gaussian likelihood through per-matchup sufficient statistics (../shared/MODELS.md). A fair
// Stan baseline for benchmarks and CI's posterior parity; not a file of the original project.
data {
  int<lower=1> M;
  int<lower=1> K;
  vector<lower=0>[M] n;
  array[M] matrix[2 * K + 1, 2 * K + 1] xtx;   // X_m' X_m, X rows = [1, z_off, -z_def]
  array[M] vector[2 * K + 1] xty;              // X_m' y_m
  vector[M] yty;                               // y_m' y_m
}
parameters {
  real mu_0;
  real<lower=0> tau_0;
  vector[K] mu_off;
  vector<lower=0>[K] tau_off;
  vector[K] mu_def;
  vector<lower=0>[K] tau_def;
  vector[M] e_0;
  matrix[M, K] e_off;
  matrix[M, K] e_def;
  real<lower=0> sigma;
}
transformed parameters {
  vector[M] beta_0 = mu_0 + tau_0 * e_0;
  matrix[M, K] beta_off = exp(rep_matrix(mu_off', M) + diag_post_multiply(e_off, tau_off));
  matrix[M, K] beta_def = exp(rep_matrix(mu_def', M) + diag_post_multiply(e_def, tau_def));
}
model {
  real rss = 0;
  mu_0 ~ normal(0, 5);
  tau_0 ~ normal(0, 1);
  mu_off ~ normal(-4, 2);
  tau_off ~ normal(0, 1);
  mu_def ~ normal(-4, 2);
  tau_def ~ normal(0, 1);
  e_0 ~ std_normal();
  to_vector(e_off) ~ std_normal();
  to_vector(e_def) ~ std_normal();
  sigma ~ cauchy(0, 2.5);
  for (m in 1:M) {
    vector[2 * K + 1] b = append_row(beta_0[m], append_row(beta_off[m]', beta_def[m]'));
    rss += yty[m] - 2 * dot_product(b, xty[m]) + quad_form(xtx[m], b);
  }
  target += -sum(n) * log(sigma) - rss / (2 * square(sigma));
}
