"""The history API's limits: what one answer may hold, and a step that groups nothing."""

from __future__ import annotations

import json

import pytest
from support.gossip_node import make_node

from dsh.core.gossip import StatusRow
from dsh.core.history import History
from dsh.daemon.api import MAX_VALUES, Api
from dsh.daemon.http import BadRequest, parse_head

T0 = 1_699_999_800.0


def rows(n: int) -> list[StatusRow]:
    return [StatusRow(f"n{i:03d}", "up", 1.0, 4, 1000, 1.0, 1.0, 0.5, 0.1, 0.5, 0.0, False)
            for i in range(n)]  # fmt: skip


def api(nodes: int, ticks: int, interval: float = 1.5) -> Api:
    history = History(interval)
    table = rows(nodes)
    for k in range(ticks):
        history.record(T0 + k * interval, table, {})
    now = T0 + ticks * interval
    return Api(make_node(), history, {}, interval, lambda: now, lambda: 0.0)


def get(api: Api, query: str) -> dict[str, object]:
    made = api.history_page(parse_head(f"GET /api/history?{query} HTTP/1.1\r\n\r\n".encode()))
    body, _ = made()
    result: dict[str, object] = json.loads(body)
    return result


def test_an_answer_too_large_is_refused_with_the_step_that_fits() -> None:
    big = api(100, 2400)  # 100 nodes x 1 h x 16 fields: 3.84 million values
    with pytest.raises(BadRequest) as refused:
        get(big, "since=-3600")
    assert refused.value.status == 400 and "ask with step=" in str(refused.value)
    step = int(str(refused.value).split("step=")[1].split()[0])
    answer = get(big, f"since=-3600&step={step}")
    nodes = answer["nodes"]
    assert isinstance(nodes, dict) and len(nodes) == 100
    values = sum(len(v) for fields in nodes.values() for v in fields.values())
    assert values <= MAX_VALUES
    # what the live page asks for fits as it is
    page = get(big, "since=-600&step=2&fields=cpu_user,cpu_system,cpu_idle,cpu_iowait,"
                    "disk_read,disk_write,net_receive,net_transmit,state")  # fmt: skip
    assert len(page["times"]) > 250  # type: ignore[arg-type]


def test_a_step_at_or_below_the_interval_gives_the_points_as_they_are() -> None:
    small = api(2, 20)
    assert get(small, "since=-600&step=1.5") == get(small, "since=-600")
