"""What rexec.py and the executor both do to start one command on the node.

Rules of this file: standard library only, nothing imported from dsh but
the request schema (node/source.py sends both texts ahead of the program
that uses them). Every name here is unique across the assembled text.

The order is the same on both ways, and what can fail before the command
starts is said before anything runs, so that dsh can still try another node:

1. the caller's directory must be enterable, and
2. the sync file must be visible here (``prepare``, then ``waitfile_problem``
   once waitfile has exited), so that the command sees everything the caller
   wrote before;
3. the command starts in that directory, under the caller's umask, with the
   node's own environment plus the forwarded variables and the caller's
   logical ``PWD`` (``spawn``); a command that cannot be executed gets a
   shell's 126 or 127 (``spawn_failure``);
4. its status is a shell's (``exit_status``: 128+N when killed by signal N);
5. the sync file goes (``remove_sync``): its removal is what tells dsh that
   the command's files are written.
"""

from __future__ import annotations

import errno
import os
import stat
import subprocess

# dsh:strip-begin (node/source.py sends request.py ahead of this text)
from ..request import Request

# dsh:strip-end

# seconds between SIGHUP and SIGKILL for a process group nobody waits for
# any more (rexec, the executor, and the mux for a killed executor's groups)
KILL_GRACE = 2.0
# rexec's own status when it said why the command cannot start (dsh has read
# that from the start mark and ignores the status)
EXIT_NOT_STARTED = 254


def prepare(request: Request) -> tuple[subprocess.Popen[bytes] | None, str | None]:
    """What may fail before the start, in order: the directory, then the sync
    file. (waitfile, None): wait for it, then ``waitfile_problem``; (None, why
    not) as a FAILED text; (None, None): ready to start."""
    cwd = request.cwd
    try:
        if not stat.S_ISDIR(os.stat(cwd).st_mode):
            raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR))
        if not os.access(cwd, os.X_OK):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))
    except OSError as exc:
        return None, cannot_enter(cwd, exc)
    sync = request.sync
    if not sync or os.path.exists(sync):
        return None, None
    try:
        waiter = subprocess.Popen(
            [request.waitfile, sync, str(request.sync_timeout)],
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
    except OSError as exc:
        return None, f"sync cannot run {request.waitfile}: {exc}"
    return waiter, None


def cannot_enter(cwd: bytes, exc: OSError) -> str:
    return f"cwd cannot enter {os.fsdecode(cwd)}: {exc.strerror}"


def waitfile_problem(waiter: subprocess.Popen[bytes]) -> str | None:
    """Once it has exited: why the sync file was not seen (a FAILED text), or None."""
    detail = b""
    if waiter.stderr is not None:
        try:
            detail = waiter.stderr.read() or b""
        except OSError:
            pass
        waiter.stderr.close()
    if waiter.returncode == 0:
        return None
    return f"sync {detail.decode(errors='replace').strip() or 'waitfile failed'}"


def command_env(base: dict[bytes, bytes], request: Request) -> dict[bytes, bytes]:
    env = dict(base)
    env[b"PWD"] = request.cwd  # the logical path, as the caller's shell had it
    for key, value in request.env.items():
        env[os.fsencode(key)] = value
    # What dshd's `--jobs own` looks for in /proc/PID/environ (daemon/procs.py):
    # this process, and what it starts, is a job dsh placed on the node.
    env[b"DSH_JOB"] = b"1"
    return env


def spawn(
    request: Request, env: dict[bytes, bytes], *, pipes: bool, new_session: bool
) -> subprocess.Popen[bytes]:
    """Start the command (OSError if it cannot be executed). With ``pipes`` its
    stdin, stdout and stderr are pipes; else only its stdin, unless in a terminal."""
    pipe = subprocess.PIPE
    return subprocess.Popen(
        request.argv,
        cwd=request.cwd,
        env=env,
        umask=request.umask,
        stdin=pipe if pipes or not request.pty else None,
        stdout=pipe if pipes else None,
        stderr=pipe if pipes else None,
        start_new_session=new_session,
        restore_signals=True,
    )


def spawn_failure(request: Request, exc: OSError) -> tuple[bytes, int]:
    """What a shell prints and returns for a command it cannot execute."""
    name = os.fsdecode(request.argv[0])
    message = f"dsh: {name}: {exc.strerror}\n".encode(errors="replace")
    return message, 126 if isinstance(exc, PermissionError) else 127


def exit_status(returncode: int) -> int:
    return 128 - returncode if returncode < 0 else returncode


def killpg(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def remove_sync(request: Request) -> None:
    if request.sync:
        try:
            os.unlink(request.sync)
        except OSError:
            pass
