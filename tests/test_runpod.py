"""runpod/: the shell scripts pass shellcheck, launch.sh --dry-run prints the pod it would create,
the Dockerfiles copy what exists and pin the JAX that pyproject allows, and the entrypoint,
run here without Docker, trains, skips a finished run, and resumes a run killed with SIGKILL."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import arviz as az
import pytest
from packaging.requirements import Requirement

from lineup_numpyro.inference.sampling import Checkpoint
from lineup_numpyro.run.rundir import RunDir

ROOT = Path(__file__).resolve().parents[1]
RUNPOD = ROOT / "runpod"
SCRIPTS = sorted(RUNPOD.glob("*.sh"))
ENTRYPOINT = RUNPOD / "entrypoint.sh"
LAUNCH = RUNPOD / "launch.sh"
BIN = Path(sys.executable).parent
LINEUP = BIN / "lineup-numpyro"
TINY = {"MODEL": "simplified", "CHAINS": "2", "WARMUP": "100", "DRAWS": "100", "CHECKPOINT_EVERY": "50"}
NO_RUNPODCTL_PATH = "/usr/bin:/bin"
# The entrypoint's settings: cleared from the tests' environment so that only what a test sets counts.
SETTINGS = (
    "MODEL",
    "DATA",
    "DATA_RECEIVE_CODE",
    "RUN_NAME",
    "CHAINS",
    "WARMUP",
    "DRAWS",
    "SEED",
    "TARGET_ACCEPT",
    "CHECKPOINT_EVERY",
    "PLATFORM",
    "CHAIN_METHOD",
    "EXTRA_ARGS",
    "SEND_RESULTS",
    "WHEN_DONE",
    "RUNPOD_POD_ID",
)

# Stands in for runpodctl on the pod: records its arguments; `receive` delivers FAKE_SEND_FILE;
# `pod stop` ends the entrypoint as stopping the pod would.
FAKE_RUNPODCTL = """#!/usr/bin/env bash
echo "$*" >> "$FAKE_RUNPODCTL_LOG"
case "$1" in
    receive) cp "$FAKE_SEND_FILE" . ;;
    pod) if [ "$2" = stop ]; then kill -TERM "$PPID"; fi ;;
esac
"""

# Stands in for lineup-numpyro where only the entrypoint's decision is under test.
FAKE_LINEUP = """#!/usr/bin/env bash
# answers `status` for real (the entrypoint decides on it), echoes every other command
if [[ "$1" == status ]]; then exec "{real}" "$@"; fi
echo "lineup-numpyro $*"
"""


@pytest.fixture(scope="module")
def season(simulated_season, tmp_path_factory) -> Path:
    """A 2,000-possession season on disk, small enough to fit in seconds, named season.csv (the
    fake runpodctl delivers it under its own name)."""
    path = tmp_path_factory.mktemp("season") / "season.csv"
    shutil.copyfile(simulated_season(2_000, model="simplified", seed=3), path)
    return path


def _fake(directory: Path, name: str, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(text)
    path.chmod(0o755)
    return path


def _env(volume: Path, path: str | None = None, **values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in SETTINGS}
    env.update(VOLUME=str(volume), LINEUP_NUMPYRO=str(LINEUP), PATH=path or env["PATH"], **values)
    return env


def _entrypoint(env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(ENTRYPOINT)], env=env, capture_output=True, text=True, timeout=timeout)


def _draws(run_dir: Path) -> tuple[int, int]:
    posterior = az.from_netcdf(str(run_dir / RunDir.POSTERIOR)).posterior
    return posterior.sizes["chain"], posterior.sizes["draw"]


# --- lint ---------------------------------------------------------------------------------


def test_scripts_pass_shellcheck():
    shellcheck = shutil.which("shellcheck", path=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    assert shellcheck, "shellcheck not found: it is a dev dependency (pip install -e '.[dev]')"
    assert ENTRYPOINT in SCRIPTS and LAUNCH in SCRIPTS
    result = subprocess.run([shellcheck, "--shell=bash", *map(str, SCRIPTS)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_scripts_parse_and_are_strict(script):
    assert subprocess.run(["bash", "-n", str(script)], capture_output=True).returncode == 0
    assert "set -euo pipefail" in script.read_text()
    assert os.access(script, os.X_OK)


# --- launch.sh ----------------------------------------------------------------------------


def _create_command(stdout: str) -> tuple[list[str], dict[str, str]]:
    """The `runpodctl pod create` line of launch.sh's output: its words and its --flag values."""
    lines = [line for line in stdout.splitlines() if line.startswith("runpodctl pod create")]
    assert len(lines) == 1, stdout
    words = shlex.split(lines[0])
    flags = {
        w: words[i + 1] for i, w in enumerate(words[:-1]) if w.startswith("--") and not words[i + 1].startswith("--")
    }
    return words, flags


