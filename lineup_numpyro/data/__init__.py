"""Reading and checking possession files; per-matchup sufficient statistics."""
