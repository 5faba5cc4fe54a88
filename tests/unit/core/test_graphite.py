"""core/graphite.py: the path names of the README's Graphite section, carbon's two encodings (read
back as carbon reads them) and the bounded buffer's drop-oldest order."""

from __future__ import annotations

import pickle
import struct

import pytest

from dsh.core.graphite import (
    BATCH,
    MetricBuffer,
    base,
    batches,
    dshd_metrics,
    encode_pickle,
    encode_plaintext,
    host_part,
    path_of,
    reading_metrics,
    sanitise,
    sensor_part,
)


@pytest.mark.parametrize(
    ("text", "part"),
    [
        ("/", "root"),
        ("", "root"),
        ("//", "root"),
        ("/scratch/data", "scratch_data"),
        ("/scratch/data/", "scratch_data"),
        ("eth0", "eth0"),
        ("0", "0"),
        ("en p0s3.100", "en_p0s3_100"),
        ("coretemp-isa-0000", "coretemp-isa-0000"),
        ("Package id 0", "Package_id_0"),
        ("naïve", "na_ve"),
    ],
)
def test_label_values_become_one_safe_component(text: str, part: str) -> None:
    assert sanitise(text) == part


def test_the_host_is_the_cluster_name_with_dots_made_underscores() -> None:
    assert host_part("node1") == "node1"
    assert host_part("node1.example.org") == "node1_example_org"
    assert host_part("127.0.0.11") == "127_0_0_11"
    assert base("", "node1.x") == "node1_x"
    assert base("cluster.dsh", "node1.x") == "cluster.dsh.node1_x"


def test_the_examples_of_the_naming_contract() -> None:
    root = base("", "node1")
    assert path_of(root, "CPUPercent", "percent", [("cpu", "0")]) == "node1.CPUPercent.percent.0"
    assert (
        path_of(root, "CPUTimes", "seconds", [("cpu", "0"), ("mode", "user")])
        == "node1.CPUTimes.seconds.0.user"
    )
    assert path_of(root, "DiskUsage", "free", [("path", "/")]) == "node1.DiskUsage.free.root"
    assert (
        path_of(root, "DiskUsage", "free", [("path", "/scratch/data")])
        == "node1.DiskUsage.free.scratch_data"
    )
    assert (
        path_of(root, "NetIOCounters", "bytes_recv", [("device", "eth0")])
        == "node1.NetIOCounters.bytes_recv.eth0"
    )
    assert path_of(root, "LoadAvg", "load1") == "node1.LoadAvg.load1"
    assert path_of(base("p", "node1"), "LoadAvg", "load1") == "p.node1.LoadAvg.load1"


def test_a_reading_keeps_its_timestamp_and_leaves_out_what_is_not_a_number() -> None:
    values = [
        ("load1", 0.5, ()),
        ("load5", float("nan"), ()),
        ("load15", float("inf"), ()),
        ("total", 16, ()),
    ]
    assert reading_metrics("n", "LoadAvg", values, 1700000000) == [
        ("n.LoadAvg.load1", 0.5, 1700000000),
        ("n.LoadAvg.total", 16.0, 1700000000),
    ]


def test_dshd_own_state_under_the_pseudo_sensor() -> None:
    metrics = dshd_metrics(
        "p.node1",
        100,
        datagrams={"ok": 7, "bad_auth": 1},
        best_answers={"node2.x": 3, "NONE": 1},
        sensor_up={"LoadAvg": True, "GPU": False, "CPUFreq": None},
        sensor_duration={"LoadAvg": 0.001, "CPUFreq": None},
        graphite_dropped=5,
    )
    assert {p: v for p, v, _ in metrics} == {
        "p.node1.dshd.best_answers.node2_x": 3,
        "p.node1.dshd.best_answers.NONE": 1,
        "p.node1.dshd.datagrams.ok": 7,
        "p.node1.dshd.datagrams.bad_auth": 1,
        "p.node1.dshd.sensor_up.LoadAvg": 1,
        "p.node1.dshd.sensor_up.GPU": 0,
        "p.node1.dshd.sensor_up.CPUFreq": 0,
        "p.node1.dshd.sensor_duration.LoadAvg": 0.001,
        "p.node1.dshd.graphite_dropped": 5,
    }
    assert {t for _, _, t in metrics} == {100}