@pytest.mark.parametrize("kind", ["cpu", "gpu"])
def test_launch_dry_run_prints_the_pod(kind):
    assert shutil.which("runpodctl", path=NO_RUNPODCTL_PATH) is None
    image = f"registry.example/me/lineup-numpyro:{kind}"
    result = subprocess.run(
        [
            "bash",
            str(LAUNCH),
            f"--{kind}",
            "--dry-run",
            "--image",
            image,
            "--model",
            "hierarchical",
            "--run-name",
            "season-h",
            "--data",
            "data/season.csv",
            "--draws",
            "2000",
            "--extra-args",
            "--holdout 0.2 --split-seed 7",
            "--env",
            'NOTE=it\'s "quoted"',
        ],
        env={"PATH": NO_RUNPODCTL_PATH},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    _, flags = _create_command(result.stdout)
    assert flags["--image"] == image and flags["--name"] == "lineup-season-h"
    assert flags["--volume-mount-path"] == "/workspace" and int(flags["--volume-in-gb"]) > 0
    assert flags["--compute-type"] == kind.upper()
    assert ("--gpu-id" in flags) == (kind == "gpu")
    assert json.loads(flags["--env"]) == {
        "MODEL": "hierarchical",
        "RUN_NAME": "season-h",
        "DATA": "data/season.csv",
        "DRAWS": "2000",
        "EXTRA_ARGS": "--holdout 0.2 --split-seed 7",
        "NOTE": 'it\'s "quoted"',
        "SEND_RESULTS": "1",
        "WHEN_DONE": "stop",
    }
    for follow_up in ("runpodctl pod logs POD_ID", "runpodctl receive CODE", "runpodctl pod stop POD_ID"):
        assert follow_up in result.stdout


def test_readme_shows_the_command_launch_runs():
    readme = (RUNPOD / "README.md").read_text()
    block = re.search(r"which runs\n\n\s*```sh\n(.*?)```", readme, re.S).group(1)
    documented = shlex.split(block.replace("\\\n", " "))
    result = subprocess.run(
        ["bash", str(LAUNCH), "--cpu", "--image", "docker.io/YOU/lineup-numpyro:cpu", "--dry-run"],
        env={"PATH": NO_RUNPODCTL_PATH},
        capture_output=True,
        text=True,
    )
    assert _create_command(result.stdout)[0] == documented


def test_launch_defaults_help_and_errors():
    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["bash", str(LAUNCH), *args], env={"PATH": NO_RUNPODCTL_PATH}, capture_output=True, text=True
        )

    result = run("--dry-run")
    assert result.returncode == 0
    _, flags = _create_command(result.stdout)
    assert flags["--image"] == "lineup-numpyro:cpu" and flags["--compute-type"] == "CPU"
    assert json.loads(flags["--env"])["MODEL"] == "matchup"

    result = run("--help")
    assert result.returncode == 0 and "Usage: runpod/launch.sh" in result.stdout
    for bad in (["--bogus"], ["--model"], ["--run-name", "../up"], ["--data-code", "1-a-b"], ["--when-done", "x"]):
        result = run("--dry-run", *bad)
        assert result.returncode == 2, bad
        assert "runpodctl pod create" not in result.stdout
    result = run()  # not a dry run, and no runpodctl
    assert result.returncode == 2 and "runpodctl not found" in result.stderr


# --- Dockerfiles --------------------------------------------------------------------------


def _dockerfile(kind: str) -> str:
    return (RUNPOD / f"Dockerfile.{kind}").read_text()


