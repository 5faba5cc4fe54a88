"""contrib/dshd.conf, the example config a sysadmin copies: it parses, names
every sensor dshd has, within each one's rules, and its Graphite section
(commented out) parses too once uncommented."""

from __future__ import annotations

from support.paths import REPO

from dsh.daemon.conf import GraphiteConf, load_conf, parse_conf
from dsh.daemon.sensors.catalogue import SENSORS, TIME_INTERVAL

EXAMPLE = REPO / "contrib" / "dshd.conf"


def test_the_example_config_parses_and_names_every_sensor() -> None:
    conf = load_conf(EXAMPLE)
    assert list(conf.sensors) != [] and set(conf.sensors) == set(SENSORS)
    assert conf.graphite is None and conf.ignored == ()
    for name, sensor in conf.sensors.items():
        # each at the sensor's own default: the example says what the default is
        assert sensor.interval == SENSORS[name].interval, name
        assert sensor.timeout is None or sensor.timeout <= sensor.interval, name
    assert conf.sensors["DiskUsage"].options == {"path": ("/",)}
    assert conf.sensors["DiskUsage"].timeout == 5.0
    text = EXAMPLE.read_text()
    assert sum(line.startswith(f"{TIME_INTERVAL} = ") for line in text.splitlines()) == len(SENSORS)


def test_its_graphite_section_uncommented_is_valid() -> None:
    lines = EXAMPLE.read_text().splitlines()
    start = lines.index("#[graphite]")
    # the settings are the lines with no space after the '#'
    section = [line[1:] for line in lines[start + 1 :] if line.startswith("#") and line[1:2] != " "]
    settings = {line.split("=")[0].strip(): line for line in section}
    # FrUCToSA's port key is the alternative to protocol + port: one or the other.
    dshds = [v for k, v in settings.items() if k != "carbon receiver pickle port"]
    conf = parse_conf("\n".join(["[graphite]", *dshds]))
    assert conf.graphite == GraphiteConf("carbon.example.org", 2003, "plaintext", "cluster", 10.0)
    fructosas = [settings["host"], settings["carbon receiver pickle port"]]
    assert parse_conf("\n".join(["[graphite]", *fructosas])).graphite == GraphiteConf(
        "carbon.example.org", 2004, "pickle"
    )
