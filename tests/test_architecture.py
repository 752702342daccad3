"""The layering rules of docs/architecture.md, checked on the code itself."""

from __future__ import annotations

import ast
import pkgutil
import subprocess
import sys

import seas_operator
from tests.helpers import ROOT

RUNTIME = ROOT / "seas_runtime"
OPERATOR = ROOT / "operator" / "seas_operator"


def _imports(path, top_level_only: bool) -> list[tuple[int, str]]:
    """(line, module) of each import in ``path``; with ``top_level_only`` False, only those inside functions."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    functions = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    nodes = [n for f in functions for n in ast.walk(f)] if not top_level_only else list(ast.walk(tree))
    for node in nodes:
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
    return found


def test_the_data_plane_never_imports_the_control_plane():
    offenders = [f"{p.relative_to(ROOT)}:{line} imports {module}" for p in RUNTIME.rglob("*.py")
                 for line, module in _imports(p, top_level_only=True) if module.split(".")[0] == "seas_operator"]
    assert offenders == []


def test_the_control_plane_imports_the_runtime_only_at_the_top():
    offenders = [f"{p.relative_to(ROOT)}:{line} imports {module} inside a function" for p in OPERATOR.rglob("*.py")
                 for line, module in _imports(p, top_level_only=False) if module.split(".")[0] == "seas_runtime"]
    assert offenders == []


def test_the_control_plane_loads_with_torch_transformers_and_vllm_blocked():
    """Every operator module, the kopf handlers included, imports with the heavy libraries unavailable."""
    modules = sorted(f"seas_operator.{m.name}" for m in pkgutil.iter_modules(seas_operator.__path__))
    assert "seas_operator.handlers" in modules and "seas_operator.cli" in modules
    script = (
        "import sys\n"
        "for name in ('torch', 'transformers', 'vllm', 'trl', 'peft'):\n"
        "    sys.modules[name] = None  # any import of them raises ImportError\n"
        "import importlib\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] == 'seas_runtime')\n"
        "print(' '.join(loaded))\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    loaded = set(proc.stdout.split())
    # Only the torch-free shared modules come along.
    assert loaded <= {"seas_runtime", "seas_runtime.settings", "seas_runtime.contract", "seas_runtime.layout", "seas_runtime.problems",
                      "seas_runtime.data", "seas_runtime.data.formats", "seas_runtime.artifacts", "seas_runtime.stats"}, loaded


def test_the_runtime_stages_never_import_each_other():
    stages = {m.name for m in pkgutil.iter_modules([str(RUNTIME / "stages")])}
    offenders = []
    for name in stages:
        tree = ast.parse((RUNTIME / "stages" / f"{name}.py").read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level == 1 and (node.module in stages or any(a.name in stages for a in node.names)):
                offenders.append(f"stages/{name}.py:{node.lineno}")
    assert offenders == []
