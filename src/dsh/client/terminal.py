"""dsh's terminal and how it ends: -t's raw mode, the window size, dying of a signal.

Rules of this file: on dsh's fast path (see cli.py): termios, tty and
select are imported only where they are used.
"""

import os

TYPE_CHECKING = False  # mypy knows this name; typing is not imported at run time
if TYPE_CHECKING:
    import signal
    from typing import Any
else:
    import _signal as signal  # signal.py's enums: 6 ms at import on the test machine


def terminal_size() -> tuple[int, int]:
    try:
        size = os.get_terminal_size(0)
        return size.columns, size.lines
    except OSError:
        return 80, 24


def stdin_is_tty() -> bool:
    try:
        return os.isatty(0)
    except OSError:
        return False


class raw_terminal:
    """With -t, the local terminal passes every key to the remote one (as ssh -t)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled and stdin_is_tty()
        self.saved: list[Any] | None = None

    def __enter__(self) -> None:
        if self.enabled:
            import termios
            import tty

            self.saved = termios.tcgetattr(0)
            tty.setraw(0)

    def __exit__(self, *exc: object) -> None:
        if self.saved is not None:
            import termios

            termios.tcsetattr(0, termios.TCSADRAIN, self.saved)


def die_as_the_command(status: int, received_signals: set[int]) -> None:
    """End by signal N, not with status 128+N, when the command ended so because
    of what happened to this dsh: the user's Ctrl-C (or a TERM or HUP) that dsh
    passed on, or a closed output pipe. The shell then sees what a local
    command would have given it: a `for` loop stops at Ctrl-C (bash goes on
    when a child exits 130, taking it for a child that handled the signal),
    and `dsh yes | head -1` dies of SIGPIPE silently. A status of 128+N from
    any other cause stays a status: dsh cannot tell a command killed by N on
    the node from one that exited with 128+N, and does not guess."""
    signum = status - 128
    if signum in received_signals or (signum == signal.SIGPIPE and output_closed()):
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)  # delivered before kill() returns


def output_closed() -> bool:
    import select

    poller = select.poll()
    poller.register(1, select.POLLOUT)
    return any(events & select.POLLERR for _fd, events in poller.poll(0))
