"""The JSON API: the history's limits, a step that groups nothing, a node of each state."""

from __future__ import annotations

import json

import pytest
from support.gossip_node import make_node

from dsh.core.gossip import StatusRow
from dsh.core.history import History
from dsh.core.wire import Usage
from dsh.daemon.api import MAX_VALUES, Api, node_json
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


def test_node_json_of_each_state_and_how_the_node_came() -> None:
    usage = Usage(0.25, 0.125, 0.5, 0.125, 100.0, 200.0, 300.0, 400.0, 7, 8)

    def one(state: str, listed: bool = True) -> dict[str, object]:
        row = StatusRow("n", state, 1.0, 4, 1000, 1.0, 1.0, 0.5, 3.4, 0.5, 0.0, False,
                        2000, state == "drained", usage, listed=listed)  # fmt: skip
        return node_json(row, 2, 1)

    for live in ("up", "drained", "suspect"):  # a suspect node's last report is still its state
        got = one(live)
        assert got["state"] == live and got["listed"] is True
        assert (got["load"], got["cpus"], got["cpu_user"], got["swap_used"]) == (1.0, 4, 0.25, 7)
    for gone in ("down", "left"):  # theirs are not: unknown, as in the history
        got = one(gone)
        assert got["state"] == gone and got["age"] == 3.4 and got["jobs"] == 2
        assert got["load"] is got["cpus"] is got["cpu_user"] is got["mem_avail"] is None
    found = one("up", listed=False)
    assert found["listed"] is False and found["loadscale"] == 1.0
