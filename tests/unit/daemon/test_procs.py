"""daemon/procs.py: the policy and the table, over a /proc the tests write."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dsh.daemon import procs

MOUNTS = "sysfs /sys sysfs rw 0 0\nproc /proc proc rw,nosuid,nodev,noexec,relatime{} 0 0\n"


@pytest.mark.parametrize(("options", "hidden"), [
    ("", False), (",hidepid=0", False), (",hidepid=off", False),
    (",hidepid=2", True), (",hidepid=invisible", True), (",hidepid=1,gid=10", True),
])  # fmt: skip
def test_hidepid_from_the_mount_options(options: str, hidden: bool) -> None:
    assert procs.hidepid(MOUNTS.format(options)) is hidden


def test_the_default_is_own_and_off_under_hidepid_and_a_flag_wins() -> None:
    assert procs.effective_policy(None, MOUNTS.format("")) == "own"
    assert procs.effective_policy(None, MOUNTS.format(",hidepid=2")) == "off"
    assert procs.effective_policy("all", MOUNTS.format(",hidepid=2")) == "all"
    assert procs.effective_policy("off", MOUNTS.format("")) == "off"


def _stat(pid: int, comm: str, ticks: int, start: int) -> str:
    return (f"{pid} ({comm}) S 1 {pid} {pid} 0 -1 0 0 0 0 0 {ticks} 0 0 0 20 0 1 0 {start} "
            "1000 25 0 0 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0\n")  # fmt: skip


def write_proc(root: Path, pid: int, comm: str, ticks: int, *, job: bool = False,
               stat: bool = True) -> None:  # fmt: skip
    d = root / str(pid)
    d.mkdir(exist_ok=True)
    if stat:
        (d / "stat").write_text(_stat(pid, comm, ticks, 10 * os.sysconf("SC_CLK_TCK")))
    (d / "cmdline").write_bytes(f"{comm}\0--flag\0".encode())
    (d / "environ").write_bytes(b"PATH=/bin\0" + (b"DSH_JOB=1\0" if job else b""))


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def fake_proc(tmp_path: Path) -> Path:
    (tmp_path / "uptime").write_text("110.00 200.00\n")
    (tmp_path / "self").mkdir()  # not a pid: ignored
    write_proc(tmp_path, 10, "sleep", 0, job=True)
    write_proc(tmp_path, 11, "sshd", 0)
    write_proc(tmp_path, 12, "gone", 0, stat=False)  # exited between listdir and open
    return tmp_path


def test_own_shows_only_the_marked_and_skips_the_gone(fake_proc: Path) -> None:
    table = procs.ProcTable("own", proc=str(fake_proc), first_span=0).table()
    assert [p.pid for p in table.procs] == [10]
    p = table.procs[0]
    assert p.argv == ("sleep", "--flag") and p.command == "sleep --flag"
    assert p.uid == os.getuid() and p.elapsed == pytest.approx(100.0)
    assert p.rss == 25 * os.sysconf("SC_PAGE_SIZE")
    assert table.skipped == 1


def test_all_shows_everyone(fake_proc: Path) -> None:
    table = procs.ProcTable("all", proc=str(fake_proc), first_span=0).table()
    assert sorted(p.pid for p in table.procs) == [10, 11]


def test_cpu_over_the_interval_and_one_table_per_period(fake_proc: Path) -> None:
    clock = Clock()
    hz = os.sysconf("SC_CLK_TCK")
    reader = procs.ProcTable("all", proc=str(fake_proc), monotonic=clock, first_span=0)
    first = reader.table()
    assert reader.fresh == 1
    write_proc(fake_proc, 10, "sleep", hz // 2, job=True)  # half a second of CPU ...
    clock.now += 0.5
    assert reader.table() is first and reader.shared == 1  # ... within the period: the same
    clock.now += 0.5  # ... in one second: 50 %
    second = reader.table()
    assert second is not first and reader.fresh == 2
    cpu = {p.pid: p.cpu for p in second.procs}
    assert cpu[10] == pytest.approx(50.0) and cpu[11] == 0.0
    assert second.span == pytest.approx(1.0)


def test_a_reused_pid_is_counted_from_its_own_start(fake_proc: Path) -> None:
    clock = Clock()
    hz = os.sysconf("SC_CLK_TCK")
    write_proc(fake_proc, 11, "sshd", 5 * hz)
    reader = procs.ProcTable("all", proc=str(fake_proc), monotonic=clock, first_span=0)
    reader.table()
    # pid 11 again, a process that started at 105 s (5 s before) and used 1 s of CPU
    (fake_proc / "11" / "stat").write_text(_stat(11, "new", hz, 105 * hz))
    clock.now += 2
    new = {p.pid: p for p in reader.table().procs}[11]
    assert new.cpu == pytest.approx(20.0) and new.elapsed == pytest.approx(5.0)


def test_jobs_off_is_a_403(fake_proc: Path) -> None:
    from dsh.daemon.http import BadRequest, Request

    jobs = procs.Jobs("n1", "off", procs.ProcTable("off", proc=str(fake_proc)), procs.Quik())
    with pytest.raises(BadRequest) as caught:
        jobs.jobs_page(Request("GET", "/jobs", "HTTP/1.1", {}))
    assert caught.value.status == 403
    assert jobs.jobs_text().startswith("error jobs are off")


@pytest.mark.parametrize("query", ["top=0", "top=x", "top=-1", "format=xml"])
def test_bad_queries_are_400(fake_proc: Path, query: str) -> None:
    from dsh.daemon.http import BadRequest, Request

    jobs = procs.Jobs("n1", "all", procs.ProcTable("all", proc=str(fake_proc)), procs.Quik())
    with pytest.raises(BadRequest) as caught:
        jobs.jobs_page(Request("GET", "/jobs", "HTTP/1.1", {}, query))
    assert caught.value.status == 400


def test_a_new_policy_drops_the_table_made_under_the_old(fake_proc: Path) -> None:
    clock = Clock()
    reader = procs.ProcTable("all", proc=str(fake_proc), monotonic=clock, first_span=0)
    jobs = procs.Jobs("n1", "all", reader, procs.Quik())
    assert len(reader.table().procs) == 2
    jobs.set_policy("own")  # within the period, yet not the old table
    assert [p.pid for p in reader.table().procs] == [10]
    assert jobs.policy == "own"
