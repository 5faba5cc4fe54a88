"""The membership protocol's rules as numbers, and its queue of news to spread. Pure.

SWIM with Lifeguard's refinements (as in memberlist), on dshd's heartbeats:

* A member is **suspect** when one of its monitors has had no fresh news of
  it (its own report, or another member's news that it was heard) for
  ``suspect_after``; in a cluster of at most FANOUT_ABOVE members every
  member monitors every other, above that a member's monitors are its
  MONITORS successors on the ring (roster.py).
* A suspicion is **refuted** by any news of the member newer than the
  suspected (incarnation, seq); the member itself answers a suspicion of it
  by raising its incarnation.
* It becomes **down** when the suspicion has stood for ``suspicion_timeout``:
  from ``6 * t_min`` with one suspector down to ``t_min`` with
  EXPECTED_CONFIRMATIONS more (above the threshold: MONITORS - 1, no one else
  judges, and down to CONFIRMED intervals, whatever N),
  ``t_min = ALPHA * log10(N) * interval``. Only a node that holds
  the suspicion itself (it had no fresh news for ``suspect_after``) declares
  down on that timer; one that only heard of it waits ``backstop``, by which
  the refutation has reached it: at 1,000 members the suspicion and the
  refutation race through the cluster, and every node that lost the race on
  a short timer declared a live member down (the simulator counted 4,235
  false downs per node-hour at 30 % loss).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

FANOUT_ABOVE = 32  # members: up to this many, everyone sends to everyone
FANOUT = 2  # above it: random members sent to per interval, besides the monitors
MONITORS = 2  # above it: ring successors a member sends to, which may suspect it
FORWARD = 6  # above it: random members a down or left heard from others goes to at once
# (4 had left the last 1 % of 1,000 nodes at 30 % loss 5.5 s after the crash, p99; 6: 4.8)
RELAY_SHARE = 0.25  # above it: of the nodes that hear a new incarnation, the share passing it on
NEWS_PER_DATAGRAM = 6  # at most; 28 bytes each, 20 for a down or left member (wire.py)
# Above the threshold, of the members heard lately (a report's filler after the
# changes), the FANOUT random members get up to NEWS_PER_DATAGRAM and the rest
# (monitors, watchers, those answered) this many: the random ones are how load
# and liveness spread, the monitors hear the same node every interval. At
# 1,000 members and 30 % loss, 2 instead of 6 took 142 B/s off a keyed node's
# 1,194 and placement from 67 % to 66 % in the best 10 %; 0 made 4 times the
# false suspicions (simulator, seed 1).
LEAN_FILL = 2
# Above the threshold, the usage (CPU shares, disk, network, swap: 32 bytes)
# rides in every report to the random members, but in only every
# USAGE_EVERY-th one to the monitors and the others, who keep the last they
# had (brief reports, wire.py). No one relays usage (news has none), so the
# random reports are how it reaches the rest of the cluster, and the others'
# view of it is USAGE_EVERY intervals old at most, unless a report is lost.
# 35 B/s off a keyed node's 1,052 at 1,000 members and 30 % loss, nothing
# else moved (simulator, seed 1); to the others never, 47.
USAGE_EVERY = 4
ALPHA = 0.25  # t_min in intervals per decade of members (memberlist: 4 probe intervals)
MAX_TIMEOUT_FACTOR = 6  # a lone suspector waits 6 * t_min (memberlist's default)
EXPECTED_CONFIRMATIONS = 2  # independent suspicions that bring the timeout down to t_min
RETRANSMIT_MULT = 3  # each change is sent about 3 * ceil(log10(N + 1)) times
FORGET_AFTER = 3600.0  # seconds a member not in the cluster file stays down or left
UNHEARD_GRACE = 10  # intervals after its start in which a node keeps unheard members' ring places
# Ticks after its start in which a node sends its newest datagram version to
# every member, whatever it has heard: a node upgraded in place hears the
# others' datagrams of the old version before its first tick, and had it
# answered in that version, each would have taken the other for the old
# release for good (tests/system/test_rolling_upgrade.py, one run in five).
ANNOUNCE_TICKS = 3
# Above the threshold, a suspicion both monitors hold stands this many intervals,
# whatever N: the refutation goes to them directly (no dissemination through
# the cluster to wait for, which is what log N pays for), and at 30 % loss the
# suspected member's answers need about that long to get through to both.
CONFIRMED = 0.75
REFUTE_REPEAT = 3  # polls at which a suspected member answers its suspector directly
MAX_HEALTH = 8  # Lifeguard's local health: a late node stretches its timeouts up to 9x


def t_min(members: int, interval: float) -> float:
    return ALPHA * math.log10(max(members, 2)) * interval


def suspicion_timeout(
    members: int,
    confirmations: int,
    interval: float,
    expected: int = EXPECTED_CONFIRMATIONS,
    low: float | None = None,
) -> float:
    """Seconds from suspect to down, ``confirmations`` independent suspectors beyond the
    first, ``expected`` of them bringing it down to ``low`` (default ``t_min``)."""
    low = t_min(members, interval) if low is None else low
    high = MAX_TIMEOUT_FACTOR * low
    fraction = math.log(confirmations + 1) / math.log(max(expected, 1) + 1)
    return max(low, high - (high - low) * fraction)


def backstop(members: int, interval: float, suspect_after: float) -> float:
    """Seconds a node that only heard of a suspicion waits before taking the member
    as down itself (its suspectors may have died with it): the lone suspector's
    timeout plus ``suspect_after``, time enough for a refutation to spread."""
    return MAX_TIMEOUT_FACTOR * t_min(members, interval) + suspect_after


def retransmit_limit(members: int) -> int:
    return RETRANSMIT_MULT * max(1, math.ceil(math.log10(members + 1)))


@dataclass(slots=True)
class Pending:
    kind: int  # wire.Kind
    sent: int = 0


class Broadcasts:
    """Changes of membership waiting to be spread, at most one per member.

    A newer change of a member replaces the older (memberlist's invalidation);
    the least sent go first, and each goes out ``retransmit_limit`` times."""

    def __init__(self) -> None:
        self.pending: dict[str, Pending] = {}
        # Keys by how often they were sent, each in the order put: taking the
        # least sent is then O(count), not a sort of every pending change per
        # datagram (hundreds per node under churn, 10,000 nodes in the simulator).
        self._by_sent: list[dict[str, None]] = [{}]

    def __len__(self) -> int:
        return len(self.pending)

    def put(self, key: str, kind: int) -> None:
        old = self.pending.get(key)
        if old is not None:
            del self._by_sent[old.sent][key]
        self.pending[key] = Pending(kind)
        self._by_sent[0][key] = None

    def take(self, count: int, limit: int) -> list[tuple[str, int]]:
        """Up to ``count`` changes to send now, counted as sent."""
        if not self.pending:
            return []
        chosen: list[str] = []
        for bucket in self._by_sent:
            for key in bucket:
                chosen.append(key)
                if len(chosen) == count:
                    break
            if len(chosen) == count:
                break
        out = []
        for key in chosen:
            p = self.pending[key]
            del self._by_sent[p.sent][key]
            p.sent += 1
            if p.sent >= limit:
                del self.pending[key]
            else:
                while len(self._by_sent) <= p.sent:
                    self._by_sent.append({})
                self._by_sent[p.sent][key] = None
            out.append((key, p.kind))
        return out