def _copies(text: str) -> list[tuple[list[str], str]]:
    return [(line.split()[1:-1], line.split()[-1]) for line in text.splitlines() if line.startswith("COPY ")]


@pytest.mark.parametrize("kind", ["cpu", "gpu"])
def test_dockerfile_copies_what_the_package_needs(kind):
    text = _dockerfile(kind)
    sources = [src for srcs, _ in _copies(text) for src in srcs]
    for src in sources:
        assert (ROOT / src).exists(), src
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    needed = [project["project"]["readme"], "pyproject.toml"]
    setup = project["tool"]["setuptools"]
    needed += sorted(
        {p.split(".")[0] + "/" for p in setup["packages"]} | {d + "/" for d in setup["package-dir"].values()}
    )
    assert set(needed) <= {s.rstrip("/") + ("/" if (ROOT / s).is_dir() else "") for s in sources}
    # the build context is filtered by <Dockerfile>.dockerignore: everything copied must pass it
    allowed = {
        line[1:].rstrip("/")
        for line in (RUNPOD / f"Dockerfile.{kind}.dockerignore").read_text().splitlines()
        if line.startswith("!")
    }
    assert {s.rstrip("/") for s in sources} <= allowed
    # the entrypoint is what the image runs
    entry = next(dst for srcs, dst in _copies(text) if srcs == ["runpod/entrypoint.sh"])
    assert f'ENTRYPOINT ["{entry}"]' in text
    assert f"PLATFORM={kind}" in text


@pytest.mark.parametrize("kind", ["cpu", "gpu"])
def test_dockerfile_jax_is_the_pinned_one(kind):
    text = _dockerfile(kind)
    version = re.search(r"^ARG JAX_VERSION=(\S+)$", text, re.M).group(1)
    pins = {
        Requirement(r).name: Requirement(r).specifier
        for r in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    }
    assert version in pins["jax"] and version in pins["jaxlib"]
    install = next(line for line in text.splitlines() if line.startswith("RUN pip install ."))
    jax = "jax[cuda12]" if kind == "gpu" else "jax"
    assert f'"{jax}==${{JAX_VERSION}}"' in install and '"jaxlib==${JAX_VERSION}"' in install
    assert "FROM python:3.12-slim" in text


# --- the entrypoint's decisions (a stand-in lineup-numpyro) --------------------------------


def _decide(tmp_path: Path, status: str | None, record: bool, **values: str) -> subprocess.CompletedProcess:
    run_dir = tmp_path / "vol" / "runs" / "r"
    if status or record:
        run_dir.mkdir(parents=True)
    if status:
        (run_dir / RunDir.STATUS).write_text(json.dumps({"state": status, "error": "OSError: disk full"}))
    if record:
        (run_dir / RunDir.RUN_CONFIG).write_text("{}")
    env = _env(tmp_path / "vol", RUN_NAME="r", **values)
    env["LINEUP_NUMPYRO"] = str(_fake(tmp_path / "bin", "lineup-numpyro", FAKE_LINEUP.format(real=LINEUP)))
    return _entrypoint(env, timeout=30)


@pytest.mark.parametrize(
    "status,record,expected",
    [
        (None, False, "decision: new run"),
        (None, True, "decision: start over"),  # stopped between writing its record and its status
        ("running", True, "decision: resume"),
        ("failed", True, "decision: resume"),
        ("complete", True, "decision: already complete"),
    ],
)
def test_entrypoint_decides_from_the_run_directory(tmp_path, status, record, expected):
    result = _decide(tmp_path, status, record, EXTRA_ARGS="--holdout 0.2  --split-seed 7")
    assert result.returncode == 0, result.stdout + result.stderr
    assert expected in result.stdout
    run_dir = str(tmp_path / "vol" / "runs" / "r")
    calls = [line.split()[1:] for line in result.stdout.splitlines() if line.startswith("lineup-numpyro ")]
    if expected.endswith("complete"):
        assert calls == [["summary", run_dir]]
    elif expected.endswith("resume"):
        assert calls == [["train", "--resume", run_dir]]
        assert ("disk full" in result.stdout) == (status == "failed")
    else:
        (call,) = calls
        assert call[:6] == ["train", "--model", "matchup", "--out", run_dir, "--overwrite"]
        assert call[-4:] == ["--holdout", "0.2", "--split-seed", "7"] and "--data" not in call


