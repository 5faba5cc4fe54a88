"""daemon/conf.py: dshd.conf as FrUCToSA's lagent.conf is written, and every
way a line can be wrong, each as FILE:LINE: what."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from support.paths import LAGENT_CONF_FILE

from dsh.daemon.cli import read_conf
from dsh.daemon.conf import GraphiteConf, SensorConf, load_conf, parse_conf
from dsh.daemon.config import DaemonConfig
from dsh.errors import ConfigFileError

LAGENT_CONF = LAGENT_CONF_FILE.read_text()


def test_fructosas_lagent_conf_works_as_it_is() -> None:
    conf = parse_conf(LAGENT_CONF, "lagent.conf")
    assert len(conf.sensors) == 20
    assert conf.sensors["CPUPercent"] == SensorConf("CPUPercent", 10.0, {}, 15)
    assert conf.sensors["DiskUsage"].options == {}  # (its path is commented out)
    assert conf.graphite == GraphiteConf("localhost", 2004, "pickle")
    assert conf.ignored == (("lmaster", 1), ("logging", 9))


def test_dshds_own_keys_and_repeatable_options() -> None:
    conf = parse_conf(
        "; dshd\n[sensor:DiskUsage]\npath = /\npath: /scratch\n[sensor:BootTime]\n"
        "[graphite]\nhost = carbon\nprotocol = plaintext\nprefix = .cluster.\ninterval = 15\n"
    )
    assert conf.sensors["DiskUsage"].options == {"path": ("/", "/scratch")}
    assert conf.sensors["BootTime"].interval == 300.0  # the sensor's default
    assert conf.sensors["BootTime"].timeout is None  # the runner's default
    for switch in ("YES", "no", "True", "false", "1", "0", "On", "off"):
        text = f"[sensor:DiskPartitions]\nall = {switch}\n"
        assert parse_conf(text).sensors["DiskPartitions"].options == {"all": (switch,)}
    assert parse_conf("[sensor:DiskUsage]\ntimeout = 0.5\n").sensors["DiskUsage"].timeout == 0.5
    assert conf.graphite == GraphiteConf("carbon", 2003, "plaintext", "cluster", 15.0)
    assert parse_conf("[graphite]\nhost = c\nprotocol = pickle\n").graphite == GraphiteConf(
        "c", 2004, "pickle"
    )
    assert parse_conf("[graphite]\nhost = c\nport = 2103\n").graphite == GraphiteConf("c", 2103)


def test_fructosas_graphite_section_has_fructosas_defaults() -> None:
    """[Graphite], as FrUCToSA spells it: no key is needed, host localhost, pickle on 2004."""
    assert parse_conf("[Graphite]\n").graphite == GraphiteConf("localhost", 2004, "pickle")
    assert parse_conf("[Graphite]\nhost = c\n").graphite == GraphiteConf("c", 2004, "pickle")
    assert parse_conf("[Graphite]\ncarbon receiver pickle port = 2104\n").graphite == (
        GraphiteConf("localhost", 2104, "pickle")
    )
    assert parse_conf("[Graphite]\nport = 2103\n").graphite == GraphiteConf(
        "localhost", 2103, "pickle"
    )
    assert parse_conf("[Graphite]\nprotocol = plaintext\n").graphite == GraphiteConf(
        "localhost", 2003, "plaintext"
    )
    # dshd's own spelling keeps dshd's: a host is needed, plaintext on 2003
    assert parse_conf("[graphite]\nhost = c\n").graphite == GraphiteConf("c", 2003, "plaintext")


@pytest.mark.parametrize(
    ("text", "where", "what"),
    [
        ("[sensor:CPUPercnt]\n", 1, "unknown sensor 'CPUPercnt' (dshd --list-sensors"),
        ("[sensor:CPUPercent]\ntime_interval = ten\n", 2, "time_interval 'ten' is not a number"),
        ("[sensor:CPUPercent]\ntime_interval = 0\n", 2, "is not a number of seconds > 0"),
        ("[sensor:CPUPercent]\ntime_interval = inf\n", 2, "is not a number of seconds > 0"),
        ("[sensor:CPUPercent]\ntime_interval = 1\ntime_interval = 2\n", 3, "given twice"),
        ("[sensor:CPUPercent]\npath = /\n", 2, "CPUPercent has no option 'path' (it takes: time_"),
        ("[sensor:DiskUsage]\npath =\n", 2, "option 'path' of DiskUsage has no value"),
        ("[sensor:DiskUsage]\ntimeout = soon\n", 2, "timeout 'soon' is not a number of seconds"),
        ("[sensor:DiskUsage]\ntimeout = 1\ntimeout = 2\n", 3, "timeout given twice"),
        (
            "[sensor:DiskPartitions]\nall = yes\nall = no\n",
            3,
            "'all' of DiskPartitions given twice",
        ),
        ("[sensor:DiskPartitions]\nall = maybe\n", 2, "'all' of DiskPartitions: 'maybe' is not"),
        ("[sensor:DiskPartitions]\nall = yes please\n", 2, "is not one of yes, true, 1, on, no"),
        ("[sensor:BootTime]\n[sensor:BootTime]\n", 2, "[sensor:BootTime] given twice (first on"),
        ("time_interval = 10\n", 1, "a setting before the first [section]"),
        ("[sensor:BootTime\n", 1, "bad section header"),
        ("[sensor:BootTime]\njust words\n", 2, "expected KEY = VALUE"),
        ("[graphite]\nport = 2003\n", 1, "[graphite] needs a host"),
        ("[graphite]\nhost = c\nport = 99999\n", 3, "port '99999' is not a port number"),
        ("[graphite]\nhost = c\nprotocol = udp\n", 3, "protocol 'udp' is not plaintext or pickle"),
        ("[graphite]\nhost = c\nport = 1\ncarbon receiver pickle port = 2\n", 4, "more than one"),
        ("[graphite]\nhost = c\nhots = d\n", 3, "[graphite] has no setting 'hots'"),
        ("[graphite]\nhost = c\n[Graphite]\nhost = d\n", 3, "[graphite] given twice"),
    ],
)
def test_a_bad_line_is_file_line_what(text: str, where: int, what: str) -> None:
    with pytest.raises(ConfigFileError) as caught:
        parse_conf(text, "/etc/dsh/dshd.conf")
    assert str(caught.value).startswith(f"/etc/dsh/dshd.conf:{where}: "), str(caught.value)
    assert what in str(caught.value)


def test_an_unreadable_file_says_so(tmp_path: Path) -> None:
    with pytest.raises(ConfigFileError, match="cannot read: No such file"):
        load_conf(tmp_path / "no-such.conf")
    binary = tmp_path / "binary.conf"
    binary.write_bytes(b"\xff\xfe[sensor")
    with pytest.raises(ConfigFileError, match="cannot read: not UTF-8 text"):
        load_conf(binary)
    good = tmp_path / "dshd.conf"
    good.write_text("[sensor:Users]\ntime_interval = 5\n")
    assert load_conf(good).sensors["Users"].interval == 5.0


def test_a_sensor_of_fructosas_that_dshd_lacks_is_skipped_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """FrUCToSA's sensors.py has SlurmJobs too: a lagent.conf that runs it still works."""
    text = "[sensor:BootTime]\n\n[sensor:SlurmJobs]\ntime_interval = 60\n"
    conf = parse_conf(text, "lagent.conf")
    assert list(conf.sensors) == ["BootTime"]
    assert conf.skipped == (("SlurmJobs", 3),)
    path = tmp_path / "lagent.conf"
    path.write_text(text)
    with caplog.at_level(logging.WARNING, logger="dsh.daemon.cli"):
        assert list(read_conf(DaemonConfig(config_file=str(path))).sensors) == ["BootTime"]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert [r.getMessage() for r in warnings] == [
        f"{path}:3: sensor SlurmJobs is FrUCToSA's, not dshd's; skipped"
    ]
    # a name that is nobody's stays an error
    with pytest.raises(ConfigFileError, match=r"^f:2: unknown sensor 'SlurmJob'"):
        parse_conf("\n[sensor:SlurmJob]\n", "f")


