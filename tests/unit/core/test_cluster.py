"""The cluster file parser: what it accepts, and ``FILE:LINE: problem`` for what it does not."""

from __future__ import annotations

from pathlib import Path

import pytest

from dsh.core.cluster import Discovery, NodeSpec, load_cluster, parse_cluster, parse_cluster_file
from dsh.errors import ClusterFileError, ConfigError

SEED = """\
newton.foo.bar 1.0 1.0
galileo.foo.bar 2.0 2.0
kepler.foo.bar 2.0
"""


def test_seed_example_with_defaults() -> None:
    specs = parse_cluster(SEED, "cluster")
    assert [(s.name, s.loadscale, s.memscale, s.drained, s.line) for s in specs] == [
        ("newton.foo.bar", 1.0, 1.0, False, 1),
        ("galileo.foo.bar", 2.0, 2.0, False, 2),
        # MEMSCALE omitted: it defaults to 1
        ("kepler.foo.bar", 2.0, 1.0, False, 3),
    ]


def test_name_alone_gets_both_defaults() -> None:
    (spec,) = parse_cluster("tycho\n")
    assert (spec.loadscale, spec.memscale, spec.drained) == (1.0, 1.0, False)


def test_comments_and_blank_lines_are_skipped_but_counted() -> None:
    text = (
        "# the cluster\n"  # 1
        "\n"  # 2
        "   \t \n"  # 3
        "newton.foo.bar 1.5   # the fast one\n"  # 4
        "    # indented comment\n"  # 5
        "galileo#no space before the comment\n"  # 6
        "kepler 2.0 3.0#\n"  # 7
    )
    specs = parse_cluster(text)
    assert [(s.name, s.loadscale, s.memscale, s.line) for s in specs] == [
        ("newton.foo.bar", 1.5, 1.0, 4),
        ("galileo", 1.0, 1.0, 6),
        ("kepler", 2.0, 3.0, 7),
    ]


def test_crlf_line_endings() -> None:
    specs = parse_cluster("newton 2.0\r\ngalileo\r\n")
    assert [(s.name, s.loadscale) for s in specs] == [("newton", 2.0), ("galileo", 1.0)]


@pytest.mark.parametrize(
    "name",
    ["10.0.0.1", "127.0.0.11", "::1", "2001:db8::5", "fe80::1%eth0", "FE80::1%eth0"],
)
def test_ip_literals_are_names(name: str) -> None:
    (spec,) = parse_cluster(f"{name} 2.0 0.5\n")
    assert (spec.name, spec.loadscale, spec.memscale) == (name, 2.0, 0.5)


@pytest.mark.parametrize(
    "name",
    ["a", "node-1", "123abc", "newton.foo.bar.", "x" * 63 + ".example", "N1.Example.ORG"],
)
def test_host_names(name: str) -> None:
    (spec,) = parse_cluster(name)
    assert spec.name == name


def test_drain_keyword_after_any_number_of_scales() -> None:
    specs = parse_cluster("a drain\nb 2.0 drain\nc 2.0 3.0 drain\nd 2.0 3.0\n")
    assert [(s.name, s.loadscale, s.memscale, s.drained) for s in specs] == [
        ("a", 1.0, 1.0, True),
        ("b", 2.0, 1.0, True),
        ("c", 2.0, 3.0, True),
        ("d", 2.0, 3.0, False),
    ]


def test_node_named_like_the_keyword_is_a_node() -> None:
    (spec,) = parse_cluster("drain\n")
    assert (spec.name, spec.drained) == ("drain", False)


def test_key_ignores_case_and_trailing_dot() -> None:
    assert NodeSpec("Newton.Foo.Bar.").key == NodeSpec("newton.foo.bar").key == "newton.foo.bar"


# Each bad line is line 3, after a good line and a comment, so a parser that
# counted only node lines or skipped comments in its count would say 1 or 2.
BAD_LINES = [
    # unknown extra tokens
    ("newton 1.0 1.0 fast", "'fast'"),
    ("newton 1.0 1.0 drain extra", "'drain extra'"),
    ("newton 1.0 1.0 2.0", "'2.0'"),
    # scales that are not numbers
    ("newton fast", "loadscale 'fast' is not a number"),
    ("newton 1,5", "loadscale '1,5' is not a number"),
    ("newton 1.0 lots", "memscale 'lots' is not a number"),
    ("newton drain drain", "loadscale 'drain' is not a number"),
    # scales that are numbers but not positive and finite
    ("newton 0", "loadscale '0'"),
    ("newton 0.0", "loadscale '0.0'"),
    ("newton -1", "loadscale '-1'"),
    ("newton inf", "loadscale 'inf'"),
    ("newton -inf", "loadscale '-inf'"),
    ("newton nan", "loadscale 'nan'"),
    ("newton 1e999", "loadscale '1e999'"),  # overflows to inf
    ("newton 1.0 0", "memscale '0'"),
    ("newton 1.0 -2", "memscale '-2'"),
    ("newton 1.0 inf", "memscale 'inf'"),
    ("newton 1.0 NaN", "memscale 'NaN'"),
    # names that are neither host names nor addresses
    ("123", "'123'"),
    ("10.0.0.256", "'10.0.0.256'"),  # all digits: not an address, not a name
    ("1.2.3", "'1.2.3'"),
    ("-newton", "'-newton'"),
    ("newton-", "'newton-'"),
    ("new_ton", "'new_ton'"),
    ("newton..foo", "'newton..foo'"),
    ("x" * 64 + ".foo", "'" + "x" * 64 + ".foo'"),  # a label is at most 63
    ("ñewton", "'ñewton'"),
]


