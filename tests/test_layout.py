"""The house keeps its shape: imports point one way, the shared layer is a leaf, shared export code names no trainer.

Read from the source with ``ast`` (nothing is imported), so a change that breaks a rule fails here with the file
and line, before it shows up as a cycle or a slow ``--help``.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("advisor", "estimators", "profiler", "reports", "templates")
#: the trainers the exporters register; shared export code must not name them
TRAINERS = ("axolotl", "llamafactory", "trl")
SHARED_EXPORT = ("context.py", "registry.py", "readme.py", "launch.py", "render.py", "write.py", "yamltext.py")


def _modules(package: str):
    for path in sorted((ROOT / package).rglob("*.py")):
        yield path, ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _imports(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                yield node.lineno, a.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module


def test_estimators_profiler_and_reports_import_only_the_contract_of_advisor():
    bad = [f"{path.relative_to(ROOT)}:{line} imports {mod}"
           for package in ("estimators", "profiler", "reports")
           for path, tree in _modules(package) for line, mod in _imports(tree)
           if (mod == "advisor" or mod.startswith("advisor.")) and not mod.startswith("advisor.contract")]
    assert not bad, bad


def test_the_contract_imports_nothing_else_of_the_project():
    bad = [f"{path.relative_to(ROOT)}:{line} imports {mod}"
           for path, tree in _modules("advisor/contract") for line, mod in _imports(tree)
           if mod.split(".")[0] in PACKAGES and not mod.startswith("advisor.contract")]
    assert not bad, bad


def test_nothing_imports_the_cli():
    bad = [f"{path.relative_to(ROOT)}:{line} imports {mod}"
           for package in PACKAGES for path, tree in _modules(package) for line, mod in _imports(tree)
           if mod.startswith("advisor.cli") and "advisor/cli" not in path.as_posix()]
    assert not bad, bad


def test_shared_export_code_names_no_trainer():
    """A trainer is one module that registers itself; the registry, context, README, launch and writing code
    loop over what the trainers declare (names in docstrings and comments are fine: they are not code)."""
    bad = []
    for name in SHARED_EXPORT:
        path = ROOT / "reports" / "export" / name
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docstrings = {id(n.body[0].value) for n in ast.walk(tree)
                      if isinstance(n, (ast.Module, ast.FunctionDef, ast.ClassDef)) and n.body
                      and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
                words = {w.strip("`'\"().,:;") for w in node.value.lower().replace("/", " ").split()}
                hit = sorted(words & set(TRAINERS))
                if hit:
                    bad.append(f"reports/export/{name}:{node.lineno} names {hit}")
            elif isinstance(node, ast.Name) and node.id in TRAINERS:
                bad.append(f"reports/export/{name}:{node.lineno} uses {node.id}")
    assert not bad, bad


def test_every_trainer_module_registers_itself():
    from reports.export import FORMATS

    assert list(FORMATS) == list(TRAINERS)
    for name in TRAINERS:
        text = (ROOT / "reports" / "export" / f"{name}.py").read_text(encoding="utf-8")
        assert "register_format(ExportFormat(NAME" in text, name
        assert (ROOT / "templates" / name / "README.md.j2").is_file(), name
