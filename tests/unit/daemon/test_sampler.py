"""The sampler's arithmetic on psutil's CPU times (the reading itself is psutil's)."""

from __future__ import annotations

import os
import time
from collections import namedtuple

import psutil
import pytest

from dsh.daemon.sampler import Sampler, cpu_shares

# psutil's Linux scputimes, spelled out: the fields the shares are made of.
Times = namedtuple("Times", "user nice system idle iowait irq softirq steal guest guest_nice")


def times(**kw: float) -> Times:
    return Times(**{f: kw.get(f, 0.0) for f in Times._fields})


def test_shares_add_modes_as_documented() -> None:
    last = times()
    now = times(user=30, nice=10, system=10, irq=5, softirq=5, idle=30, iowait=10)
    assert cpu_shares(now, last) == pytest.approx((0.4, 0.2, 0.3, 0.1))


def test_guest_time_is_not_counted_twice() -> None:
    # The kernel counts guest time in user too: a VM host busy with guests is
    # as busy as its user time says, no more.
    now = times(user=50, guest=20, idle=50)
    assert cpu_shares(now, times()) == pytest.approx((0.5, 0.0, 0.5, 0.0))


def test_no_time_passed_reads_idle_and_counters_going_back_are_ignored() -> None:
    assert cpu_shares(times(idle=5), times(idle=5)) == (0.0, 0.0, 1.0, 0.0)
    assert cpu_shares(times(user=1, idle=10), times(user=5, idle=0)) == (0.0, 0.0, 1.0, 0.0)


def test_a_real_sample_has_usage_within_bounds() -> None:
    sampler = Sampler()
    sum(i * i for i in range(200_000))  # a little CPU time between the two readings
    sample = sampler.sample()
    u = sample.usage
    assert u is not None
    shares = (u.cpu_user, u.cpu_system, u.cpu_idle, u.cpu_iowait)
    assert all(0.0 <= s <= 1.0 for s in shares) and sum(shares) <= 1.0 + 1e-9
    assert min(u.disk_read, u.disk_write, u.net_receive, u.net_transmit) >= 0.0
    assert u.swap_total == psutil.swap_memory().total and 0 <= u.swap_used <= u.swap_total


def test_load_now_needs_a_window_and_sees_this_process_busy() -> None:
    sampler = Sampler()
    sampler.sample()
    assert sampler.load_now() is None  # within MIN_WINDOW of the sample: nothing to say
    until = time.monotonic() + 0.3
    while time.monotonic() < until:  # one CPU busy for the whole window
        pass
    load = sampler.load_now()
    assert load is not None and 0.5 <= load <= sampler.ncpu + (os.cpu_count() or 1) * 64
    assert sampler.load_now() is None  # the window starts again
