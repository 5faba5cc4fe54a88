"""The user's private directory for dsh's state: the mux's socket, lock and log, backoff."""

import os
import stat


def runtime_dir() -> str:
    """Per-user state: $XDG_RUNTIME_DIR/dsh, else ~/.cache/dsh; only the user may enter it.

    The mux's socket lives here, so a directory that is not the user's own
    is refused (OSError), and one that others may enter is made private.
    """
    base = os.environ.get("XDG_RUNTIME_DIR")
    if base:
        root = os.path.join(base, "dsh")
    else:
        root = os.path.join(os.path.expanduser("~"), ".cache", "dsh")
    try:
        os.mkdir(root, 0o700)
    except FileExistsError:
        pass
    except FileNotFoundError:
        os.makedirs(root, 0o700, exist_ok=True)
    st = os.lstat(root)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid():
        raise PermissionError(f"{root} is not a directory of this user's")
    if st.st_mode & 0o077:
        os.chmod(root, 0o700)
    return root
