"""Problem dimensions, column names and the Stan parameter names used in every output.

Matchup m (0-based) = offensive supercluster * 6 + defensive supercluster; outputs use
Stan's 1-based index m + 1, as the original project's files do (see ../shared/MODELS.md).
"""

from __future__ import annotations

N_ARCHETYPES = 8
N_SUPERCLUSTERS = 6
N_MATCHUPS = N_SUPERCLUSTERS * N_SUPERCLUSTERS  # 36
N_FEATURES = 1 + 2 * N_ARCHETYPES  # design row x = [1, z_off(8), -z_def(8)]
# Each coefficient family's columns of the design row (and of a (M, 17) coefficient matrix).
FAMILY_COLUMNS = {
    "beta_0": slice(0, 1),
    "beta_off": slice(1, 1 + N_ARCHETYPES),
    "beta_def": slice(1 + N_ARCHETYPES, N_FEATURES),
}

MODELS = ("simplified", "matchup", "hierarchical")

OUTCOME = "outcome"
MATCHUP = "matchup_id"
SEASON = "season"
OFF_SUPERCLUSTER = "off_supercluster"
DEF_SUPERCLUSTER = "def_supercluster"
Z_OFF = tuple(f"z_off_{a}" for a in range(N_ARCHETYPES))
Z_DEF = tuple(f"z_def_{a}" for a in range(N_ARCHETYPES))
REQUIRED_COLUMNS = (OUTCOME, MATCHUP, *Z_OFF, *Z_DEF)
OPTIONAL_COLUMNS = (SEASON, OFF_SUPERCLUSTER, DEF_SUPERCLUSTER)


def matchup_label(m: int) -> str:
    """'<off>_vs_<def>' for 0-based matchup m."""
    return f"{m // N_SUPERCLUSTERS}_vs_{m % N_SUPERCLUSTERS}"


MATCHUP_LABELS = tuple(matchup_label(m) for m in range(N_MATCHUPS))

# Sites of each model that are reported, in Stan's declaration order. Each entry maps
# a site to its dims; "matchup" and "archetype" become 1-based Stan indices.
POSTERIOR_DIMS: dict[str, dict[str, tuple[str, ...]]] = {
    "simplified": {
        "beta_0": (),
        "beta_off": ("archetype",),
        "beta_def": ("archetype",),
        "sigma": (),
    },
    "matchup": {
        "beta_0": ("matchup",),
        "beta_off": ("matchup", "archetype"),
        "beta_def": ("matchup", "archetype"),
        "sigma": (),
    },
    "hierarchical": {
        "mu_0": (),
        "tau_0": (),
        "mu_off": ("archetype",),
        "tau_off": ("archetype",),
        "mu_def": ("archetype",),
        "tau_def": ("archetype",),
        "e_0": ("matchup",),
        "e_off": ("matchup", "archetype"),
        "e_def": ("matchup", "archetype"),
        "sigma": (),
        "beta_0": ("matchup",),
        "beta_off": ("matchup", "archetype"),
        "beta_def": ("matchup", "archetype"),
    },
}

# Deterministic functions of the sampled parameters (Stan's transformed parameters).
DERIVED: dict[str, tuple[str, ...]] = {"hierarchical": ("beta_0", "beta_off", "beta_def")}

COORDS = {
    "matchup": list(range(1, N_MATCHUPS + 1)),
    "archetype": list(range(1, N_ARCHETYPES + 1)),
}


def stan_name(var: str, index: tuple[int, ...]) -> str:
    """Stan's name for element `index` (0-based) of `var`: beta_off[3,2] etc."""
    if not index:
        return var
    return f"{var}[{','.join(str(i + 1) for i in index)}]"