def test_entrypoint_refuses_bad_settings(tmp_path):
    assert _decide(tmp_path / "a", None, False, DATA="missing.csv").returncode == 2
    assert _decide(tmp_path / "b", None, False, WHEN_DONE="later").returncode == 2
    result = _entrypoint(_env(tmp_path / "c", RUN_NAME="../escape"), timeout=30)
    assert result.returncode == 2 and "RUN_NAME" in result.stdout


# --- the entrypoint, for real --------------------------------------------------------------


def test_entrypoint_trains_then_leaves_a_complete_run_alone(tmp_path, season):
    volume, fakes = tmp_path / "volume", tmp_path / "bin"
    _fake(fakes, "runpodctl", FAKE_RUNPODCTL)
    calls = tmp_path / "runpodctl.log"
    path = f"{fakes}{os.pathsep}{os.environ['PATH']}"
    env = _env(
        volume,
        path,
        **TINY,
        RUN_NAME="tiny",
        DATA="data/season.csv",
        DATA_RECEIVE_CODE="1234-one-time",
        FAKE_RUNPODCTL_LOG=str(calls),
        FAKE_SEND_FILE=str(season),
    )
    run_dir = volume / "runs" / "tiny"

    result = _entrypoint(env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "decision: new run" in result.stdout
    assert (volume / "data" / "season.csv").read_bytes() == season.read_bytes()  # received before training
    assert RunDir(run_dir).status()["state"] == "complete"
    assert _draws(run_dir) == (2, 100) and not (run_dir / RunDir.CHECKPOINT).exists()
    posterior_mtime = (run_dir / RunDir.POSTERIOR).stat().st_mtime_ns

    # a restarted pod: nothing is trained again; the results are sent and the pod stops itself
    env.update(SEND_RESULTS="1", WHEN_DONE="stop", RUNPOD_POD_ID="pod123")
    result = _entrypoint(env, timeout=120)
    assert result.returncode == -signal.SIGTERM, result.stdout + result.stderr  # stopped by `pod stop`
    assert "decision: already complete" in result.stdout and "decision: new run" not in result.stdout
    assert (run_dir / RunDir.POSTERIOR).stat().st_mtime_ns == posterior_mtime
    assert RunDir(run_dir).status()["state"] == "complete"
    archive = volume / "runs" / "tiny.tar.gz"
    assert calls.read_text().splitlines() == ["receive 1234-one-time", f"send {archive}", "pod stop pod123"]
    listing = subprocess.run(["tar", "-tzf", str(archive)], capture_output=True, text=True, check=True).stdout
    assert "tiny/posterior.nc" in listing.split()


def test_entrypoint_resumes_a_run_killed_by_sigkill(tmp_path, season):
    volume = tmp_path / "volume"
    run_dir = volume / "runs" / "killed"
    env = _env(volume, **TINY, RUN_NAME="killed", DATA=str(season))
    proc = subprocess.Popen(
        ["bash", str(ENTRYPOINT)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
    )
    warm = run_dir / RunDir.CHECKPOINT / Checkpoint.WARMUP
    deadline = time.monotonic() + 300
    while not warm.exists():
        if proc.poll() is not None:
            pytest.fail(
                f"the entrypoint ended (exit {proc.returncode}) before the warm-up was saved: "
                f"{proc.stderr.read().decode()[-2000:]}"
            )
        if time.monotonic() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            pytest.fail("the warm-up was never saved")
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)  # the pod dies: the entrypoint and the training with it
    proc.wait()
    proc.stderr.close()
    deadline = time.monotonic() + 30  # SIGKILL is delivered asynchronously: give the orphan time to die
    while RunDir(run_dir).status()["state"] != "stopped" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert RunDir(run_dir).status()["state"] == "stopped"  # status.json says running; its process is gone
    assert warm.exists() and not (run_dir / RunDir.POSTERIOR).exists()

    result = _entrypoint(env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "decision: resume the stopped run" in result.stdout
    assert RunDir(run_dir).status()["state"] == "complete"
    assert _draws(run_dir) == (2, 100) and not (run_dir / RunDir.CHECKPOINT).exists()
