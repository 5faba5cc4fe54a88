"""``dsh -a COMMAND`` / ``dsh -w NODES COMMAND``: one command on many nodes at
once, as pdsh and clush do, through the mux's open connections and executors.

Each node gets a MuxCall of its own, run from a thread (start, then the wait
for the exit status, relaying signals as single-node dsh does), with a pipe
pair of this process as its stdout and stderr and /dev/null as its stdin. The
main thread reads every pipe with one selector and writes each line with its
node in front (``NODE: line``), or with -b keeps each node's output and prints
the nodes whose output is the same once, under their node set, as
``dshbak -c`` does. Rules of this file: imported only when -a or -w is given
(never on the fast path of ``dsh gcc``).
"""

from __future__ import annotations

import os
import selectors
import signal
import sys
import threading
from collections import deque
from typing import TYPE_CHECKING

from ..core.nodeset import NodeSetError, expand, fold, natural_key
from ..core.status import STATES
from ..errors import EXIT_FAILED, EXIT_USAGE, DshError, Interrupted, MuxUnavailable
from .backend import RELAYED, Backend, message, working_directory

if TYPE_CHECKING:
    import argparse

    from ..mux.client import MuxCall
    from ..request import Job
    from .cli import Options
    from .config import ClientConfig
    from .syncfile import SyncFile

SKIPPED = ("down", "left")  # states not run on without --all-listed, in the message's order
DEFAULT_FANOUT = 64  # commands running at once (-f), pdsh's and clush's default too
DIVIDER = b"-" * 16 + b"\n"  # dshbak -c's


class Target:
    """One node's run: its pipes, its call to the mux, how it ended."""

    def __init__(self, node: str) -> None:
        self.node = node
        self.prefix = os.fsencode(node) + b": "
        self.status: int | None = None  # the command's exit status
        self.failure: str | None = None  # why it could not run there (exit 255)
        self.interrupted: int | None = None  # the signal that ended the wait (a third one)
        self.out = bytearray()  # -b: all of stdout; else the line not yet ended
        self.err = bytearray()  # the line of stderr not yet ended
        self.wakeup_r = self.wakeup_w = -1  # signals for it (made when it is launched)

    def open(self) -> None:
        self.wakeup_r, self.wakeup_w = os.pipe()
        os.set_blocking(self.wakeup_w, False)

    def close(self) -> None:
        """Its wakeup pipe; again is nothing (it is closed when reaped, and at the end)."""
        for fd in (self.wakeup_r, self.wakeup_w):
            if fd >= 0:
                os.close(fd)
        self.wakeup_r = self.wakeup_w = -1


