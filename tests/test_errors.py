"""One error hierarchy (issue 16, point 5): what the user can fix is a LineupError, shown as one
line with exit code 2; anything else is a bug and keeps its traceback (exit 1)."""

from __future__ import annotations

import inspect

import pytest
from typer.testing import CliRunner

from lineup_numpyro import config, errors
from lineup_numpyro.analysis import comparison
from lineup_numpyro.cli import app
from lineup_numpyro.data import possessions as data
from lineup_numpyro.errors import RunDirError
from lineup_numpyro.inference import approx, sampling
from lineup_numpyro.models import simulate
from lineup_numpyro.stan import runner as stan_runner

runner = CliRunner()


def test_every_error_type_has_one_base_and_one_home():
    classes = [c for _, c in inspect.getmembers(errors, inspect.isclass) if c.__module__ == errors.__name__]
    assert {c.__name__ for c in classes} >= {
        "LineupError",
        "DataError",
        "ConfigError",
        "RunDirError",
        "CheckpointError",
        "ApproxError",
        "StanUnavailable",
    }
    assert all(issubclass(c, errors.LineupError) for c in classes)
    # the modules that raise them use the same classes, not copies
    assert data.DataError is errors.DataError and RunDirError is errors.RunDirError
    assert sampling.CheckpointError is errors.CheckpointError and approx.ApproxError is errors.ApproxError
    assert stan_runner.StanUnavailable is errors.StanUnavailable


@pytest.mark.parametrize(
    "bad",
    [
        lambda: config.SamplerConfig(target_accept=1.5),
        lambda: config.DataConfig(holdout_fraction=1.0),
        lambda: simulate.simulate_season(0),
        lambda: comparison.compare_runs(["only-one"]),
    ],
)
def test_bad_options_raise_a_lineup_error(bad):
    with pytest.raises(errors.ConfigError):
        bad()


def test_user_errors_exit_2_with_one_line(tmp_path):
    missing = tmp_path / "nope.csv"
    result = runner.invoke(app, ["train", "--data", str(missing), "--out", str(tmp_path / "r"), "--no-progress"])
    assert result.exit_code == 2, result.output
    assert str(missing) in result.output and "Traceback" not in result.output


def test_internal_errors_keep_their_traceback(tmp_path, monkeypatch):
    """A ValueError from a bug is not dressed up as bad input."""
    import lineup_numpyro.run.train

    def broken(*args, **kwargs):
        raise ValueError("an internal bug")

    monkeypatch.setattr(lineup_numpyro.run.train, "train", broken)  # the CLI imports it when `train` runs
    result = runner.invoke(app, ["train", "--model", "simplified", "--out", str(tmp_path / "r"), "--no-progress"])
    assert result.exit_code == 1
    assert isinstance(result.exception, ValueError) and "an internal bug" in str(result.exception)
    assert "error: an internal bug" not in result.output
