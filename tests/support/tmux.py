"""A real terminal for terminal programs: one window of a private tmux server.

Each Tmux has a server of its own (``-L`` a unique socket name, ``-f
/dev/null``: none of the user's config), so tests never see each other's
windows or a user's session; ``kill`` ends the server and what runs in it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid

SESSION = "t"


class Tmux:
    def __init__(self, columns: int = 120, rows: int = 30) -> None:
        if shutil.which("tmux") is None:
            raise RuntimeError("tmux is not installed (contrib/install-deps installs it)")
        self.socket = f"dsh-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.columns, self.rows = columns, rows
        # COLUMNS and LINES would override the window's size in what runs there
        # (shutil.get_terminal_size reads them first): pytest-xdist's workers
        # have COLUMNS=80 LINES=24.
        drop = ("TMUX", "TMUX_PANE", "COLUMNS", "LINES")
        self.env = {k: v for k, v in os.environ.items() if k not in drop}

    def tmux(self, *args: str) -> str:
        done = subprocess.run(
            ["tmux", "-L", self.socket, "-f", "/dev/null", *args],
            capture_output=True, text=True, timeout=10, env=self.env,
        )  # fmt: skip
        if done.returncode != 0:
            raise AssertionError(f"tmux {' '.join(args)}: {done.stderr.strip()}")
        return done.stdout

    def start(self, shell_command: str) -> None:
        """Run ``shell_command`` (sh -c) in a detached window of the size given."""
        self.tmux("new-session", "-d", "-s", SESSION, "-x", str(self.columns),
                  "-y", str(self.rows), shell_command)  # fmt: skip
        # The window keeps the size asked for, not a client's (there is none).
        self.tmux("set-option", "-t", SESSION, "window-size", "manual")

    def keys(self, *keys: str) -> None:
        self.tmux("send-keys", "-t", SESSION, *keys)

    def screen(self, escapes: bool = False) -> str:
        """The pane's text (with -e: its SGR escapes too), one line per row."""
        return self.tmux("capture-pane", "-p", *(["-e"] if escapes else []), "-t", SESSION)

    def resize(self, columns: int, rows: int) -> None:
        self.tmux("resize-window", "-t", SESSION, "-x", str(columns), "-y", str(rows))

    def kill(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True,
                       timeout=10, env=self.env)  # fmt: skip
