"""The daemon's asyncio shell: start-up, gossip socket, timers, signals, shutdown.

Everything decided lives in gossip.GossipNode; this module moves datagrams
between the gossip socket and it, and keeps every wait bounded so that no
datagram can stall the loop. The TCP ports are in ports.py, the control socket
in control.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import random
import signal
import socket
import time

from .. import __version__
from ..core.auth import NONCE_BYTES, Sealer
from ..core.cluster import Discovery, NodeSpec, load_cluster_file
from ..core.gossip import GossipNode
from ..core.history import History
from ..core.score import SCORES
from ..core.wire import MAX_DATAGRAM
from ..errors import DshError
from .api import Api
from .conf import DshdConf
from .config import DaemonConfig
from .control import ControlSocket
from .graphite import GraphiteSender
from .http import HttpServer
from .keys import load_keys
from .metrics import DshdCollector, Own, http_pages
from .ports import TcpPorts
from .procs import Jobs, ProcstatPort, ProcTable, Quik, effective_policy
from .sampler import Sampler
from .sensors.runner import SensorRunner, SensorState
from .view import View
from .whoami import resolve

log = logging.getLogger(__name__)

# Datagrams read per wake-up of the gossip socket: one wake-up per datagram
# costs more than the decoding under a flood, and an unbounded loop would
# starve the TCP ports and the timers. Not a config field: it only shares the
# loop's time, which no deployment has a reason to set differently.
READ_BATCH = 256
# Above the fan-out threshold a node announces itself to the discovery
# addresses every this many ticks (every tick below it, where it is the gossip).
ANNOUNCE_EVERY = 20


def _proc_mounts() -> str:
    try:
        with open("/proc/mounts") as f:
            return f.read()
    except OSError:
        return ""


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


class Daemon:
    def __init__(
        self,
        config: DaemonConfig,
        specs: list[NodeSpec],
        self_name: str,
        resolved: dict[str, tuple[str, ...]],
        keys: list[bytes] | None = None,
        conf: DshdConf | None = None,
        discovery: tuple[Discovery, ...] = (),
    ) -> None:
        self.config = config
        self.conf = conf if conf is not None else DshdConf.defaults()
        self.rng = random.Random()
        self.node = GossipNode(
            specs,
            self_name,
            SCORES[config.score],
            interval=config.interval,
            suspect_after=config.suspect_after,
            extraload=config.extraload,
            extra_reports=config.extra_reports,
            extra_ttl=config.extra_ttl,
            incarnation=time.time_ns() // 1_000_000,
            rng=self.rng,
            sealer=Sealer(keys) if keys else None,
            nonce=lambda: os.urandom(NONCE_BYTES),
            replay_window_ms=round(config.replay_window * 1000),
            fanout_above=config.fanout_above,
            fanout=config.fanout,
            discovery=bool(discovery),
        )
        self.discovery = discovery
        self.ports = TcpPorts(config, self.node, self._send)
        self.control = ControlSocket(config, self.node, announce=self.tick)
        for spec in specs:
            self.node.set_addresses(spec.name, resolved.get(spec.key, ()))
        self.sampler = Sampler()
        self.sensors = SensorRunner(self.conf.sensors)
        self.ports.footers.append(self.sensors.footer)
        # Graphite: one listener and one footer for the process; they follow
        # the sender of the moment (a reload may replace or remove it).
        self.graphite: GraphiteSender | None = None
        self._graphite_task: asyncio.Task[None] | None = None
        self._set_graphite()
        self.sensors.add_listener(self._to_graphite)
        self.ports.footers.append(lambda: self.graphite.footer() if self.graphite else [])
        # GET /metrics on --http.
        self.http = HttpServer(config, self.ports.allowed, {})
        collector = DshdCollector(self.node, self._own, lambda: self.sensors.states.values(),
                                  time.monotonic)  # fmt: skip
        self.http.pages.update(http_pages(collector))
        # Every node's recent states, one point per tick (dsh top, plot, the page).
        self.history = History(config.interval)
        api = Api(self.node, self.history, self.ports.best_answers, config.interval, time.time,
                  time.monotonic)  # fmt: skip
        self.http.pages.update(api.pages())
        # The live page at / (over metrics.py's index) and /api/view: daemon/view.py.
        view = View(self.node, lambda: self.conf.view, config.interval, time.time)
        self.http.pages.update(view.pages())
        self.ports.footers.append(self.http.footer)
        # procstatd's quik and jobs: GET /quik, /jobs and --procstat-port (procs.py).
        policy = effective_policy(config.jobs or self.conf.jobs, _proc_mounts())
        self.quik = Quik()
        self.jobs = Jobs(self_name, policy, ProcTable(policy), self.quik)
        self.http.pages.update(self.jobs.pages())
        self.procstat = ProcstatPort(config, self.ports.allowed, self.jobs)
        self.ports.footers.append(self.procstat.footer)
        self._stopping = asyncio.Event()
        self._servers: list[asyncio.Server] = []
        self._gossip: socket.socket | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._resolve_now = asyncio.Event()
        self._ticks = 0

    def _own(self) -> Own:
        graphite = self.graphite.counters if self.graphite is not None else None
        return Own(self.node.name, self.node.counters, self.ports.counters, self.http.counters,
                   self.ports.best_answers, graphite, self.node.events,
                   self.node.health, self.ports.questions, self.node.bids)  # fmt: skip

    # -- start -----------------------------------------------------------------

    def _gossip_bind_address(self) -> tuple[str, int]:
        own = self.node.addresses(self.node.name)
        others = [
            a
            for spec in self.node.roster.specs.values()
            if spec.key != self.node.key
            for a in self.node.addresses(spec.name)
        ]
        if not own or self.discovery:
            # Broadcasts and multicasts reach only a socket bound to any address.
            return ("0.0.0.0", socket.AF_INET)
        address = own[0]
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        # Debian maps the host name to 127.0.1.1; binding there would make the
        # node unreachable for its peers, so a loopback address is only used
        # when the peers are on loopback too (a test cluster).
        if _is_loopback(address) and others and not all(_is_loopback(a) for a in others):
            address = "::" if family == socket.AF_INET6 else "0.0.0.0"
        return (address, family)

    def _join_discovery(self, sock: socket.socket) -> None:
        for d in self.discovery:
            try:
                if d.kind == "broadcast":
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
                else:  # IPv4 only (cluster.py): the socket with discovery is IPv4
                    group = socket.inet_aton(d.address) + socket.inet_aton("0.0.0.0")
                    sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, group)
                    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
            except OSError as exc:
                sock.close()
                raise DshError(f"cannot use @{d.kind} {d.address}: {exc.strerror}") from None

    async def start(self) -> None:
        """Bind every socket; errors are DshErrors."""
        loop = asyncio.get_running_loop()
        # Handlers first: a SIGTERM the moment `dshd -b` has returned must
        # still be a clean stop (pidfile removed), not the default death.
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop)
        loop.add_signal_handler(signal.SIGHUP, self.reload)
        address, family = self._gossip_bind_address()
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.bind((address, self.config.gossip_port))
        except OSError as exc:
            sock.close()
            raise DshError(
                f"cannot bind gossip port {address}:{self.config.gossip_port}/udp: {exc.strerror}"
            ) from None
        sock.setblocking(False)
        self._join_discovery(sock)
        with contextlib.suppress(OSError):
            # A larger buffer absorbs bursts (a flood) without losing peers' reports.
            force = getattr(socket, "SO_RCVBUFFORCE", None) if os.geteuid() == 0 else None
            sock.setsockopt(
                socket.SOL_SOCKET, force or socket.SO_RCVBUF, self.config.receive_buffer
            )
        self._gossip = sock
        loop.add_reader(sock.fileno(), self._read_datagrams)
        self._servers += await self.ports.listen()
        self._servers += await self.http.listen()
        self._servers += await self.procstat.listen()
        control = await self.control.listen()
        if control is not None:
            self._servers.append(control)
        log.info("jobs: %s%s", self.jobs.policy,
                 "" if self.config.procstat_port is None
                 else f", procstat port {self.config.procstat_port}/tcp")  # fmt: skip
        self.sensors.prime()
        self.tick()  # the first report at once: see _ticker
        log.info(
            "dshd %s: node %s, gossip %s:%d/udp, status %d/tcp, best %d/tcp, http %s, %d nodes",
            __version__,
            self.node.name,
            address,
            self.config.gossip_port,
            self.config.status_port,
            self.config.best_port,
            "off" if self.config.http_port is None else f"{self.config.http_port}/tcp",
            len(self.node.table),
        )

    # -- run -------------------------------------------------------------------

    async def run(self) -> None:
        self._tasks = [
            asyncio.create_task(self._ticker(), name="ticker"),
            asyncio.create_task(self._poller(), name="poller"),
            asyncio.create_task(self._resolver(), name="resolver"),
            asyncio.create_task(self.sensors.run(), name="sensors"),
        ]
        self._start_graphite()
        await self._stopping.wait()
        await self._shutdown()

    def stop(self) -> None:
        log.info("stopping")
        self._stopping.set()

    async def _shutdown(self) -> None:
        # Say goodbye first: the others show this node as left at once
        # instead of suspecting it for seconds.
        with contextlib.suppress(Exception):
            self._send(self.node.leave(time.monotonic(), time.time_ns() // 10**6))
        if self._graphite_task is not None:
            self._tasks.append(self._graphite_task)
        for task in self._tasks:
            task.cancel()
        for server in self._servers:
            server.close()
        self.http.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(
                asyncio.gather(*self._tasks, return_exceptions=True),
                self.config.shutdown_timeout,
            )
        if self._gossip is not None:
            asyncio.get_running_loop().remove_reader(self._gossip.fileno())
            self._gossip.close()
        self.control.remove()

    def reload(self) -> None:
        """SIGHUP: re-read the cluster, key and config files.

        Each on its own: a bad one is logged (FILE:LINE: what) and keeps its
        old content in force; the others are taken."""
        from .cli import read_conf

        try:
            cluster = load_cluster_file(self.config.cluster_file)
        except (DshError, ValueError) as exc:
            log.error("reload failed for the cluster file, keeping the old cluster: %s", exc)
        else:
            if cluster.discovery != self.discovery:
                log.warning("reload: @broadcast and @multicast lines take effect at restart")
            self._take_cluster(cluster.nodes)
        if self.config.key_file:
            try:
                keys = load_keys(self.config.key_file)
            except DshError as exc:
                log.error("reload failed for the key file, keeping the old keys: %s", exc)
            else:
                self.node.sealer = Sealer(keys)
                log.info("keys reloaded: %d key(s)", len(keys))
        try:
            conf = read_conf(self.config)
        except DshError as exc:
            log.error("reload failed for the config file, keeping the old config: %s", exc)
        else:
            self._take_conf(conf)
        self._resolve_now.set()

    def _take_cluster(self, specs: list[NodeSpec]) -> None:
        try:
            changes = self.node.reload(specs)
        except ValueError as exc:  # e.g. this node is no longer in the file
            log.error("reload failed for the cluster file, keeping the old cluster: %s", exc)
            return
        self.history.forget(s.name for s in specs)
        if changes:
            log.info(
                "cluster reloaded: added %s; removed %s; changed %s",
                ", ".join(changes.added) or "none",
                ", ".join(changes.removed) or "none",
                ", ".join(changes.changed) or "none",
            )
        else:
            log.info("cluster reloaded: no changes")

    def _take_conf(self, conf: DshdConf) -> None:
        if conf == self.conf:
            log.info("config reloaded: no changes")
            return
        graphite_changed = conf.graphite != self.conf.graphite
        self.conf = conf
        if graphite_changed:
            self._set_graphite()
            self._start_graphite()
        self.sensors.reconfigure(conf.sensors)
        policy = effective_policy(self.config.jobs or conf.jobs, _proc_mounts())
        if policy != self.jobs.policy:
            log.info("jobs: %s (was %s)", policy, self.jobs.policy)
            self.jobs.set_policy(policy)
        log.info("config reloaded: sensors %s", " ".join(conf.sensors) or "none")

    # -- graphite --------------------------------------------------------------

    def _set_graphite(self) -> None:
        """A sender for ``self.conf.graphite`` (none without), after the old one."""
        old, conf = self.graphite, self.conf.graphite
        if self._graphite_task is not None:
            self._graphite_task.cancel()  # its batch in flight goes back to its buffer
            self._graphite_task = None
        self.graphite = None
        if conf is not None:
            self.graphite = GraphiteSender(conf, self.node.name, self.sensors, self.node.counters,
                                           self.ports.best_answers, previous=old)  # fmt: skip
        elif old is not None:
            log.info("graphite: no longer sending (no [graphite] in the config)")

    def _start_graphite(self) -> None:
        if self.graphite is not None and self._graphite_task is None:
            self._graphite_task = asyncio.create_task(self.graphite.run(), name="graphite")

    def _to_graphite(self, state: SensorState) -> None:
        if self.graphite is not None:
            self.graphite.listener(state)

    def _send(self, datagrams: list[tuple[bytes, str]]) -> None:
        assert self._gossip is not None
        for datagram, address in datagrams:
            try:
                self._gossip.sendto(datagram, (address, self.config.gossip_port))
            except (OSError, ValueError) as exc:  # e.g. an IPv6 peer on an IPv4 socket
                log.debug("cannot send to %s: %s", address, exc)

    def tick(self) -> None:
        now, wall_ms = time.monotonic(), time.time_ns() // 10**6
        self._send(self.node.tick(self.sampler.sample(), now, wall_ms))
        self._ticks += 1
        if self.discovery and (self.node.full_mesh() or self._ticks % ANNOUNCE_EVERY == 1):
            datagram = self.node.announce(now, wall_ms)
            if datagram is not None:
                self._send([(datagram, d.address) for d in self.discovery])
        # After the datagrams are out: the history and quik wait, the gossip does not.
        self.quik.sample()
        if self.history.due(len(self.node.table)):
            self.history.record(time.time(), self.node.status_rows(now), self.ports.best_answers)

    def _read_datagrams(self) -> None:
        """Everything queued, up to a batch: one wake-up per batch, not per datagram.

        Under a flood this is what keeps the cost per datagram near the
        decoder's own (a few microseconds) and the peers' reports flowing.
        """
        assert self._gossip is not None
        now, wall_ms = time.monotonic(), time.time_ns() // 10**6
        receive = self.node.receive
        for _ in range(READ_BATCH):
            try:
                data, source = self._gossip.recvfrom(MAX_DATAGRAM + 1)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:  # e.g. ICMP port unreachable from a peer that is down
                log.debug("gossip socket: %s", exc)
                continue
            receive(data, source[0], now, wall_ms)
        # A down heard from others goes on now, not at the next poll, and so do
        # answers to probes and bids for others' best-node questions (core: flush).
        self._send(self.node.flush(now, wall_ms))
        self.ports.bids_in()

    async def _ticker(self) -> None:
        # The first report goes out at once (peers learn of a restart quickly,
        # and the best-node port has this node's own state before it answers);
        # the random second tick keeps daemons started together out of step.
        interval, jitter = self.config.interval, self.config.jitter
        await asyncio.sleep(self.rng.uniform(0, interval))
        while True:
            try:
                self.tick()
            except Exception:  # a failed sample must not stop the gossip for good
                log.exception("tick failed")
            await asyncio.sleep(interval * self.rng.uniform(1 - jitter, 1 + jitter))

    async def _poller(self) -> None:
        # Membership news (a suspicion, its refutation, a departure) goes out
        # within a quarter interval, not at the next tick.
        while True:
            await asyncio.sleep(self.config.interval / 4)
            try:
                now = time.monotonic()
                load = self.sampler.load_now()
                if load is not None:  # what this node bids until the next tick
                    self.node.refresh(load, now)
                self._send(self.node.poll(now, time.time_ns() // 10**6))
            except Exception:
                log.exception("poll failed")

    async def _resolve_all(self, log_failures: bool, only_missing: bool = False) -> None:
        loop = asyncio.get_running_loop()
        # The listed members only: a found one's address is where it was heard from.
        for spec in list(self.node.roster.specs.values()):
            name = spec.name
            known = self.node.addresses(name)
            if only_missing and known:
                continue
            addresses = await loop.run_in_executor(None, resolve, name)
            if addresses != known:
                if addresses:
                    log.info("node %s is at %s", name, " ".join(addresses))
                elif log_failures or known:
                    log.warning("node %s does not resolve; will try again", name)
                if addresses or not known:
                    self.node.set_addresses(name, addresses)

    async def _resolver(self) -> None:
        last_full = time.monotonic()
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._resolve_now.wait(), self.config.resolve_retry)
            self._resolve_now.clear()
            full = time.monotonic() - last_full >= self.config.resolve_refresh
            if full:
                last_full = time.monotonic()
            await self._resolve_all(log_failures=False, only_missing=not full)
