"""The exception tree of dsh.

::

    DshError                  anything dsh or dshd reports to a user as one line
    ├── ConfigError           the user's input is wrong (cluster file, flags); exit 2
    │   └── ClusterFileError  FILE:LINE: what is wrong
    ├── WireError             a datagram that does not decode; counted and dropped
    ├── DaemonUnreachable     dsh could not get an answer from the local dshd
    └── NodeFailure           a node failed before the command started (transport, setup)

Errors are split by who is to blame, as h11 does: a ``ConfigError`` is the
user's to fix, a ``WireError`` is a remote peer's (or an attacker's) and must
never stop the daemon, a ``NodeFailure`` counts against a node.
"""


class DshError(Exception):
    """An error with a message meant for the user, printed as one line."""


class ConfigError(DshError):
    """Invalid configuration: a bad flag value or a bad cluster file."""


class ClusterFileError(ConfigError):
    def __init__(self, filename: str, line: int, message: str) -> None:
        self.filename = filename
        self.line = line
        self.message = message
        super().__init__(f"{filename}:{line}: {message}" if line else f"{filename}: {message}")


class WireError(DshError):
    """A datagram that is not a well-formed message of a version we speak."""


class DaemonUnreachable(DshError):
    """The local dshd did not answer (not running, wrong port, timed out)."""


class NodeFailure(DshError):
    """A node could not run the command; nothing was started there.

    ``transport`` is True when the failure is the node's or the network's
    (connection refused, authentication, host key) and so counts against the
    node; False for a set-up failure such as a missing directory.
    """

    def __init__(self, node: str, message: str, transport: bool = True) -> None:
        self.node = node
        self.transport = transport
        super().__init__(f"node {node}: {message}")
