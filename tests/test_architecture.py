"""The package's folders are its layers (ARCHITECTURE.md): imports point one way, there are no
cycles, no import hides inside a function except of an optional dependency, and importing the
package pulls in no optional dependency."""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "lineup_numpyro"
# lower layers never import higher ones (ARCHITECTURE.md)
LAYERS = {
    "errors": 0,
    "names": 0,
    "files": 1,
    "data": 2,
    "config": 3,
    "models": 4,
    "inference": 5,
    "stan": 6,
    "run": 7,
    "analysis": 8,
    "lineups": 9,
    "cli": 10,
}
OPTIONAL = ("stan", "httpstan", "matplotlib", "ray")  # imported where used, so the package works without them
# Imported where used so that `train` starts without them: ArviZ takes 0.5-2 s to import, and
# training needs it only for the Pareto k of an approximation (posterior.nc is written with xarray).
LAZY = ("arviz",)


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> list[tuple[str, bool]]:
    """(imported module, at module level?) for every import in `path` (TYPE_CHECKING blocks skipped)."""
    tree = ast.parse(path.read_text())
    found = []

    def visit(node: ast.AST, top: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue
            if isinstance(child, ast.Import):
                found.extend((alias.name, top) for alias in child.names)
            elif isinstance(child, ast.ImportFrom) and child.module:
                found.append((child.module, top))
                found.extend((f"{child.module}.{alias.name}", top) for alias in child.names)
            visit(child, top and not isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef))

    visit(tree, True)
    return found


