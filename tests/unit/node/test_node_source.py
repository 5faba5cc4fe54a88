"""node/source.py: the text sent to a node is whole, standard library only,
and defines no name twice."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from dsh.node import source

PACKAGE = Path(source.__file__).resolve().parent.parent
PROGRAMS = {"rexec": source.REXEC_PARTS, "executor": source.EXECUTOR_PARTS}


def _top_level_names(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return names - {"TYPE_CHECKING"}  # (the same False in every part)


@pytest.mark.parametrize("program", PROGRAMS)
def test_parts_define_no_name_twice(program: str) -> None:
    seen: dict[str, str] = {}
    for part in PROGRAMS[program]:
        tree = ast.parse(source.strip((PACKAGE / part).read_text()))
        for name in _top_level_names(tree):
            assert name not in seen, f"{name} in both {seen[name]} and {part}"
            seen[name] = part


@pytest.mark.parametrize("program", PROGRAMS)
def test_the_text_imports_only_the_standard_library(program: str) -> None:
    text = getattr(source, f"{program}_source")()
    tree = ast.parse(text)
    assert text.startswith("from __future__ import annotations\n")
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"relative import left in: {ast.unparse(node)}"
            modules = [node.module or ""]
        elif isinstance(node, ast.Import):
            modules = [a.name for a in node.names]
        else:
            continue
        for module in modules:
            top = module.split(".")[0]
            assert top in sys.stdlib_module_names or top == "__future__", module


def test_every_node_file_marks_its_dsh_imports() -> None:
    """What the node runs is the stripped text: an unmarked dsh import would
    work in the tests (where dsh is importable) and fail on a real node."""
    for path in [PACKAGE / "request.py", *sorted((PACKAGE / "node").glob("*.py"))]:
        if path.name in ("__init__.py", "source.py"):
            continue
        for node in ast.walk(ast.parse(source.strip(path.read_text()))):
            if isinstance(node, ast.ImportFrom):
                assert node.level == 0 and node.module != "dsh", (path.name, ast.unparse(node))


def test_rexec_text_runs_and_refuses_a_bad_request() -> None:
    done = subprocess.run(
        [sys.executable, "-I", "-c", source.rexec_source(), "bm90IGpzb24="],
        capture_output=True, timeout=30,
    )  # fmt: skip
    assert done.returncode == 254
    assert done.stderr.startswith(b"\x00dsh-rexec:err protocol bad request")
