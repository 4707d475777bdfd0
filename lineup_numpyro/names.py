"""Problem dimensions, column names, the Stan parameter names and the one numbering people read.

The numbering (README, "Numbering and names"): archetypes 0-7 and superclusters 0-5 as in the
input files and player tables; matchup id 0-35 = offensive supercluster * 6 + defensive
supercluster, shown as its label '<off>_vs_<def>'. Tables, flags, CSV columns, plot labels and
posterior.nc's coordinates all use it. Parameter names alone are Stan's (../shared/MODELS.md),
whose indices are 1-based positions: beta_off[m,a] is matchup id m - 1 and archetype a - 1, and
every table that lists parameters says so in its matchup_label and archetype columns.
`Labels` puts names on the numbers (a JSON file, `--labels`); by default the numbers themselves.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from lineup_numpyro.errors import ConfigError

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
# Each family's short name in the Stan files' names of its per-family data and sites
# (K_off, m_off, mu_off, tau_off, e_off, z_off_data, ...).
FAMILY_SHORT = {"beta_0": "0", "beta_off": "off", "beta_def": "def"}

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

COORDS = {  # posterior.nc's coordinates: the numbering people read (matchup id, archetype)
    "matchup": list(range(N_MATCHUPS)),
    "archetype": list(range(N_ARCHETYPES)),
}


def parse_stan_name(parameter: str) -> tuple[str, tuple[int, ...]]:
    """('beta_off', (2, 4)) for 'beta_off[3,5]': the variable and its 0-based index."""
    if "[" not in parameter:
        return parameter, ()
    var, _, rest = parameter.partition("[")
    return var, tuple(int(i) - 1 for i in rest.rstrip("]").split(","))


@dataclass(frozen=True)
class Labels:
    """Names for archetypes 0-7 and superclusters 0-5, for display only (never computed on)."""

    archetypes: tuple[str, ...] = tuple(str(a) for a in range(N_ARCHETYPES))
    superclusters: tuple[str, ...] = tuple(str(c) for c in range(N_SUPERCLUSTERS))

    @property
    def named(self) -> bool:
        return self != Labels()

    def archetype(self, a: int) -> str:
        """'3' by default; '3 3&D' with names."""
        return str(a) if self.archetypes[a] == str(a) else f"{a} {self.archetypes[a]}"

    def supercluster(self, c: int) -> str:
        return str(c) if self.superclusters[c] == str(c) else f"{c} {self.superclusters[c]}"

    def matchup(self, m: int) -> str:
        """The matchup label '<off>_vs_<def>', with the superclusters' names when there are."""
        if not self.named:
            return matchup_label(m)
        off, dfn = divmod(m, N_SUPERCLUSTERS)
        return f"{matchup_label(m)} ({self.superclusters[off]} vs {self.superclusters[dfn]})"

    @classmethod
    def from_json(cls, path: str | Path) -> Labels:
        """{"archetypes": [8 names], "superclusters": [6 names]}; either may be left out."""
        path = Path(path)
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"{path}: no such labels file") from None
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ConfigError(f"{path}: not a JSON labels file ({exc})") from None
        if not isinstance(raw, dict) or set(raw) - {"archetypes", "superclusters"}:
            raise ConfigError(
                f'{path}: expected an object with "archetypes" (8 names) and/or "superclusters" (6 names)'
            )
        default = cls()
        out = {}
        for key, n in (("archetypes", N_ARCHETYPES), ("superclusters", N_SUPERCLUSTERS)):
            value = raw.get(key, list(getattr(default, key)))
            if not isinstance(value, list) or len(value) != n or not all(isinstance(v, str) and v for v in value):
                raise ConfigError(
                    f'{path}: "{key}" must be a list of {n} non-empty names (index = number), got {value!r}'
                )
            out[key] = tuple(value)
        return cls(**out)


def stan_name(var: str, index: tuple[int, ...]) -> str:
    """Stan's name for element `index` (0-based) of `var`: beta_off[3,2] etc."""
    if not index:
        return var
    return f"{var}[{','.join(str(i + 1) for i in index)}]"
