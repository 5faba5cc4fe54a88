"""The direct path: dsh connects to the node itself (``--direct``, or no mux).

It costs a connection and an authentication per command (and paramiko's
import, some 150 ms), which the mux exists to save; it is what dsh falls
back to when no mux can take the command, and what dsh 0.1 always did.
"""

import sys

from ..request import Job
from .terminal import raw_terminal

TYPE_CHECKING = False  # mypy knows this name; typing is not imported at run time
if TYPE_CHECKING:
    from collections.abc import Callable

    from ..ssh.session import Session


def run_direct(
    job: Job,
    wakeup_fd: int,
    on_signal: "Callable[[Session], None]",
    handing_over: "Callable[[], None]",
    on_started: "Callable[[], None]",
    ended: "Callable[[bool], None]",
) -> int:
    """Run the job over a connection of this process's own; its exit status.

    ``handing_over`` just before the request leaves (from then on the command
    may run), ``on_started`` once the command is committed, ``ended(True)`` after it
    ended on the node and ``ended(False)`` when its end was not seen there
    (a failure, a lost connection, an abort): the caller's sync file waits
    only for the first.
    """
    if sys.flags.no_site:  # python3 -S dsh: paramiko is in site-packages
        import site

        site.main()
    from ..ssh import connect as ssh
    from ..ssh.session import Session
    from ..ssh.stdio import Stdio

    client = None
    status: int | None = None
    session = None
    try:
        client = ssh.connect(ssh.target_for(job.node, job.ssh_config, job.connect_timeout))
        session = Session(
            client,
            job.node,
            wakeup_fd,
            forward_stdin=job.stdin,
            tty=job.request.pty,
            stdio=Stdio(term=job.term, columns=job.columns, lines=job.lines),
        )
        handing_over()
        session.start(job.request, job.python, job.start_grace)
        on_started()
        with raw_terminal(job.request.pty):
            status = session.finish(on_signal)
        return status
    finally:
        ended(status is not None and session is not None and session.aborted_by is None)
        if client is not None:
            client.close()
