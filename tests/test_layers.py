"""The import layers of docs/architecture.md hold: import-linter's contracts in pyproject.toml
([tool.importlinter]), every module placed in a layer, and no pianoeval import inside a function
unless it is a deliberate lazy import that says so (``# lazy: <why>``)."""

import ast
import os
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "pianoeval"

NOT_YET_CHECKED: set[str] = set()


def test_the_import_contracts_hold():
    """`lint-imports`: the layers, the tracks' independence, and the torch-free config path."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(
        [sys.executable, "-c", "from importlinter.cli import lint_imports_command; lint_imports_command()",
         "--config", str(ROOT / "pyproject.toml"), "--no-cache", "--no-logo"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout, done.stdout


def _layered_modules() -> list[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    layers = next(c for c in config["contracts"] if c["id"] == "layers")["layers"]
    return [name.strip() for layer in layers for name in layer.replace(":", "|").split("|")]


def _modules_to_place() -> list[str]:
    """Every top-level module and package of pianoeval, and every module of pianoeval.models
    (a package that spans layers: registry and configs low, model families among the tracks)."""
    names = [f"pianoeval.{p.stem}" for p in PACKAGE.glob("*.py") if p.stem != "__init__"]
    names += [f"pianoeval.{p.name}" for p in PACKAGE.iterdir() if (p / "__init__.py").is_file() and p.name != "models"]
    models = PACKAGE / "models"
    names += [f"pianoeval.models.{p.stem}" for p in models.glob("*.py") if p.stem != "__init__"]
    names += [f"pianoeval.models.{p.name}" for p in models.iterdir() if (p / "__init__.py").is_file()]
    return sorted(names)


def test_every_module_is_placed_in_a_layer():
    layered = set(_layered_modules())
    missing = [m for m in _modules_to_place() if m not in layered]
    assert not missing, f"add these to a layer of [tool.importlinter] in pyproject.toml: {missing}"


def _is_pianoeval(node: ast.AST) -> bool:
    if isinstance(node, ast.ImportFrom):
        return node.level > 0 or (node.module or "").split(".")[0] == "pianoeval"
    return any(alias.name.split(".")[0] == "pianoeval" for alias in node.names)


def _says_lazy(lines: list[str], node: ast.AST, import_lines: set[int]) -> bool:
    """``# lazy:`` on the import's line, or in the comment above its group of imports."""
    if "# lazy:" in lines[node.lineno - 1]:
        return True
    number = node.lineno - 1
    while number >= 1 and (number in import_lines or not lines[number - 1].strip()):
        number -= 1
    while number >= 1 and lines[number - 1].strip().startswith("#"):
        if lines[number - 1].strip().startswith("# lazy:"):
            return True
        number -= 1
    return False


def in_function_imports(path: Path, root: Path = ROOT) -> list[str]:
    """``file:line: import`` of each pianoeval import inside a function without a ``# lazy:`` comment."""
    source = path.read_text()
    lines = source.splitlines()
    found = []
    for function in ast.walk(ast.parse(source)):
        if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        imports = [n for n in ast.walk(function) if isinstance(n, (ast.Import, ast.ImportFrom))]
        import_lines = {line for n in imports for line in range(n.lineno, n.end_lineno + 1)}
        for node in imports:
            if _is_pianoeval(node) and not _says_lazy(lines, node, import_lines):
                found.append(f"{path.relative_to(root)}:{node.lineno}: {lines[node.lineno - 1].strip()}")
    return sorted(set(found))


def test_no_pianoeval_import_inside_a_function_unless_a_lazy_comment_says_why():
    """An import inside a function that dodges a cycle hides a layering problem; move the shared
    piece down a layer instead. One that keeps start-up fast is fine: ``# lazy: <why>``."""
    files = sorted(PACKAGE.rglob("*.py")) + sorted((ROOT / "runners").glob("*.py"))
    found = [hit for path in files if str(path.relative_to(ROOT)) not in NOT_YET_CHECKED
             for hit in in_function_imports(path)]
    assert not found, "\n".join(found)


def test_the_check_sees_an_unmarked_import_and_accepts_a_marked_one(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("def f():\n    from pianoeval.train.run import train_run\n\n\n"
                      "def g():\n    # lazy: Lightning loads once the config is valid\n"
                      "    import torch\n\n    from pianoeval.train.run import train_run\n"
                      "    from pianoeval.train.data import (build_datamodule,\n"
                      "                                      labelled_items)\n"
                      "    from . import sibling\n")
    assert in_function_imports(sample, tmp_path) == ["sample.py:2: from pianoeval.train.run import train_run"]
