"""The architecture as the folders show it: one-way layers (`[tool.importlinter]` in pyproject.toml,
checked by import-linter), no top-level name that shadows a module of another installed
distribution or of the standard library, and a config checked without the heavy imports."""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def our_packages() -> list[str]:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]["root_packages"]


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    """`lint-imports` on the packages under `root` with the repository's contracts."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([str(LINT_IMPORTS), "--config", str(REPO / "pyproject.toml"), "--no-cache"],
                          capture_output=True, text=True, cwd=root, env=env, timeout=300)


def test_the_import_contracts_hold():
    result = lint_imports(REPO)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "Contracts: 3 kept, 0 broken." in result.stdout, result.stdout[-2000:]


@pytest.mark.parametrize("module, line, contract", [
    ("tasks/back_edge.py", "import flows.pipeline", "One-way layers"),
    ("madx/back_edge.py", "import tasks.stages", "One-way layers"),
    ("evaluation/back_edge.py", "import task_adapters.train", "One-way layers"),
    ("tagging/back_edge.py", "import evaluation.report", "One-way layers"),
    ("madx/back_edge.py", "import mlflow", "The adapter core imports"),
    ("language_adapters/back_edge.py", "import prefect", "Domain packages compute"),
], ids=["tasks->flows", "core->tasks", "evaluation->task_adapters", "tagging->evaluation", "core->mlflow",
        "domain->prefect"])
def test_a_back_edge_breaks_a_contract(tmp_path, module, line, contract):
    """The contracts can fail: a copy of the packages with one import added against the direction."""
    for package in our_packages():
        shutil.copytree(REPO / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / module).write_text(line + "\n")
    result = lint_imports(tmp_path)
    assert result.returncode == 1, result.stdout[-3000:]
    broken = result.stdout[result.stdout.index("Broken contracts"):]
    assert contract in broken and module.removesuffix(".py").replace("/", ".") in broken, broken[-3000:]


def test_no_top_level_name_shadows_another_module():
    """`import tasks` must find ours: no other installed distribution (our dependency tree) and no
    standard-library module has a top-level module of the same name."""
    ours = set(our_packages())
    clashes = sorted(f"{name} (stdlib)" for name in ours & set(sys.stdlib_module_names))
    for dist in importlib.metadata.distributions():
        if dist.metadata["Name"] == "madx-pipeline":
            continue
        names = set((dist.read_text("top_level.txt") or "").split())
        names |= {Path(str(file)).parts[0].removesuffix(".py") for file in dist.files or ()
                  if not str(file).startswith("..") and len(Path(str(file)).parts) > 1 or str(file).endswith(".py")}
        clashes += sorted(f"{name} ({dist.metadata['Name']})" for name in names & ours)
    assert clashes == []


# Every command that takes a pipeline YAML, with what else it needs ({config}: the YAML; {corpus}: a text file).
CONFIG_COMMANDS = {
    "run": ["{config}"],
    "evaluate": ["{config}"],
    "results": ["{config}"],
    "ui": ["{config}"],
    "serve": ["{config}"],
    "add-language": ["xx", "--corpus", "{corpus}", "--config", "{config}"],
    "train-language": ["en", "--config", "{config}"],
    "train-task": ["ner", "--config", "{config}"],
}
HEAVY_MODULES = ("torch", "transformers", "prefect", "mlflow", "datasets")


def test_every_command_that_takes_a_config_says_its_error_once_before_anything_heavy_loads(tmp_path):
    """A config with an unknown key or a key given twice: each command says so once, exit status 1,
    before it imports torch, transformers, datasets, Prefect or MLflow or starts a server (what makes
    the error come in well under 2 s instead of 7-20 s; the time itself is measured in the issue
    notes, not asserted here). All commands run in one process, one after another: a command that
    imports something heavy is the one after which it appears in sys.modules."""
    import json

    import typer.main

    from cli.main import app

    commands = typer.main.get_command(app).commands
    assert {name for name, command in commands.items() if any(p.name == "config" for p in command.params)} == set(
        CONFIG_COMMANDS), "a command takes a config: add it to CONFIG_COMMANDS"
    head = "name: x\noutput_dir: out\nbase_model: {name_or_path: xlm-roberta-base}\nlanguages: {en: {corpus: udhr:en}}\n"
    broken = {"colour: unknown key": head + "colour: blue\n",
              "key 'name' is given twice in one mapping (also on line 1)": head + "name: y\n"}
    corpus = tmp_path / "text.txt"
    corpus.write_text("Some text.\n", encoding="utf-8")
    calls = []
    for number, (message, text) in enumerate(broken.items()):
        config = tmp_path / f"bad{number}.yaml"
        config.write_text(text, encoding="utf-8")
        for name, argv in CONFIG_COMMANDS.items():
            calls.append((name, config, message, [name, *(arg.format(config=config, corpus=corpus) for arg in argv)]))
    code = ("import json, sys\nfrom cli.main import main\n"
            "for name, argv in json.loads(sys.argv[1]):\n"
            "    print(f'=== {name}', file=sys.stderr, flush=True)\n"
            "    sys.argv = ['madx', *argv]\n"
            "    try:\n        main()\n        code = 0\n    except SystemExit as e:\n        code = e.code\n"
            f"    heavy = [m for m in {HEAVY_MODULES!r} if m in sys.modules]\n"
            "    print(json.dumps([name, code, heavy]), flush=True)\n")
    result = subprocess.run([sys.executable, "-c", code, json.dumps([(name, argv) for name, _, _, argv in calls])],
                            capture_output=True, text=True, timeout=120, cwd=tmp_path)
    said = result.stderr.split("=== ")[1:]
    finished = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(said) == len(finished) == len(calls), result.stdout + result.stderr[-3000:]
    for (name, config, message, _), err, (_, exit_code, heavy) in zip(calls, said, finished):
        assert err.startswith(f"{name}\n") and err.count("error:") == 1 and err.count(message) == 1, (name, err)
        assert f"error: {config}:" in err, (name, err)
        assert (exit_code, heavy) == (1, []), (name, message, exit_code, heavy)
