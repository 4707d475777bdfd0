"""Players, lineups and their values under a fitted run."""
