"""The `dsh` file as a command: sh picks the interpreter and starts it with -S,
and Python then finds the package in a checkout, in site-packages, or through
site's .pth files (an editable install). No daemon or sshd: `--version` and a
local run are enough to show which interpreter ran, with which flags, and
whether site's .pth files were read."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from support.paths import DSH, REPO

VERSION = subprocess.run([sys.executable, str(DSH), "--version"], capture_output=True,
                         text=True, check=True).stdout  # fmt: skip


def recording_python(path: Path, log: Path) -> Path:
    """An interpreter that writes its arguments to LOG, then runs the real one."""
    path.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > {log}\nexec {sys.executable} "$@"\n')
    path.chmod(0o755)
    return path


def run(argv: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, env=env, cwd=cwd, timeout=60,
                          stdin=subprocess.DEVNULL)  # fmt: skip


def base_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DSH_", "PYTHON"))}
    env["XDG_RUNTIME_DIR"] = str(tmp_path)
    return env


def test_the_checkout_dsh_starts_python_without_site(tmp_path: Path) -> None:
    log = tmp_path / "args"
    env = {**base_env(tmp_path), "DSH_PYTHON": str(recording_python(tmp_path / "py", log))}
    out = run([str(DSH), "--version"], env, tmp_path)
    assert (out.returncode, out.stdout) == (0, VERSION), out.stderr
    assert log.read_text().splitlines()[:3] == ["-S", str(DSH), "--version"]
    # Arguments reach dsh untouched by the shell line (spaces, quotes, globs, $).
    odd = ["a b", "'", '"', "*", "$HOME", "-n", ""]
    out = run([str(DSH), "-H", "127.0.0.1:1", "-q", "printf", "<%s>", *odd], env, tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "".join(f"<{a}>" for a in odd)


def make_venv(tmp_path: Path) -> tuple[Path, Path]:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True,
                   timeout=60)  # fmt: skip
    site_packages = Path(
        subprocess.run([str(venv / "bin" / "python3"), "-c",
                        "import sysconfig; print(sysconfig.get_path('purelib'))"],
                       capture_output=True, text=True, check=True).stdout.strip()
    )  # fmt: skip
    shutil.copy2(DSH, venv / "bin" / "dsh")  # as pip installs it: no src/ beside it
    # A .pth file that leaves a mark whenever site reads it.
    (site_packages / "mark.pth").write_text(
        "import os; open(os.environ['MARK'], 'w').close() if 'MARK' in os.environ else None\n"
    )
    return venv, site_packages


def test_an_installed_dsh_finds_its_package_without_site(tmp_path: Path) -> None:
    venv, site_packages = make_venv(tmp_path)
    (site_packages / "dsh").symlink_to(REPO / "src" / "dsh")
    mark = tmp_path / "mark"
    env = {**base_env(tmp_path), "MARK": str(mark)}
    out = run([str(venv / "bin" / "dsh"), "--version"], env, tmp_path)
    assert (out.returncode, out.stdout) == (0, VERSION), out.stderr
    assert not mark.exists()  # site's .pth files were not read


def test_an_installed_dsh_runs_the_python3_beside_it(tmp_path: Path) -> None:
    """In a venv or a prefix, bin/python3 is the interpreter dsh was installed for;
    python3 on $PATH may be another one, or a wrapper such as a pyenv shim."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shutil.copy2(DSH, bin_dir / "dsh")
    log = tmp_path / "args"
    recording_python(bin_dir / "python3", log)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "python3").write_text("#!/bin/sh\nexit 99\n")
    (elsewhere / "python3").chmod(0o755)
    env = {
        **base_env(tmp_path),
        "PATH": f"{elsewhere}:{os.environ['PATH']}",
        "PYTHONPATH": str(REPO / "src"),
    }  # where the package is is another test's matter
    out = run([str(bin_dir / "dsh"), "--version"], env, tmp_path)
    assert (out.returncode, out.stdout) == (0, VERSION), out.stderr
    assert log.read_text().splitlines()[:2] == ["-S", str(bin_dir / "dsh")]


def test_an_editable_install_is_found_through_site(tmp_path: Path) -> None:
    venv, site_packages = make_venv(tmp_path)
    (site_packages / "dsh-src.pth").write_text(f"{REPO / 'src'}\n")  # what pip install -e does
    mark = tmp_path / "mark"
    env = {**base_env(tmp_path), "MARK": str(mark)}
    out = run([str(venv / "bin" / "dsh"), "--version"], env, tmp_path)
    assert (out.returncode, out.stdout) == (0, VERSION), out.stderr
    assert mark.exists()  # here site had to run


def test_a_link_to_an_installed_dsh_runs_the_python3_beside_the_real_file(tmp_path: Path) -> None:
    """pipx, or `ln -s venv/bin/dsh ~/bin/`: the link's own directory has no python3."""
    bin_dir = tmp_path / "venv-bin"
    bin_dir.mkdir()
    shutil.copy2(DSH, bin_dir / "dsh")
    log = tmp_path / "args"
    recording_python(bin_dir / "python3", log)
    links = tmp_path / "links"
    links.mkdir()
    (links / "dsh").symlink_to(bin_dir / "dsh")
    env = {**base_env(tmp_path), "PYTHONPATH": str(REPO / "src")}
    out = run([str(links / "dsh"), "--version"], env, tmp_path)
    assert (out.returncode, out.stdout) == (0, VERSION), out.stderr
    # The recording python3 (beside the real file) ran it: the log exists.
    assert log.read_text().splitlines()[:2] == ["-S", str(links / "dsh")]


def test_an_interpreter_without_the_package_is_one_clear_line(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shutil.copy2(DSH, bin_dir / "dsh")  # no src/ beside it, nothing installed for it
    venv, _site_packages = make_venv(tmp_path)
    env = {**base_env(tmp_path), "DSH_PYTHON": str(venv / "bin" / "python3")}
    out = run([str(bin_dir / "dsh"), "--version"], env, tmp_path)
    assert out.returncode == 255
    assert out.stderr.count("\n") == 1 and "cannot import the dsh package" in out.stderr