@pytest.mark.parametrize(("line", "fragment"), BAD_LINES)
def test_bad_line_reports_file_and_line(line: str, fragment: str) -> None:
    text = f"galileo 2.0\n# a comment\n{line}\nkepler\n"
    with pytest.raises(ClusterFileError) as info:
        parse_cluster(text, "/etc/dsh/cluster")
    err = info.value
    assert str(err).startswith("/etc/dsh/cluster:3: ")
    assert fragment in str(err)
    assert (err.filename, err.line) == ("/etc/dsh/cluster", 3)
    assert isinstance(err, ConfigError)  # the CLI's exit 2


@pytest.mark.parametrize("scale", ["0", "-1", "inf", "nan", "1e7"])
def test_bad_scale_message_says_what_to_write(scale: str) -> None:
    with pytest.raises(ClusterFileError) as info:
        parse_cluster(f"newton {scale}\n", "cl")
    assert str(info.value) == f"cl:1: loadscale {scale!r} must be a positive number up to 1e+06"


@pytest.mark.parametrize(
    "second",
    ["newton.foo.bar", "NEWTON.foo.bar", "newton.foo.bar.", "Newton.Foo.Bar. 2.0 drain"],
)
def test_duplicate_node(second: str) -> None:
    text = f"# nodes\nnewton.foo.bar\ngalileo.foo.bar\n\n{second}\n"
    with pytest.raises(ClusterFileError) as info:
        parse_cluster(text, "cl")
    first_token = second.split()[0]
    assert str(info.value) == f"cl:5: duplicate node {first_token!r} (first on line 2)"


def test_unknown_token_message() -> None:
    with pytest.raises(ClusterFileError) as info:
        parse_cluster("newton 1 1 fast\n", "cl")
    assert str(info.value) == (
        "cl:1: unexpected 'fast' (expected NAME [LOADSCALE [MEMSCALE]] [drain])"
    )


def test_first_bad_line_wins() -> None:
    with pytest.raises(ClusterFileError) as info:
        parse_cluster("a\nb 0\nc x\n", "cl")
    assert info.value.line == 2


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n   \n# and another\n"])
def test_no_nodes(text: str) -> None:
    with pytest.raises(ClusterFileError) as info:
        parse_cluster(text, "cl")
    assert "no nodes" in str(info.value)
    assert str(info.value).startswith("cl: ")


def test_load_cluster_reads_file_and_names_it_in_errors(tmp_path: Path) -> None:
    good = tmp_path / "cluster"
    good.write_text(SEED, encoding="utf-8")
    assert [s.name for s in load_cluster(good)] == [
        "newton.foo.bar",
        "galileo.foo.bar",
        "kepler.foo.bar",
    ]
    bad = tmp_path / "bad"
    bad.write_text("newton\nnewton\n", encoding="utf-8")
    with pytest.raises(ClusterFileError) as info:
        load_cluster(str(bad))
    assert str(info.value).startswith(f"{bad}:2: duplicate node")


def test_load_cluster_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "no" / "such" / "cluster"
    with pytest.raises(ClusterFileError) as info:
        load_cluster(missing)
    assert str(missing) in str(info.value)
    assert "cannot read" in str(info.value)
    assert "No such file" in str(info.value)


def test_load_cluster_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "cluster"
    path.write_bytes(b"newton\n\xff\xfe\n")
    with pytest.raises(ClusterFileError) as info:
        load_cluster(path)
    assert str(info.value).startswith(f"{path}: cannot read")


# -- discovery lines --------------------------------------------------------------


def test_discovery_lines_and_an_empty_node_list() -> None:
    parsed = parse_cluster_file(
        "# found by broadcast\n@broadcast 10.1.255.255\n@multicast 239.192.0.81\n"
    )
    assert parsed.nodes == []
    assert parsed.discovery == (
        Discovery("broadcast", "10.1.255.255", 2),
        Discovery("multicast", "239.192.0.81", 3),
    )
    mixed = parse_cluster_file("newton\n@multicast 239.192.0.81  # the lab\n")
    assert [s.name for s in mixed.nodes] == ["newton"]
    assert mixed.discovery == (Discovery("multicast", "239.192.0.81", 2),)
    assert parse_cluster("newton\n@multicast 239.192.0.81\n") == mixed.nodes


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        ("@anycast 10.0.0.1", "unknown '@anycast' (expected @broadcast or @multicast)"),
        ("@broadcast", "expected @broadcast ADDRESS"),
        ("@broadcast 10.0.0.255 10.0.1.255", "expected @broadcast ADDRESS"),
        ("@broadcast lan", "'lan' is not an IP address"),
        ("@broadcast ff02::1", "ff02::1 is not an IPv4 broadcast address"),
        ("@multicast 10.0.0.255", "10.0.0.255 is not an IPv4 multicast group"),
        ("@multicast ff02::81", "ff02::81 is not an IPv4 multicast group"),
    ],
)
def test_bad_discovery_line(line: str, fragment: str) -> None:
    with pytest.raises(ClusterFileError) as info:
        parse_cluster_file(f"newton\n{line}\n", "c")
    assert str(info.value) == f"c:2: {fragment}"
