"""Every tunable of the mux in one frozen dataclass; its command line fills it in.

dsh starts the mux with the values of its own ClientConfig (``--idle``,
``--executor-max-age``, ``--executor-retry``); the rest are the mux's own.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MuxConfig:
    # From the dsh that starts the mux (its ClientConfig has the defaults):
    socket: str  # the Unix socket it listens on (in the user's runtime directory)
    idle: float  # seconds the mux lives on with nothing to do (DSH_MUX_IDLE)
    executor_max_age: float  # seconds an executor takes new commands, then retires
    executor_retry: float  # seconds a node whose executor failed uses channels
    # The mux's own:
    # seconds clients get to hear that their commands were lost when the mux stops
    shutdown_grace: float = 2.0
    # seconds between looks at the shell start-up files' mtimes (a change retires executors)
    startup_check_interval: float = 1.0
    hello_timeout: float = 15.0  # seconds the login shell and the executor get to say hello
    ack_batch: int = 64 * 1024  # output bytes written out before they are acknowledged
    log_file: str | None = None  # None: stderr
    verbose: bool = False
