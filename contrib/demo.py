"""The demo behind contrib/demo: a loopback cluster, its status, dsh and make.

It reuses the test suite's helpers for real sshd and dshd processes, so what
it shows is what the tests check.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path
from urllib.request import urlopen

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tests"), str(REPO / "src")]

from support.dshd import Cluster, ask  # noqa: E402
from support.sshd import Sshd, common_free_port, make_client_keys, write_ssh_config  # noqa: E402
from support.waiting import wait_for  # noqa: E402

HOME, NODE2, NODE3 = "127.0.0.11", "127.0.0.12", "127.0.0.13"


def show(title: str, command: list[str] | None = None, **kwargs: object) -> None:
    print(f"\n=== {title}")
    if command:
        print("$ " + " ".join(command))
        done = subprocess.run(command, check=False, **kwargs)  # type: ignore[call-overload]
        print(f"(exit status {done.returncode})")


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="dsh-demo-") as tmp:
        work = Path(tmp)
        keys = make_client_keys(work / "keys")
        port = common_free_port([NODE2, NODE3])
        servers = [Sshd(a, port, work / f"sshd-{a}", keys) for a in (NODE2, NODE3)]
        ssh_config = write_ssh_config(work / "ssh_config", servers, keys)
        (work / "dshd").mkdir()
        cluster = Cluster(work / "dshd", [HOME, NODE2, f"{NODE3} 2.0"], interval=0.5)
        try:
            for server in servers:
                server.start()
            cluster.start()
            wait_for(cluster.all_up, 15, "the demo cluster")
            print(f"cluster file {cluster.cluster_file}:")
            print(textwrap.indent(cluster.cluster_file.read_text(), "    "))
            status, best = cluster.port, cluster.port + 1
            print(f"=== status port (telnet {HOME} {status}):")
            print(ask(HOME, status), end="")
            show_metrics(cluster.http_port)
            print(f"\n=== best-node port, asked 6 times (telnet {HOME} {best}):")
            print(" ".join(ask(HOME, best).strip() for _ in range(6)))

            env = {
                **os.environ,
                "DSH_DAEMON": f"{HOME}:{best}",
                "DSH_STATUS_PORT": str(status),
                "DSH_SSH_CONFIG": str(ssh_config),
                "PWD": str(work),
            }
            env["DSH_PYTHON"] = sys.executable  # the interpreter dsh's own sh line starts
            env["DSH_HTTP_PORT"] = str(cluster.http_port)
            dsh = [str(REPO / "dsh")]
            show("dsh top --once: the cluster as the local dshd sees it (live without --once)",
                 [*dsh, "top", "--once"], env=env, cwd=work)  # fmt: skip
            show("dsh runs a command where the daemon says, in the same directory",
                 [*dsh, "-v", "sh", "-c", 'echo "in $PWD, on ${SSH_CONNECTION:-this node}"'],
                 env=env, cwd=work)  # fmt: skip
            show("exit status and stderr come back as if local",
                 [*dsh, "sh", "-c", "echo oops >&2; exit 3"], env=env, cwd=work)  # fmt: skip
            (work / "proj").mkdir()
            for i in range(6):
                (work / "proj" / f"f{i}.c").write_text(f"int f{i}(void) {{ return {i}; }}\n")
            calls = " + ".join(f"f{i}()" for i in range(6))
            decls = " ".join(f"int f{i}(void);" for i in range(6))
            (work / "proj" / "main.c").write_text(
                f'#include <stdio.h>\n{decls}\nint main(void) {{ printf("sum %d\\n", {calls}); }}\n'
            )
            objs = " ".join(f"f{i}.o" for i in range(6))
            (work / "proj" / "Makefile").write_text(
                f"prog: main.o {objs}\n\t$(CC) -o $@ $^\n%.o: %.c\n\t$(CC) -c $<\n"
            )
            cc = " ".join([*dsh, "-v", "gcc"])
            env["PWD"] = str(work / "proj")
            show(f"make -j4 CC=\"dsh -v gcc\" (dsh --slots says {ask_slots(dsh, env)} CPUs)",
                 ["make", "-s", "-j4", f"CC={cc}"], env=env, cwd=work / "proj")  # fmt: skip
            show("dsh top --once again: the jobs column counts where dsh placed the compiles",
                 [*dsh, "top", "--once"], env=env, cwd=work)  # fmt: skip
            show("the program built across the cluster runs", ["./prog"], cwd=work / "proj")
            print(
                f"\n=== the live page: http://{HOME}:{cluster.http_port}/ in a browser"
                " (while the cluster runs; this demo stops it now)"
            )
            print("\n=== demo done: stopping the daemons and sshd servers")
        finally:
            # The mux dsh started would exit after 60 s idle; the demo is over now.
            subprocess.run([sys.executable, str(REPO / "dsh"), "--mux-stop"], capture_output=True)
            cluster.stop()
            for server in servers:
                server.stop()
    return 0


def show_metrics(port: int) -> None:
    """A few lines of what Prometheus scrapes: the whole cluster from one node."""
    url = f"http://{HOME}:{port}/metrics"
    wait_for(lambda: b"dsh_node_cpu_ratio" in urlopen(url, timeout=5).read(), 15,
             "every node's usage in /metrics")  # fmt: skip
    text = urlopen(url, timeout=5).read().decode()
    wanted = ("dsh_node_up{", "dsh_node_load{", 'dsh_node_cpu_ratio{mode="user"', "node_load1 ",
              "dsh_sensor_up{sensor=\"LoadAvg\"")  # fmt: skip
    print(f"\n=== Prometheus metrics of the whole cluster, from one node (curl {url}):")
    for line in text.splitlines():
        if line.startswith(wanted):
            print("    " + line)
    print(f"    ... {len(text.splitlines())} lines in all")


def ask_slots(dsh: list[str], env: dict[str, str]) -> str:
    return subprocess.run([*dsh, "--slots"], env=env, capture_output=True, text=True).stdout.strip()


if __name__ == "__main__":
    sys.exit(main())
