"""The programs under test, as a user runs them from this checkout."""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SRC = str(REPO / "src")
DSH = str(REPO / "dsh")
DSHD = str(REPO / "dshd")
WAITFILE = str(REPO / "waitfile")
# FrUCToSA's documented example lagent.conf, as it is (its README, "Usage", step 5)
LAGENT_CONF_FILE = REPO / "tests" / "data" / "lagent.conf"
PY = sys.executable  # the interpreter the tests run under runs dsh and dshd too