def test_dshd_section_sets_who_may_see_jobs() -> None:
    assert parse_conf("[dshd]\njobs = all\n").jobs == "all"
    assert parse_conf("[sensor:LoadAvg]\n").jobs is None


@pytest.mark.parametrize(("text", "why"), [
    ("[dshd]\njobs = some\n", r"^f:2: jobs 'some' is not off, own or all"),
    ("[dshd]\njobs = own\njobs = all\n", r"^f:3: 'jobs' given twice in \[dshd\]"),
    ("[dshd]\nports = 1\n", r"^f:2: \[dshd\] has no setting 'ports'"),
    ("[dshd]\n[dshd]\n", r"^f:2: \[dshd\] given twice \(first on line 1\)"),
])  # fmt: skip
def test_a_bad_dshd_section_is_file_and_line(text: str, why: str) -> None:
    with pytest.raises(ConfigFileError, match=why):
        parse_conf(text, "f")


def test_the_readmes_config_examples_parse() -> None:
    # What a sysadmin pastes from README.md must work as it is.
    from support.paths import REPO

    readme = (REPO / "README.md").read_text()
    blocks: list[str] = []
    block: list[str] = []
    for line in readme.splitlines():
        if line.startswith("    ") and (block or line.strip().startswith("[")):
            block.append(line[4:])
        elif block:
            blocks.append("\n".join(block) + "\n")
            block = []
    conf_blocks = [b for b in blocks if b.startswith(("[sensor:", "[view]", "[graphite]",
                                                     "[Graphite]"))]  # fmt: skip
    assert len(conf_blocks) >= 2
    for text in conf_blocks:
        parse_conf(text, "README.md")
