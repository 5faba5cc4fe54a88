"""Every module of the package imports in a fresh interpreter: an annotation
that names what only mypy imports (the fast-path modules do without
``from __future__``) would otherwise fail only where that module is used."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import dsh

PACKAGE = Path(dsh.__file__).resolve().parent


def test_every_module_imports() -> None:
    names = sorted(
        "dsh." + ".".join(p.relative_to(PACKAGE).with_suffix("").parts)
        for p in PACKAGE.rglob("*.py")
        if p.name != "__init__.py"
    )
    assert "dsh.client.cli" in names and "dsh.node.rexec" in names
    script = "import importlib, sys\nfor n in sys.argv[1:]:\n    importlib.import_module(n)\n"
    done = subprocess.run(
        [sys.executable, "-c", script, *names],
        capture_output=True, text=True, timeout=60, cwd=PACKAGE.parent,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
