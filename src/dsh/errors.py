"""The exception tree of dsh.

::

    DshError                  anything dsh or dshd reports to a user as one line
    ├── ConfigError           the user's input is wrong (cluster file, flags, environment); exit 2
    │   └── ConfigFileError   FILE:LINE: what is wrong (dshd.conf)
    │       └── ClusterFileError  the same, in the cluster file
    ├── WireError             a datagram that does not decode; counted and dropped
    │   └── AuthError         not sealed with one of our keys (or sealed when we have none)
    ├── DaemonUnreachable     dsh could not get an answer from the local dshd
    ├── NodeFailure           a node failed before the command started: nothing ran there
    │   ├── ChannelRefused    sshd refused one more channel (MaxSessions): try a new connection
    │   └── ExecutorLost      the node's executor went away before the command started
    ├── ConnectionLost        the SSH channel closed while the command ran: its outcome is unknown
    └── MuxLost               the mux took the command and went away: its outcome is unknown

    Control flow, never shown to a user as they are:
    MuxUnavailable            no mux took the command and nothing started: dsh goes direct
    ExecutorUnavailable       no executor on that node: the mux uses one channel per command
    ClientGone                dsh went away before its command started: it must not start
    Interrupted               dsh got a signal before the command started: exit 128+N

    Defined where they are raised, because those modules import nothing of dsh:
    request.RequestError      (ValueError) a command request that does not fit the schema;
                              request.py is sent to the node as source
    mux.protocol.MuxProtocolError  bytes that are no dsh <-> mux message; no imports at all
    node.protocol.ProtocolError    a bad mux <-> executor frame; sent to the node as source

Errors are split by who is to blame, as h11 does: a ``ConfigError`` is the
user's to fix, a ``WireError`` is a remote peer's (or an attacker's) and must
never stop the daemon, a ``NodeFailure`` counts against a node (when
``transport``) and lets dsh try another, while ``ConnectionLost`` and
``MuxLost`` come after the command started, when trying again would run it
twice. dsh's exit statuses for these outcomes are here too. Rules of this
file: no imports (dsh imports it on its fast path).
"""

# dsh's own exit statuses, besides the command's (README.md, dsh --help)
EXIT_USAGE = 2  # bad dsh options or environment
EXIT_CANNOT_EXECUTE = 126  # the command exists but cannot be run (as in a shell)
EXIT_NOT_FOUND = 127  # the command was not found (as in a shell)
EXIT_FAILED = 255  # dsh could not run the command, or lost it (as ssh)


class DshError(Exception):
    """An error with a message meant for the user, printed as one line."""


class ConfigError(DshError):
    """Invalid configuration: a bad flag value, variable or cluster file."""


class ConfigFileError(ConfigError):
    """FILE:LINE: what is wrong (FILE: what, without a line)."""

    def __init__(self, filename: str, line: int, message: str) -> None:
        self.filename = filename
        self.line = line
        self.message = message
        super().__init__(f"{filename}:{line}: {message}" if line else f"{filename}: {message}")


class ClusterFileError(ConfigFileError):
    """In the cluster file."""


class WireError(DshError):
    """A datagram that is not a well-formed message of a version we speak."""


class AuthError(WireError):
    """A datagram that is not sealed with any of our keys (or not sealed at all)."""


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


class ChannelRefused(NodeFailure):
    """The connection is fine but the server refused another channel on it
    (sshd's MaxSessions, 10 by default): another connection will do."""

    def __init__(self, node: str, message: str) -> None:
        super().__init__(node, message, transport=False)


class ExecutorLost(NodeFailure):
    """The executor went away before the command started: nothing ran; try otherwise."""


class ConnectionLost(DshError):
    """The channel closed after the command started: its fate is unknown."""


class MuxLost(DshError):
    """The mux took the command and then went away: its outcome is unknown."""


class MuxUnavailable(Exception):
    """No mux could take the command, and nothing was started: use the direct path."""


class ExecutorUnavailable(Exception):
    """The executor could not be started on the node: use one channel per command."""


class ClientGone(Exception):
    """dsh went away before its command started."""


class Interrupted(Exception):
    """dsh got signal ``signum`` before the command started anywhere."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum
