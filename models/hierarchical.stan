// Hierarchical lineup model: partial pooling toward league-wide archetype effects, non-centred.
// Written from ../shared/MODELS.md §3 (the original project had no such file):
//   beta_0[m] = mu_0 + tau_0 e_0[m]
//   beta_off[m,a] = exp(mu_off[a] + tau_off[a] e_off[m,a]), likewise beta_def
//   e ~ N(0, 1); mu_0 ~ N(0, 5); tau_0 ~ N+(0, 1); mu_off[a], mu_def[a] ~ N(-4, 2);
//   tau_off[a], tau_def[a] ~ N+(0, 1); sigma ~ C+(0, 2.5)
data {
  int<lower=1> N;
  int<lower=1> M;
  int<lower=1> K;
  vector[N] y;
  array[N] int<lower=1, upper=M> matchup;
  matrix[N, K] z_off;
  matrix[N, K] z_def;
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
  y ~ normal(beta_0[matchup] + rows_dot_product(z_off, beta_off[matchup])
             - rows_dot_product(z_def, beta_def[matchup]), sigma);
}