class FanOut:
    def __init__(
        self, config: ClientConfig, command: list[str], nodes: list[str], fanout: int, gather: bool
    ) -> None:
        self.config = config.replace(stdin=False, tty=False)
        self.command = command
        self.nodes = nodes
        self.fanout = max(1, fanout)
        self.gather = gather
        self.selector = selectors.DefaultSelector()
        self.notify_r, self.notify_w = os.pipe()
        os.set_blocking(self.notify_r, False)
        self.done: deque[Target] = deque()  # filled by the workers
        self.running: list[Target] = []  # launched and not yet ended
        self.finished: list[Target] = []
        self.received: list[int] = []
        self.open_pipes = 0
        self.closed: set[int] = set()  # 1, 2: that output's reader went away
        self.received_signals: set[int] = set()
        self.null = os.open(os.devnull, os.O_RDONLY)
        self.cwd = working_directory()
        self.template: Job | None = None

    # -- signals -----------------------------------------------------------------

    def catch_signals(self, received_signals: set[int]) -> None:
        self.received_signals = received_signals
        for sig in RELAYED:
            if signal.getsignal(sig) != signal.SIG_IGN:  # ignored at start: stays so
                signal.signal(sig, self._on_signal)

    def _on_signal(self, signum: int, _frame: object, keep: bool = True) -> None:
        """To every command started or being started (each relays or keeps it as
        single-node dsh does: the third one ends the wait); no new node starts."""
        self.received.append(signum)
        if keep:
            self.received_signals.add(signum)
        for target in list(self.running):
            try:
                os.write(target.wakeup_w, bytes([signum]))
            except OSError:
                pass

    # -- one node (a worker thread) ----------------------------------------------

    def _job(self, node: str, sync: SyncFile | None) -> Job:
        if self.template is None:
            self.template = Backend(self.config, self.command).job(node, self.cwd, None)
        job = self.template
        return job.replace(node=node, request=job.request.replace(sync=sync.path if sync else None))

    def _sync_file(self) -> SyncFile | None:
        from .syncfile import SyncFile, writable

        if not self.config.sync or not writable(self.cwd):
            return None
        return SyncFile(self.cwd)

    def _work(self, target: Target, call: MuxCall, job: Job, fds: tuple[int, int],
              sync: SyncFile | None) -> None:  # fmt: skip
        ended = False
        try:
            try:
                call.start(job.to_value(), (self.null, *fds))
            finally:
                for fd in fds:
                    os.close(fd)  # the mux has its own: EOF comes when the command's end
            target.status = call.finish(
                target.wakeup_r, lambda call: self._relay(call, target.wakeup_r)
            )
            ended = True
        except Interrupted as exc:
            target.interrupted = exc.signum
        except MuxUnavailable as exc:
            target.failure = f"node {target.node}: {exc} (dsh -a and -w need the mux)"
        except DshError as exc:
            target.failure = str(exc)
        except Exception as exc:  # a worker must report, whatever happened
            target.failure = f"node {target.node}: {type(exc).__name__}: {exc}"
        finally:
            call.close()
            if sync is not None:
                if ended:
                    sync.wait_gone(self.config.sync_timeout)
                sync.remove()
            self.done.append(target)
            try:
                os.write(self.notify_w, b".")
            except OSError:
                pass

    @staticmethod
    def _relay(call: MuxCall, wakeup_r: int) -> None:
        for signum in os.read(wakeup_r, 64):
            if call.signals_sent >= 2:
                raise Interrupted(signum)  # asked three times: stop waiting
            call.relay_signal(signum)

    def _launch(self, target: Target, directory: str) -> None:
        from ..mux.client import MuxCall

        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        for fd, stream in ((out_r, 1), (err_r, 2)):
            self.selector.register(fd, selectors.EVENT_READ, (target, stream))
            self.open_pipes += 1
        sync = self._sync_file()
        call = MuxCall(target.node, directory, self.config)
        target.open()
        self.running.append(target)
        thread = threading.Thread(
            target=self._work, args=(target, call, self._job(target.node, sync),
                                     (out_w, err_w), sync),
            name=f"dsh {target.node}", daemon=True,
        )  # fmt: skip
        thread.start()

    # -- output --------------------------------------------------------------------

    def _write(self, stream: int, data: bytes) -> None:
        if stream in self.closed:
            return
        out = sys.stdout.buffer if stream == 1 else sys.stderr.buffer
        try:
            out.write(data)
            out.flush()
        except BrokenPipeError:
            # `dsh -a cmd | head -1`: as a command whose reader went away, the
            # remote ones get SIGPIPE, no new one starts, and dsh dies of it
            # (die_as_the_command) if they did.
            self.closed.add(stream)
            self._on_signal(signal.SIGPIPE, None, keep=False)

    def _output(self, target: Target, stream: int, data: bytes) -> None:
        if stream == 1 and self.gather:
            target.out += data
            return
        pending = target.out if stream == 1 else target.err
        # Only the new data can hold the line's end: a long line costs one
        # pass, not one per read.
        end = data.rfind(b"\n")
        if end < 0:
            pending += data
            return
        lines = bytes(pending) + data[: end + 1]
        pending[:] = data[end + 1 :]
        # Lines end at \n only, as pdsh's: a \r (a progress bar) stays inside its line.
        parts = lines.split(b"\n")[:-1]
        self._write(stream, b"".join(target.prefix + line + b"\n" for line in parts))

    def _eof(self, target: Target, stream: int) -> None:
        pending = target.out if stream == 1 else target.err
        if pending and not (stream == 1 and self.gather):
            self._write(stream, target.prefix + bytes(pending) + b"\n")
            pending.clear()

    def _gathered(self) -> None:
        """-b: as dshbak -c, the nodes whose stdout is the same under one header."""
        same: dict[bytes, list[str]] = {}
        for target in self.finished:
            if target.out:
                same.setdefault(bytes(target.out), []).append(target.node)
        blocks = sorted(same.items(), key=lambda item: natural_key(min(item[1], key=natural_key)))
        for output, nodes in blocks:
            text = output if output.endswith(b"\n") else output + b"\n"
            header = DIVIDER + os.fsencode(fold(nodes)) + b"\n" + DIVIDER
            self._write(1, header + text)

    # -- the whole -------------------------------------------------------------------

    def run(self) -> int:
        from .rundir import runtime_dir

        try:
            directory = runtime_dir()
        except OSError as exc:
            message(f"no private directory for the mux: {exc}")
            return EXIT_FAILED
        self.selector.register(self.notify_r, selectors.EVENT_READ, None)
        pending = deque(Target(node) for node in self.nodes)
        while True:
            while pending and len(self.running) < self.fanout and not self.received:
                self._launch(pending.popleft(), directory)
            if not self.running and not self.open_pipes:
                break
            for key, _events in self.selector.select():
                if key.data is None:
                    self._reap()
                    continue
                target, stream = key.data
                try:
                    data = os.read(key.fd, 65536)
                except OSError:
                    data = b""
                if data:
                    self._output(target, stream, data)
                    continue
                self.selector.unregister(key.fd)
                os.close(key.fd)
                self.open_pipes -= 1
                self._eof(target, stream)
        if self.gather:
            self._gathered()
        return self._status(skipped=len(pending))

    def _reap(self) -> None:
        try:
            os.read(self.notify_r, 4096)
        except BlockingIOError:
            pass
        while self.done:
            target = self.done.popleft()
            self.running.remove(target)
            target.close()  # its wakeup pipe: two descriptors per node, for 1,000 nodes
            self.finished.append(target)
            if target.failure:
                message(target.failure)

    def _status(self, skipped: int) -> int:
        interrupted = [t.interrupted for t in self.finished if t.interrupted is not None]
        if interrupted:
            return 128 + interrupted[0]
        if skipped and self.received:  # a signal before they started: they never will
            statuses = [t.status for t in self.finished if t.status is not None]
            return max([128 + self.received[0], *statuses])
        if any(t.failure for t in self.finished):
            return EXIT_FAILED
        return max((t.status or 0 for t in self.finished), default=0)

    def close(self) -> None:
        for target in self.finished:
            target.close()
        os.close(self.null)
        self.selector.close()


