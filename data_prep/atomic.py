"""Outputs that are either complete or absent: written under a temporary name, then renamed.

A run builds `<name>.tmp-<pid>` beside the final `<name>` and renames it only when it is
complete; an existing output is first moved aside to `<name>.old-<pid>` and removed after
the new one is in place. A later run removes what an interrupted run (a dead pid) left, and
refuses to touch an output that a live run is still writing.
"""
from __future__ import annotations

import os
import re
import shutil

_LEFTOVER = re.compile(r"^(?P<name>.+)\.(?:tmp|old)-(?P<pid>\d+)$")


class OutputBusy(RuntimeError):
    pass


def temp_path(final: str) -> str:
    return f"{final}.tmp-{os.getpid()}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_leftovers(directory: str, names) -> list[str]:
    """Remove temporary files of `names` that interrupted runs left in `directory`."""
    names = set(names)
    removed = []
    try:
        entries = os.listdir(directory)
    except FileNotFoundError:
        return removed
    for entry in sorted(entries):
        match = _LEFTOVER.match(entry)
        if not match or match.group("name") not in names:
            continue
        pid = int(match.group("pid"))
        if pid != os.getpid() and _alive(pid):
            raise OutputBusy(f"another run (pid {pid}) is writing {os.path.join(directory, entry)}")
        remove(os.path.join(directory, entry))
        removed.append(entry)
    return removed


def remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


def write_file(path: str, data: bytes) -> None:
    """Write `path` so that a reader sees the old content or the new one, never a part."""
    tmp = temp_path(path)
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        remove(tmp)
        raise


def publish_dir(tmp: str, final: str) -> None:
    """Rename a finished directory into place, replacing an older one."""
    old = None
    if os.path.lexists(final):
        old = f"{final}.old-{os.getpid()}"
        os.replace(final, old)
    try:
        os.replace(tmp, final)
    except OSError:
        if old is not None:
            os.replace(old, final)
        raise
    if old is not None:
        remove(old)