MODULES = {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _layer(module: str) -> int:
    return LAYERS[module.split(".")[1]]


def _package_edges() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {m: set() for m in MODULES}
    for module, path in MODULES.items():
        for imported, _ in _imports(path):
            target = next(
                (m for m in (imported, imported.rpartition(".")[0]) if m in MODULES and m != "lineup_numpyro"), None
            )
            if target and target != module:
                edges[module].add(target)
    return edges


def test_every_module_sits_in_a_layer():
    assert {m.split(".")[1] for m in MODULES if m != "lineup_numpyro"} <= set(LAYERS)


def test_imports_point_down_the_layers():
    upward = [
        f"{m} -> {t}"
        for m, targets in _package_edges().items()
        if m != "lineup_numpyro"
        for t in targets
        if _layer(t) > _layer(m)
    ]
    assert upward == []


def test_no_import_cycles():
    edges, state, cycles = _package_edges(), {}, []

    def walk(node: str, stack: list[str]) -> None:
        state[node] = "open"
        for nxt in edges[node]:
            if state.get(nxt) == "open":
                cycles.append(" -> ".join([*stack[stack.index(nxt) :], nxt]))
            elif nxt not in state:
                walk(nxt, [*stack, nxt])
        state[node] = "done"

    for module in edges:
        if module not in state:
            walk(module, [module])
    assert cycles == []


def _command_import(module: str, imported: str) -> bool:
    """The CLI imports each command's modules (and pandas) inside the command, so that start-up
    loads only what the command needs."""
    return module == "lineup_numpyro.cli" and imported.split(".")[0] in ("lineup_numpyro", "pandas")


def test_only_optional_dependencies_are_imported_inside_functions():
    hidden = [
        f"{module}: {imported}"
        for module, path in MODULES.items()
        for imported, top in _imports(path)
        if not top and imported.split(".")[0] not in OPTIONAL + LAZY and not _command_import(module, imported)
    ]
    assert hidden == []


def test_the_command_line_starts_without_the_heavy_libraries():
    code = (
        "import sys, lineup_numpyro.cli\n"
        "print([m for m in ('pandas', 'pyarrow', 'numpyro', 'arviz', 'xarray', 'scipy', 'matplotlib') "
        "if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True).stdout
    assert out.strip() == "[]"


def test_training_does_not_import_arviz(tmp_path):
    """The default job's path (the CLI's train command through writing posterior.nc) leaves ArviZ unloaded."""
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from lineup_numpyro.cli import app\n"
        f"r = CliRunner().invoke(app, ['train', '--model', 'simplified', '--warmup', '20', '--draws', '20', "
        f"'--chains', '1', '--out', {str(tmp_path / 'run')!r}, '--no-progress'])\n"
        "assert r.exit_code == 0, r.output\n"
        "print('arviz' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "False"


def test_importing_the_package_loads_no_optional_dependency():
    code = (
        "import sys, importlib, pkgutil, lineup_numpyro\n"
        "bare = [m for m in ('stan', 'httpstan', 'matplotlib') if m in sys.modules]\n"
        "for info in pkgutil.walk_packages(lineup_numpyro.__path__, 'lineup_numpyro.'):\n"
        "    importlib.import_module(info.name)\n"
        "print(bare, [m for m in ('stan', 'httpstan') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True).stdout
    assert out.strip() == "[] []"


def test_the_installed_command_is_the_packages_and_ships_the_stan_files():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert project["project"]["scripts"]["lineup-numpyro"] == "lineup_numpyro.cli:run"
    assert "py-modules" not in project["tool"]["setuptools"]  # no top-level module named `cli` installed
    assert project["tool"]["setuptools"]["package-dir"]["lineup_numpyro.stan.files"] == "models"
    from lineup_numpyro.stan.runner import STAN_FILES, stan_file

    assert all(stan_file(*key).is_file() for key in STAN_FILES)


def _command(*args: str, prelude: str = "") -> subprocess.CompletedProcess:
    """`lineup-numpyro ARGS` as the console script runs it (cli.run), after `prelude`."""
    code = f"{prelude}\nimport sys\nfrom lineup_numpyro.cli import run\n"
    code += f"sys.argv = ['lineup-numpyro', *{list(args)!r}]\nrun()"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)


def test_the_console_script_keeps_exit_codes_output_and_exit_handlers(tmp_path):
    """cli.run skips the interpreter's teardown, not what a user sees: the command's exit code
    (0, 2 for bad input), its whole output through a pipe, and the exit handlers."""
    marker = tmp_path / "atexit"
    prelude = f"import atexit, pathlib\natexit.register(lambda: pathlib.Path({str(marker)!r}).write_text('ran'))"
    ok = _command("--help", prelude=prelude)
    assert ok.returncode == 0 and "sbc" in ok.stdout and ok.stdout.rstrip().endswith("─╯")
    assert marker.read_text() == "ran"
    bad = _command("status", str(tmp_path / "missing"), "--get", "nothing")
    assert bad.returncode == 2 and "error" in bad.stderr
    missing = _command("summary", str(tmp_path / "missing"))
    assert missing.returncode == 2 and str(tmp_path / "missing") in missing.stderr


def test_the_console_script_exits_the_usual_way_with_a_thread_still_running():
    """A command that leaves a (non-daemon) thread running is not cut short: Python waits for it."""
    prelude = (
        "import threading, time\n"
        "threading.Thread(target=lambda: (time.sleep(0.5), print('thread finished', flush=True))).start()"
    )
    result = _command("--version", prelude=prelude)
    assert result.returncode == 0 and "thread finished" in result.stdout


@pytest.mark.slow
def test_pip_install_in_a_fresh_venv_runs_parity(tmp_path, shared_data):
    """`pip install .[stan]` into a new virtual environment, then parity from outside the repository."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = venv / "bin" / "pip"
    subprocess.run([str(pip), "install", "-q", f"{ROOT}[stan]"], check=True, timeout=1800)
    small = tmp_path / "small.csv"
    small.write_text("".join((shared_data / "quick_sample_10k.csv").read_text().splitlines(keepends=True)[:1001]))
    result = subprocess.run(
        [
            str(venv / "bin" / "lineup-numpyro"),
            "parity",
            "--model",
            "simplified",
            "--data",
            str(small),
            "--no-posterior",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=1800,
    )
    assert result.returncode == 0, result.stdout + result.stderr
