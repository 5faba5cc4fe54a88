"""dsh's policy: which node runs the command, what to do when one fails, and
when to run it here instead.

1. Ask the daemon for the best node and the status table; if the daemon
   does not answer, run the command here (unless --no-fallback).
2. A best node that is backed off (its SSH failed lately) gives way to the
   next candidate in the table's order.
3. Try up to ``attempts`` nodes: a node that fails before the command
   started (NodeFailure) is left for the next candidate, asking the daemon
   again; a transport failure also backs it off for every dsh of the user.
   A command that started is never run a second time, whatever happens.
4. The local node runs it here, without SSH. No node left: here, or exit
   255 with --no-fallback.

The daemon and the backend are given to the runner, so that this policy is
tested with a fake daemon answer and a fake backend (tests/unit/client).
"""

from ..core.status import ClusterView
from ..errors import EXIT_FAILED, DaemonUnreachable, NodeFailure
from .backoff import Backoff, next_node
from .config import ClientConfig

TYPE_CHECKING = False  # mypy knows this name; typing is not imported at run time
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Protocol

    class Daemon(Protocol):
        def best(self) -> str | None: ...  # DaemonUnreachable when it does not answer
        def status(self) -> ClusterView: ...

    class Runs(Protocol):
        def run_remote(self, node: str, started: "Callable[[], None]") -> int: ...
        def run_local(self) -> int: ...  # in dsh, exec: it never returns


class Runner:
    def __init__(
        self,
        config: ClientConfig,
        daemon: "Daemon",
        backend: "Runs",
        backoff: Backoff,
        say: "Callable[[str], None]",
        out: "Callable[[str], None]" = print,
    ) -> None:
        self.config = config
        self.daemon = daemon
        self.backend = backend
        self.backoff = backoff
        self.say = say  # a line for stderr (dsh: ...)
        self.out = out  # a line for stdout (--dry-run's answer)

    def _clear_backoff(self, node: str) -> "Callable[[], None]":
        """Once the command started there, the node is good again."""
        return lambda: self.backoff.clear(node)

    def fallback(self, reason: str) -> int:
        if not self.config.fallback:
            self.say(f"{reason}; not running locally (--no-fallback)")
            return EXIT_FAILED
        if not self.config.quiet:
            self.say(f"{reason}; running locally")
        return self.backend.run_local()

    def run(self, dry_run: bool = False) -> int:
        c = self.config
        try:
            best = self.daemon.best()
            status = self.daemon.status()
        except DaemonUnreachable as exc:
            if dry_run:  # say where it would run; never run it
                self.say(f"{exc}; would run locally")
                self.out("local")
                return 0
            return self.fallback(str(exc))
        tried: set[str] = set()
        node = best
        if node is not None and node != status.self_name and self.backoff.active(node):
            node = next_node(status, tried, self.backoff)
        for _attempt in range(c.attempts):
            if node is None:
                break
            local = node == status.self_name
            if dry_run:
                self.out(node)
                return 0
            if c.verbose:
                self.say(f"running on {node} (local)" if local else f"running on {node}")
            if local:
                return self.backend.run_local()
            try:
                return self.backend.run_remote(node, self._clear_backoff(node))
            except NodeFailure as exc:
                self.say(f"{exc}; trying another node")
                if exc.transport:
                    self.backoff.mark(node)
            tried.add(node)
            try:
                node = next_node(self.daemon.status(), tried, self.backoff)
            except DaemonUnreachable:
                node = None
        if dry_run:
            self.out("NONE")
            return EXIT_FAILED
        reason = (
            "no node available"
            if not tried
            else f"no node could run it (tried {', '.join(sorted(tried))})"
        )
        return self.fallback(reason)
