"""The `lineup-numpyro` command line, kept at the top of the repository: `python cli.py ...` is
`lineup-numpyro ...`. The app itself lives in lineup_numpyro/cli.py (installed with the package)."""

from lineup_numpyro.cli import app, run

__all__ = ["app", "run"]

if __name__ == "__main__":
    run()
