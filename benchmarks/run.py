"""NumPyro against Stan, side by side: `python benchmarks/run.py [options]`.

The same as `lineup-numpyro benchmark [options]` (see `--help`); results go to
benchmarks/results/latest/ by default (results.json, results.md, scaling.png).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cli import app  # noqa: E402

if __name__ == "__main__":
    app(["benchmark", *sys.argv[1:]])
