"""dsh's options: the quick reader of a normal run reads what argparse reads."""

from __future__ import annotations

import argparse
import json

from hypothesis import given, settings
from hypothesis import strategies as st

from dsh.client.cli import Options, build_parser, parse_quick

option_tokens = st.lists(
    st.sampled_from(["-n", "-t", "-v", "-q", "--no-fallback", "--no-sync", "--direct", "--mux-stop",
                     "--dry-run", "--slots", "--status", "-H", "h:1", "--status-port", "8",
                     "--status-port=9", "--sync-timeout", "2.5", "--attempts", "4", "--backoff",
                     "x", "--ssh-config", "f", "--ssh-config=g", "-vn", "--stat", "--", "-1",
                     "--attempts=zz", "-Hh", "gcc", "-c", "a.c", "-", "-a", "-b", "-w",
                     "n[1-3]", "-x", "n2", "-f", "8", "--all-listed", "-f=2"]),
    max_size=8,
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(argv=option_tokens)
def test_quick_parser_reads_what_argparse_reads(argv: list[str]) -> None:
    quick = parse_quick(argv)
    if quick is None:
        return  # argparse reads it (or reports the mistake), as before
    try:
        expected = build_parser().parse_args(argv)
    except SystemExit:
        # argparse looks for abbreviated options even among the command's own
        # arguments (`dsh gcc --stat`: "ambiguous option"); the quick reader
        # leaves those to the command, as the usage says.
        assert quick.command and any(a.startswith("--") for a in quick.command)
        return
    got = {k: v for k, v in vars(quick).items() if k != "version"}
    assert got == vars(expected)


def test_quick_parser_takes_the_usual_command_lines() -> None:
    assert parse_quick(["-v", "-H", "n:1", "gcc", "-c", "-o", "x.o", "x.c"]) is not None
    assert parse_quick(["--help"]) is None and parse_quick(["-vn", "true"]) is None
    options = parse_quick(["--version"])
    assert isinstance(options, Options) and options.version


def test_argparse_namespace_matches_options() -> None:
    """Options has exactly the attributes argparse gives (plus version)."""
    parsed = build_parser().parse_args(["true"])
    assert set(vars(Options())) - {"version"} == set(vars(parsed))
    assert isinstance(parsed, argparse.Namespace)
    assert json.dumps(sorted(vars(parsed)))  # plain values only


def test_fan_out_options_are_read_quickly() -> None:
    options = parse_quick(["-w", "n[1-3]", "-x", "n2", "-f", "8", "-b", "uptime"])
    assert options is not None
    assert (options.nodes, options.exclude, options.fanout, options.gather) == (
        "n[1-3]",
        "n2",
        8,
        True,
    )
    assert options.command == ["uptime"]
    options = parse_quick(["-a", "--all-listed", "true"])
    assert options is not None and options.all_nodes and options.all_listed