def test_an_instance_of_a_sensor_is_one_component() -> None:
    assert sensor_part("LoadAvg") == "LoadAvg"
    assert sensor_part("DiskUsage", "/") == "DiskUsage_root"
    assert sensor_part("DiskUsage", "/scratch/data") == "DiskUsage_scratch_data"
    metrics = dshd_metrics("n", 1, datagrams={}, best_answers={}, graphite_dropped=0,
                           sensor_up={sensor_part("DiskUsage", "/nfs"): False},
                           sensor_duration={sensor_part("DiskUsage", "/nfs"): 5.0})  # fmt: skip
    assert [p for p, _, _ in metrics] == ["n.dshd.sensor_up.DiskUsage_nfs",
                                          "n.dshd.sensor_duration.DiskUsage_nfs",
                                          "n.dshd.graphite_dropped"]  # fmt: skip


def test_plaintext_is_one_line_per_metric() -> None:
    data = encode_plaintext([("a.b", 0.25, 10), ("a.c", 16e9, 11), ("a.d", -3.0, 12)])
    assert data == b"a.b 0.25 10\na.c 16000000000 11\na.d -3 12\n"
    assert encode_plaintext([]) == b""
    huge = encode_plaintext([("a", 1e300, 1)]).split()
    assert float(huge[1]) == 1e300


def test_a_pickle_frame_is_a_length_header_and_carbons_list() -> None:
    metrics = [("a.b", 0.25, 10), ("a.c", 16e9, 11)]
    frame = encode_pickle(metrics)
    (length,) = struct.unpack("!L", frame[:4])
    assert length == len(frame) - 4
    assert frame[4:6] == b"\x80\x02"  # pickle protocol 2
    assert pickle.loads(frame[4:]) == [("a.b", (10, 0.25)), ("a.c", (11, 16e9))]


def test_messages_are_bounded() -> None:
    metrics = [(f"m.{i}", float(i), i) for i in range(BATCH * 2 + 1)]
    parts = list(batches(metrics))
    assert [len(p) for p in parts] == [BATCH, BATCH, 1]
    assert [m for p in parts for m in p] == metrics
    # a full frame of long paths stays far below carbon's 1 MiB frame limit
    long = [("x" * 200 + f".{i}", 1.0, i) for i in range(BATCH)]
    assert len(encode_pickle(long)) < 2**20 // 8


def _metrics(start: int, stop: int) -> list[tuple[str, float, int]]:
    return [(f"m.{i}", float(i), i) for i in range(start, stop)]


def test_the_buffer_hands_out_oldest_first() -> None:
    buffer = MetricBuffer(limit=10)
    buffer.add(_metrics(0, 5))
    assert buffer.take(3) == _metrics(0, 3)
    assert buffer.take(10) == _metrics(3, 5)
    assert buffer.take(10) == []
    assert (buffer.added, buffer.dropped, len(buffer)) == (5, 0, 0)


def test_a_full_buffer_drops_the_oldest_and_counts_them() -> None:
    buffer = MetricBuffer(limit=10)
    buffer.add(_metrics(0, 25))
    assert (len(buffer), buffer.dropped, buffer.added) == (10, 15, 25)
    assert buffer.take(100) == _metrics(15, 25)


def test_a_batch_given_back_goes_in_front_in_its_order() -> None:
    buffer = MetricBuffer(limit=10)
    buffer.add(_metrics(0, 6))
    batch = buffer.take(4)
    buffer.add(_metrics(6, 8))
    buffer.give_back(batch)
    assert buffer.take(100) == _metrics(0, 8)
    assert buffer.dropped == 0


def test_a_batch_given_back_to_a_full_buffer_loses_its_oldest() -> None:
    buffer = MetricBuffer(limit=10)
    buffer.add(_metrics(0, 5))
    batch = buffer.take(5)
    buffer.add(_metrics(5, 12))  # 7 in: room for 3 of the 5 given back
    buffer.give_back(batch)
    assert buffer.dropped == 2
    assert buffer.take(100) == _metrics(2, 12)
    buffer.add(_metrics(0, 10))
    buffer.give_back(_metrics(20, 23))  # no room at all
    assert buffer.dropped == 5
    assert buffer.take(100) == _metrics(0, 10)


def test_a_buffer_holds_something() -> None:
    with pytest.raises(ValueError):
        MetricBuffer(limit=0)