# -- which nodes -------------------------------------------------------------------


def choose_nodes(
    args: Options | argparse.Namespace, config: ClientConfig
) -> tuple[list[str], dict[str, list[str]]]:
    """(the nodes to run on, the nodes skipped by state: down and left; not
    suspect ones, which are most likely fine). DshError: dshd could not be
    asked and the answer is needed; NodeSetError: a bad -w or -x."""
    from .top.fetch import FetchError, cluster

    wanted = f"{args.nodes or ''},{args.exclude or ''}"
    needs_view = args.all_nodes or "@" in wanted or not args.all_listed
    states: dict[str, str] = {}
    if needs_view:
        try:
            answer = cluster(config.daemon_host, config.http_port, config.daemon_timeout)
        except FetchError as exc:
            if args.all_nodes or "@" in wanted:
                raise DshError(f"cannot list the cluster's nodes: {exc}") from None
            message(f"{exc}; trying every node named (down and left ones too)")
        else:
            for row in answer["nodes"]:  # type: ignore[attr-defined]
                if isinstance(row, dict) and isinstance(row.get("name"), str):
                    states[row["name"]] = str(row.get("state"))
    return select(states, args)


def select(
    states: dict[str, str], args: Options | argparse.Namespace
) -> tuple[list[str], dict[str, list[str]]]:
    """choose_nodes given the gossip's states (name -> state, in its order)."""
    groups = {"all": list(states)}
    for state in STATES:
        groups[state] = [name for name, s in states.items() if s == state]
    nodes = list(states) if args.all_nodes else []
    if args.nodes:
        nodes += expand(args.nodes, groups)
    if args.exclude:
        excluded = set(expand(args.exclude, groups))
        nodes = [n for n in nodes if n not in excluded]
    nodes = list(dict.fromkeys(nodes))
    skipped: dict[str, list[str]] = {}
    for state in () if args.all_listed else SKIPPED:
        named = [n for n in nodes if states.get(n) == state]
        if named:
            skipped[state] = named
    gone = {n for names in skipped.values() for n in names}
    return [n for n in nodes if n not in gone], skipped


def main(
    args: Options | argparse.Namespace, config: ClientConfig, received_signals: set[int]
) -> int:
    """The whole of ``dsh -a`` / ``dsh -w``: see the module's docstring."""
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        message("no command given")
        return EXIT_USAGE
    if args.tty:
        message("-t is for one node; -a and -w give each command /dev/null as stdin")
        return EXIT_USAGE
    if config.direct:
        message("dsh -a and -w run through the mux; --direct (DSH_DIRECT) is for one node")
        return EXIT_USAGE
    try:
        nodes, skipped = choose_nodes(args, config)
    except KeyboardInterrupt:  # Ctrl-C while asking dshd: nothing started yet
        return 128 + signal.SIGINT
    except NodeSetError as exc:
        message(str(exc))
        return EXIT_USAGE
    except DshError as exc:
        message(str(exc))
        return EXIT_FAILED
    if skipped:
        which = " and ".join(f"{state} nodes {fold(names)}" for state, names in skipped.items())
        message(f"skipping {which} (--all-listed tries them)")
    if not nodes:
        message("no node to run on" + (" (all named are down or left)" if skipped else ""))
        return EXIT_FAILED
    fan = FanOut(config, command, nodes, args.fanout, args.gather)
    fan.catch_signals(received_signals)
    try:
        return fan.run()
    finally:
        fan.close()
