"""The text sent to a node: a node-side program and what it imports, as one script.

The node runs ``python3 -c TEXT``, from this text and not from an installed
copy (homes are shared, installs may differ or be missing; the interpreter
is all that is assumed). So the programs import nothing of dsh's at run
time: each file marks its dsh imports ``# dsh:strip`` (one line) or
``# dsh:strip-begin`` ... ``# dsh:strip-end``, and the files they come from
are put ahead of it here. Every ``from __future__`` line goes and one comes
first, where Python requires it; the module docstrings stay behind.
tests/unit/node checks that the parts define no top-level name twice and
import nothing outside the standard library, and the system tests run the
result on real nodes.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent.parent  # src/dsh
_FUTURE = "from __future__ import annotations"

# What each program is made of, in order (paths below src/dsh).
REXEC_PARTS = ("request.py", "node/launch.py", "node/rexec.py")
EXECUTOR_PARTS = ("request.py", "node/launch.py", "node/protocol.py", "node/executor.py")


def strip(text: str) -> str:
    """A part's text without its module docstring (the node does not read it,
    and the text travels with every command on an exec channel), its dsh
    imports and its ``from __future__`` line."""
    if text.startswith('"""'):
        text = text[text.index('"""', 3) + 3 :]
    lines = []
    skipping = False
    for line in text.splitlines():
        if skipping:
            skipping = "# dsh:strip-end" not in line
            continue
        if "# dsh:strip-begin" in line:
            skipping = True
            continue
        if "# dsh:strip" in line or line.startswith(_FUTURE):
            continue
        lines.append(line)
    return "\n".join(lines)


def assemble(parts: tuple[str, ...]) -> str:
    return "\n\n".join([_FUTURE] + [strip((_PACKAGE / p).read_text("utf-8")) for p in parts]) + "\n"


@cache
def rexec_source() -> str:
    return assemble(REXEC_PARTS)


@cache
def executor_source() -> str:
    return assemble(EXECUTOR_PARTS)
