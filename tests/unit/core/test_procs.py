"""core/procs.py: the /proc parsers and the answers' text, over texts the tests write."""

from __future__ import annotations

import pytest

from dsh.core import procs

STAT = "4242 (a (weird) name) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0 " \
       "9000 123456789 512 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 3 0 0 0 0 0"  # fmt: skip


def test_stat_with_parentheses_and_spaces_in_the_name() -> None:
    s = procs.parse_stat(STAT)
    assert (s.pid, s.comm, s.state, s.ppid) == (4242, "a (weird) name", "S", 1)
    assert (s.ticks, s.start, s.rss_pages) == (300, 9000, 512)


@pytest.mark.parametrize(
    "text", ["", "4242 (x) S 1", "4242 x S " + "1 " * 30, "x (y) S " + "1 " * 30]
)
def test_a_stat_that_is_not_one_is_a_value_error(text: str) -> None:
    with pytest.raises(ValueError):
        procs.parse_stat(text)


def test_argv_is_nul_separated_and_bounded() -> None:
    assert procs.parse_argv(b"sleep\x0042\x00") == ["sleep", "42"]
    assert procs.parse_argv(b"") == []
    assert procs.parse_argv(b"a\x00\x00b\x00") == ["a", "", "b"]
    long = procs.parse_argv(b"x" * 10_000 + b"\x00" + b"y\x00" * 1000)
    assert len(long) == procs.ARGS_LIMIT and len(long[0]) == procs.ARG_LIMIT


def test_command_text_is_one_line_and_truncated() -> None:
    assert procs.command_text(["sleep", "42"], "sleep") == "sleep 42"
    assert procs.command_text([], "kworker/0:1") == "[kworker/0:1]"
    assert procs.command_text(["echo", "a\nb"], "echo") == "echo a?b"
    text = procs.command_text(["x" * 500], "x")
    assert len(text) == procs.COMMAND_LIMIT and text.endswith("...")


def test_marker_anywhere_in_the_environment_but_not_inside_a_value() -> None:
    assert procs.has_marker(b"DSH_JOB=1\x00PATH=/bin\x00")
    assert procs.has_marker(b"PATH=/bin\x00DSH_JOB=1\x00")
    assert not procs.has_marker(b"PATH=/bin\x00X=DSH_JOB=1\x00")
    assert not procs.has_marker(b"DSH_JOBS=1\x00")
    assert not procs.has_marker(b"")


def test_loadavg_cpu_meminfo_uptime() -> None:
    load = procs.parse_loadavg("0.52 0.48 0.40 3/412 12345\n")
    assert load == procs.Loadavg(0.52, 0.48, 0.40, 3, 412)
    stat = "cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 1 2 3 4\nbtime 1\n"
    assert procs.parse_cpu(stat) == (150, 1000)
    assert procs.busy_share((150, 1000), (250, 1200)) == pytest.approx(0.5)
    assert procs.busy_share((150, 1000), (150, 1000)) is None
    mem = "MemTotal:  2048 kB\nMemFree: 1 kB\nMemAvailable:   1024 kB\n"
    assert procs.parse_meminfo(mem) == (1024 * 1024, 2048 * 1024)
    assert procs.parse_uptime("13057.91 25000.00\n") == 13057.91
    for bad in (lambda: procs.parse_loadavg("0.5"), lambda: procs.parse_cpu("intr 1"),
                lambda: procs.parse_meminfo("MemTotal: 1 kB")):  # fmt: skip
        with pytest.raises(ValueError):
            bad()


def test_cpu_percent_over_the_interval_or_since_start() -> None:
    assert procs.cpu_percent(100, 150, 1.0, 100) == pytest.approx(50.0)
    assert procs.cpu_percent(None, 50, 2.0, 100) == pytest.approx(25.0)
    assert procs.cpu_percent(100, 150, 0.0, 100) == 0.0
    assert procs.elapsed(1000, 100, 110.0) == pytest.approx(100.0)


def test_durations_as_ps_prints_them() -> None:
    assert procs.duration(5) == "00:05"
    assert procs.duration(3725) == "01:02:05"
    assert procs.duration(2 * 86400 + 3725) == "2-01:02:05"


def _proc(pid: int, user: str, cpu: float, rss: int = 0) -> procs.Proc:
    return procs.Proc(pid, user, 0, "S", cpu, rss, 1.0, ("x",), "x")


def test_select_filters_by_user_busiest_first_and_cuts_at_top() -> None:
    rows = [_proc(1, "a", 1.0), _proc(2, "b", 5.0), _proc(3, "a", 9.0), _proc(4, "a", 9.0, 10)]
    assert [p.pid for p in procs.select(rows, "a", None)] == [4, 3, 1]
    assert [p.pid for p in procs.select(rows, None, 2)] == [4, 3]


def test_jobs_text_has_a_count_line_and_a_line_per_process() -> None:
    text = procs.jobs_text("n1", [_proc(7, "alice", 12.5, 2048 * 1024)], "policy=all")
    lines = text.splitlines()
    assert lines[0] == "jobs n1 1 policy=all"
    assert lines[2].split() == ["7", "alice", "S", "12.5", "2048", "00:01", "x"]


def test_quik_text_is_one_line() -> None:
    q = procs.Quik(procs.Loadavg(0.5, 0.25, 0.125, 2, 100), 0.123, 1.5, 2048 * 1024, 4 << 30)
    assert procs.quik_text("n1", q) == (
        "quik n1 load 0.50 0.25 0.12 cpu 12.3% running 2/100 memavail 2048 kB\n"
    )
    assert "cpu -" in procs.quik_text("n1", procs.Quik(q.load, None, 0.0, 0, 0))
    assert q.as_json("n1", 5.0)["cpu_busy"] == 0.123


def test_rate_limit_one_fresh_table_per_period() -> None:
    limit = procs.RateLimit(1.0)
    assert limit.fresh(10.0)
    assert not limit.fresh(10.5)
    assert not limit.fresh(10.99)
    assert limit.fresh(11.0)
    assert limit.fresh(5.0)  # a clock that went back: fresh, not stuck
