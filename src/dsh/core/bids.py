"""Asking before choosing: a best-node question to the best few candidates. Pure.

Above the threshold a node holds the loads of the members it picks from as
they were up to S old (2.0 s for the node it picked, median, at 1,000
members), and in that time the other daemons sent their own jobs to the same
lightly loaded nodes. With the true loads of that age, power-of-d choices
put the job in the least loaded 10 % of the cluster 43 % of the time; with
the loads of the moment, 73 % (the simulator, 50 jobs/s at 1,000 members).
So a best-node answer first asks the ASK_BEST best of its d candidates (by
the reports it holds) how loaded they are now:

* each answers at once with a BID: its last sample plus the jobs promised to
  it since (every asker's CLAIMs, counted by the extra-load rule);
* the asker waits until every bid is in or ASK_TIMEOUT has passed (asking
  again those still silent after ASK_AGAIN_AFTER), takes the least loaded
  bidder, and sends it a CLAIM (twice, counted once), so that the next asker
  sees the job before the node's load shows it;
* no bid in time (loss, a node of an older release): the answer is the
  report-based one, as if nothing had been asked. A member whose own
  reports are of an older release is not asked; one known only from others'
  news is, unless it left MAX_UNANSWERED questions in a row unanswered.

A question costs 2 * ASK_BEST + 1 small datagrams (50-70 bytes each) and the
wait for the slowest bid (on a LAN well under a millisecond, at most
ASK_TIMEOUT under loss), which an SSH job start (tens of milliseconds) hides.
Sparrow's batch sampling (Ousterhout et al., SOSP 2013) does the same for
task schedulers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

ASK_BEST = 8  # candidates asked per question (simulator: 4 -> 73 %, 8 -> 82 % in the best 10 %)
ASK_TIMEOUT = 0.05  # seconds an answer waits for the last bid
# Seconds after which the ASK goes again to those that have not bid: on a LAN a
# bid takes a millisecond or two, and at 30 % loss each way only half the bids
# come back from one ASK (three quarters from two).
ASK_AGAIN_AFTER = 0.015
CLAIM_COPIES = 2  # a CLAIM lost lets the next askers pile onto the node; it counts once
# A job promised to a node counts in its bids until two of its load samples
# have passed (a tick's, or one of the four an interval between: refresh),
# and at least this long: the job starts some 10-300 ms after the answer
# (the mux and its SSH channel), and a sample before that cannot show it.
# (Two samples without this minimum: 77 % of picks in the best 10 % in the
# simulator, whose jobs load their node at once; two ticks: 72 %.)
PROMISE_KEEP = 0.5
# Open at once (dshd's best-node port serves at most 256 clients at a time);
# beyond that the oldest is answered without its bids.
MAX_QUESTIONS = 256
CLAIM_MEMORY = 4096  # claims remembered (for the replay window) before the oldest is dropped
# A member known only from others' news is asked unless it left this many
# questions in a row unanswered within UNANSWERED_FOR seconds (an older release
# never answers; at 30 % loss a live one misses 3 in a row 13 % of the time).
MAX_UNANSWERED = 3
UNANSWERED_FOR = 60.0


@dataclass
class Question:
    """One best-node question in flight: who was asked, what they bid."""

    nonce: int
    waiting: set[str]  # member keys whose bid has not come
    fallback: str | None  # key of the report-based answer (asks nobody if it stays)
    bids: dict[str, float] = field(default_factory=dict)  # key -> score of its bid
    own: tuple[str, float] | None = None  # the asker's key and score, if a candidate
    asks: dict[str, tuple[bytes, str]] = field(default_factory=dict)  # key -> its ASK

    @property
    def datagrams(self) -> list[tuple[bytes, str]]:
        """The ASKs to send, one per member asked."""
        return list(self.asks.values())

    def again(self) -> list[tuple[bytes, str]]:
        """The ASKs once more, to the members whose bid has not come (ASK_AGAIN_AFTER)."""
        return [self.asks[k] for k in sorted(self.waiting) if k in self.asks]

    @property
    def complete(self) -> bool:
        return not self.waiting

    def take(self, key: str, score: float) -> bool:
        """A bid from ``key``; False if it was not asked, or already bid."""
        if key not in self.waiting:
            return False
        self.waiting.discard(key)
        self.bids[key] = score
        return True

    def choice(self, pick: float) -> str | None:
        """The least loaded bidder, the asker among them if it was a candidate;
        ``pick`` in [0, 1) breaks ties. Without a bid from another node the
        report-based answer (the asker alone would always choose itself)."""
        if not self.bids:
            return self.fallback
        bids = dict(self.bids)
        if self.own is not None:
            bids[self.own[0]] = self.own[1]
        scores = {k: (s if s == s else float("inf")) for k, s in bids.items()}  # NaN
        low = min(scores.values())
        tied = sorted(k for k, s in scores.items() if s <= low + 1e-9)
        return tied[min(len(tied) - 1, int(pick * len(tied)))]
